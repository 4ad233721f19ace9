//! Remembers the first I/O error of a byte stream, which the HTTP/2 layers above it may report only as "connection closed".

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where a [`Tapped`] stream leaves its first error; shared by every stream of one channel.
pub type FirstError = Arc<OnceLock<String>>;

/// A stream that records its first read or write error (e.g. a TLS alert from the
/// server) as text in a [`FirstError`], and otherwise passes everything through.
pub struct Tapped<S> {
    inner: S,
    first_error: FirstError,
}

impl<S> Tapped<S> {
    /// Wraps `inner`, recording into `first_error`.
    pub fn new(inner: S, first_error: FirstError) -> Self {
        Self { inner, first_error }
    }

    fn record<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(error)) = &result {
            // Only the first one: later errors are consequences of it.
            let _ = self.first_error.set(super::connect::root_cause(error));
        }
        result
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.record(result)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.record(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.record(result)
    }
}
