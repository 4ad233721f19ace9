//! Builds the daemon's mTLS server config from its certificate, key and client-CA files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use tokio_rustls::rustls::{self, ServerConfig};

use super::pem;

/// The three files of the daemon's TLS identity and trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// PEM certificate chain the daemon presents, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
    /// PEM certificates of the CAs whose client certificates are accepted.
    pub client_ca: PathBuf,
}

impl ServerFiles {
    /// The three paths, in the order cert, key, client CA.
    pub fn paths(&self) -> [&Path; 3] {
        [&self.cert, &self.key, &self.client_ca]
    }
}

/// Why the server config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or holds no usable PEM.
    #[error(transparent)]
    Pem(#[from] pem::Error),
    /// The client certificate verifier could not be built from the CA file.
    #[error("{path}: client certificate verifier: {source}")]
    Verifier {
        /// The client-CA file.
        path: String,
        /// Why rustls refused to build it.
        source: VerifierBuilderError,
    },
    /// The certificate and key are not a usable pair (e.g. the key is not the certificate's).
    #[error("{cert} with key {key}: {source}")]
    Identity {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// Why rustls refused the pair.
        source: rustls::Error,
    },
    /// The crypto provider offers none of the protocol versions asked for.
    #[error("TLS protocol versions: {0}")]
    Versions(rustls::Error),
}

/// A server config for TLS 1.2 and 1.3 that presents `files.cert` and refuses any client
/// without a certificate signed by a CA of `files.client_ca`; ALPN offers HTTP/2.
pub fn load(files: &ServerFiles) -> Result<ServerConfig, Error> {
    let chain = pem::certificates(&files.cert)?;
    let key = pem::private_key(&files.key)?;
    let roots = pem::trust_anchors(&files.client_ca)?;
    let ca_path = || files.client_ca.display().to_string();
    // Client authentication is mandatory unless `allow_unauthenticated` is asked for.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider())
        .build()
        .map_err(|source| Error::Verifier {
            path: ca_path(),
            source,
        })?;
    let mut config = ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(Error::Versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| Error::Identity {
            cert: files.cert.display().to_string(),
            key: files.key.display().to_string(),
            source,
        })?;
    config.alpn_protocols = vec![super::ALPN_H2.to_vec()];
    Ok(config)
}
