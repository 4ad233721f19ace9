//! TLS for the API's TCP transport: PEM files, the daemon's reloading mTLS acceptor and the client's handshake, all with rustls' ring provider.

use std::sync::Arc;

use tokio_rustls::rustls::crypto::{ring, CryptoProvider};

pub mod client;
pub mod incoming;
pub mod pem;
pub mod reload;
pub mod server;

/// ALPN protocol of gRPC: HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

/// The crypto provider of every TLS config built here. Named explicitly rather than taken
/// from rustls' process default, which becomes ambiguous (and panics) as soon as another
/// crate in the build enables a second provider.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}
