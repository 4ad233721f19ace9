//! Certificate authorities and certificates made with `rcgen` for one test, the daemon's TLS files laid out as a Kubernetes Secret volume, and a client's TLS files.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use chaos_daemon::tls::client::{ClientTls, Identity};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::daemon::Daemon;

/// The names [`Ca::server`] certifies: what a client dialing loopback checks.
pub const LOOPBACK_NAMES: &[&str] = &["127.0.0.1", "localhost"];

/// A certificate authority made for one test.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A self-signed CA whose common name is `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate and its key (PEM) for `names`, signed by this CA, for `usage`.
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Pair {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for [`LOOPBACK_NAMES`].
    pub fn server(&self) -> Pair {
        self.server_for(LOOPBACK_NAMES)
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server_for(&self, names: &[&str]) -> Pair {
        self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose name is `name`.
    pub fn client(&self, name: &str) -> Pair {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A certificate and its private key, PEM.
pub struct Pair {
    /// The certificate, PEM.
    pub cert: String,
    /// Its private key, PEM.
    pub key: String,
}

/// The daemon's TLS files laid out as kubelet mounts a Secret: `tls.crt`, `tls.key` and
/// `ca.crt` are symlinks through `..data`, itself a symlink to a versioned directory that
/// an update replaces in one rename.
pub struct SecretVolume {
    dir: PathBuf,
    versions: u32,
}

impl SecretVolume {
    /// Lays out `server` and the client CA `client_ca` in `dir` (created if absent).
    pub fn new(dir: PathBuf, server: &Pair, client_ca: &str) -> SecretVolume {
        fs::create_dir_all(&dir).expect("secret dir");
        let mut volume = SecretVolume { dir, versions: 0 };
        volume.update(&server.cert, &server.key, client_ca);
        for name in ["tls.crt", "tls.key", "ca.crt"] {
            symlink(Path::new("..data").join(name), volume.dir.join(name)).expect("symlink");
        }
        volume
    }

    /// Writes a new version and points `..data` at it atomically.
    pub fn update(&mut self, cert: &str, key: &str, client_ca: &str) {
        self.versions += 1;
        let version = format!("..v{}", self.versions);
        let dir = self.dir.join(&version);
        fs::create_dir(&dir).expect("version dir");
        fs::write(dir.join("tls.crt"), cert).expect("write tls.crt");
        fs::write(dir.join("tls.key"), key).expect("write tls.key");
        fs::write(dir.join("ca.crt"), client_ca).expect("write ca.crt");
        let staged = self.dir.join("..data_tmp");
        symlink(&version, &staged).expect("staged ..data");
        fs::rename(&staged, self.dir.join("..data")).expect("swap ..data");
    }

    /// The path of file `name` of the volume, as the daemon is given it.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The daemon's flags for mutual TLS with this volume's files.
    pub fn daemon_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("tls.crt"),
            "--tls-key".into(),
            self.path("tls.key"),
            "--tls-client-ca".into(),
            self.path("ca.crt"),
        ]
    }

    /// A daemon serving this volume's files on `addr`, with the flags `extra` besides.
    pub async fn serve(&self, addr: SocketAddr, extra: &[&str]) -> Daemon {
        let addr = addr.to_string();
        let tls = self.daemon_args();
        let mut args = vec!["--listen", &addr];
        args.extend(tls.iter().map(String::as_str));
        args.extend(extra);
        Daemon::start(&args).await
    }
}

/// A client's files: the CAs it trusts for the server, and its own certificate.
pub struct ClientFiles {
    /// The CA certificates trusted for the server.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl ClientFiles {
    /// Writes `name-ca.crt` (`trusted`), `name.crt` and `name.key` (`pair`) into `dir`.
    pub fn new(dir: &Path, name: &str, trusted: &str, pair: &Pair) -> ClientFiles {
        let files = ClientFiles {
            ca: dir.join(format!("{name}-ca.crt")),
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        fs::write(&files.ca, trusted).expect("write client CA");
        fs::write(&files.cert, &pair.cert).expect("write client cert");
        fs::write(&files.key, &pair.key).expect("write client key");
        files
    }

    /// The library's client TLS for a server at 127.0.0.1, with or without the client
    /// certificate.
    pub fn tls(&self, with_cert: bool) -> ClientTls {
        let identity = with_cert.then_some(Identity {
            cert: &self.cert,
            key: &self.key,
        });
        ClientTls::load(&self.ca, identity, "127.0.0.1").expect("client TLS")
    }

    /// The TLS flags of `chaosctl` and `kubectl chaos`, with or without the client
    /// certificate.
    pub fn flags(&self, with_cert: bool) -> Vec<String> {
        let mut flags = vec!["--tls-ca".into(), self.ca.display().to_string()];
        if with_cert {
            flags.extend([
                "--tls-cert".into(),
                self.cert.display().to_string(),
                "--tls-key".into(),
                self.key.display().to_string(),
            ]);
        }
        flags
    }
}
