//! The client side of the API's TLS: a config trusting a CA file and presenting an optional client certificate, and the handshake over any byte stream.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig};
use tokio_rustls::TlsConnector;

use super::pem;

/// Why the client TLS config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or holds no usable PEM.
    #[error(transparent)]
    Pem(#[from] pem::Error),
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
    /// The name to check the server's certificate against is neither a DNS name nor an IP.
    #[error("server name {name:?}: {reason}")]
    ServerName {
        /// The name given.
        name: String,
        /// Why it is not valid.
        reason: String,
    },
    /// The crypto provider offers none of the protocol versions asked for.
    #[error("TLS protocol versions: {0}")]
    Versions(rustls::Error),
}

/// A client certificate and its key, as PEM files.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The certificate chain, leaf first.
    pub cert: &'a Path,
    /// The private key of the leaf.
    pub key: &'a Path,
}

/// How to speak TLS to a daemon: whom to trust, what to present, which name to expect.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// TLS 1.2/1.3 trusting the CAs of `ca`, presenting `identity` if given (a daemon with
    /// mTLS refuses clients without one), and expecting a server certificate valid for
    /// `server_name` (a DNS name or an IP address).
    pub fn load(
        ca: &Path,
        identity: Option<Identity<'_>>,
        server_name: &str,
    ) -> Result<Self, Error> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| Error::ServerName {
            name: server_name.to_owned(),
            reason: e.to_string(),
        })?;
        let roots = pem::trust_anchors(ca)?;
        let builder = ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .map_err(Error::Versions)?
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(pem::certificates(id.cert)?, pem::private_key(id.key)?)
                .map_err(|source| Error::Identity {
                    cert: id.cert.display().to_string(),
                    key: id.key.display().to_string(),
                    source,
                })?,
        };
        config.alpn_protocols = vec![super::ALPN_H2.to_vec()];
        Ok(Self {
            config: Arc::new(config),
            server_name: name,
        })
    }

    /// The name the server's certificate must be valid for.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Runs the TLS handshake over `io`. With TLS 1.3 a server that refuses the client's
    /// certificate says so only after this returns, on the first read.
    pub async fn handshake<IO>(
        &self,
        io: IO,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), io)
            .await
    }
}
