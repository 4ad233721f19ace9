//! Reads certificates, private keys and trust anchors from PEM files, naming the file in every error.

use std::path::Path;

use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::RootCertStore;

/// Why a PEM file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not well-formed PEM (bad section markers or base64).
    #[error("parse {path} as PEM: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What the PEM parser found wrong.
        source: tokio_rustls::rustls::pki_types::pem::Error,
    },
    /// The file is PEM but holds no section of the kind needed.
    #[error("{path}: no {what} in the file")]
    Missing {
        /// The file.
        path: String,
        /// What was looked for, e.g. "CERTIFICATE section".
        what: &'static str,
    },
    /// A certificate of a CA file is not usable as a trust anchor.
    #[error("{path}: CA certificate refused as a trust anchor: {source}")]
    Anchor {
        /// The CA file.
        path: String,
        /// Why rustls refused it.
        source: tokio_rustls::rustls::Error,
    },
}

/// Every `CERTIFICATE` section of `path`, in file order (leaf first for a chain).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| parse_error(path, source))?;
    if certs.is_empty() {
        return Err(Error::Missing {
            path: path.display().to_string(),
            what: "CERTIFICATE section",
        });
    }
    Ok(certs)
}

/// The first private key of `path` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| match source {
        tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => Error::Missing {
            path: path.display().to_string(),
            what: "PRIVATE KEY section (PKCS#8, RSA or EC)",
        },
        source => parse_error(path, source),
    })
}

/// Every certificate of the CA file `path`, as trust anchors.
pub fn trust_anchors(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|source| Error::Anchor {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parse_error(path: &Path, source: tokio_rustls::rustls::pki_types::pem::Error) -> Error {
    Error::Parse {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent.crt");
        let err = certificates(&missing).expect_err("absent file");
        assert!(
            err.to_string()
                .starts_with(&format!("read {}: ", missing.display())),
            "{err}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").expect("write");
        let err = certificates(&empty).expect_err("no certificate");
        assert_eq!(
            err.to_string(),
            format!("{}: no CERTIFICATE section in the file", empty.display())
        );
        let err = private_key(&empty).expect_err("no key");
        assert!(err.to_string().contains("no PRIVATE KEY section"), "{err}");

        let broken = dir.path().join("broken.crt");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n").expect("write");
        let err = certificates(&broken).expect_err("broken PEM");
        assert!(
            err.to_string()
                .starts_with(&format!("parse {} as PEM: ", broken.display())),
            "{err}"
        );
    }
}
