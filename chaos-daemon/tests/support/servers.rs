//! In-process servers inside a test namespace (UDP echo, UDP sink, TCP accept-and-close, TCP sink), each on its own setns'd thread, stopped on Drop.
//
// They run in the test process's own cgroup, so a fault targeting a test cgroup never
// touches them: only the probe's side of the traffic is the target.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use super::netns::Netns;
use super::util::wait_until;

/// How often a server thread wakes up to notice its shutdown flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Shared plumbing: a thread in a namespace, a stop flag, and a counter.
#[derive(Debug)]
struct ServerThread {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Spawns `serve(stop, counter)` in `ns` after `bind` has run there; returns once the
    /// socket is bound (so clients may send at once), or panics with the bind error.
    fn start<S, B>(ns: &Netns, what: &str, bind: B, serve: S) -> ServerThread
    where
        B: FnOnce() -> io::Result<(SocketAddr, S::Socket)> + Send + 'static,
        S: Serve + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let (stop2, counter2) = (stop.clone(), counter.clone());
        let thread = ns.spawn(move || match bind() {
            Ok((addr, sock)) => {
                let _ = tx.send(Ok(addr));
                serve.serve(sock, &stop2, &counter2);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        });
        match rx.recv() {
            Ok(Ok(addr)) => ServerThread {
                addr,
                stop,
                counter,
                thread: Some(thread),
            },
            Ok(Err(e)) => {
                let _ = thread.join();
                panic!("{what}: bind in netns {}: {e}", ns.name())
            }
            Err(_) => match thread.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => panic!("{what}: server thread ended before binding"),
            },
        }
    }

    fn count(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The loop body of one kind of server.
trait Serve {
    type Socket;
    fn serve(self, sock: Self::Socket, stop: &AtomicBool, counter: &AtomicU64);
}

fn bind_udp(bind: SocketAddr) -> io::Result<(SocketAddr, UdpSocket)> {
    let sock = UdpSocket::bind(bind)?;
    // A read timeout lets the loop see the stop flag without a wake-up datagram.
    sock.set_read_timeout(Some(STOP_POLL))?;
    Ok((sock.local_addr()?, sock))
}

struct Echo;
impl Serve for Echo {
    type Socket = UdpSocket;
    fn serve(self, sock: UdpSocket, stop: &AtomicBool, counter: &AtomicU64) {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if sock.send_to(&buf[..n], from).is_ok() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

struct Sink;
impl Serve for Sink {
    type Socket = UdpSocket;
    fn serve(self, sock: UdpSocket, stop: &AtomicBool, counter: &AtomicU64) {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            if sock.recv_from(&mut buf).is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct AcceptClose;
impl Serve for AcceptClose {
    type Socket = StdTcpListener;
    fn serve(self, l: StdTcpListener, stop: &AtomicBool, counter: &AtomicU64) {
        while !stop.load(Ordering::Relaxed) {
            // poll() with a timeout instead of a blocking accept so the flag is seen.
            let mut pfd = libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, STOP_POLL.as_millis() as libc::c_int) };
            if ready > 0 {
                while let Ok((stream, _)) = l.accept() {
                    counter.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                }
            }
        }
    }
}

/// UDP server echoing every datagram back to its sender, until Drop.
#[derive(Debug)]
pub struct UdpEchoServer(ServerThread);

impl UdpEchoServer {
    /// Binds `bind` inside `ns` (port 0 picks one: see [`UdpEchoServer::addr`]) and starts echoing.
    pub fn start(ns: &Netns, bind: SocketAddr) -> UdpEchoServer {
        UdpEchoServer(ServerThread::start(
            ns,
            "UdpEchoServer",
            move || bind_udp(bind),
            Echo,
        ))
    }

    /// The bound address (with the real port).
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Datagrams echoed so far.
    pub fn echoed(&self) -> u64 {
        self.0.count()
    }
}

struct ReadAll;
impl Serve for ReadAll {
    type Socket = StdTcpListener;
    fn serve(self, l: StdTcpListener, stop: &AtomicBool, counter: &AtomicU64) {
        let mut streams: Vec<std::net::TcpStream> = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        while !stop.load(Ordering::Relaxed) {
            while let Ok((stream, _)) = l.accept() {
                let _ = stream.set_nonblocking(true);
                streams.push(stream);
            }
            let mut idle = true;
            for s in &mut streams {
                if let Ok(n) = io::Read::read(s, &mut buf) {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    idle &= n == 0;
                }
            }
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// TCP server reading every connection and counting the bytes, until Drop.
#[derive(Debug)]
pub struct TcpSink(ServerThread);

impl TcpSink {
    /// Listens on `bind` inside `ns` (port 0 picks one).
    pub fn start(ns: &Netns, bind: SocketAddr) -> TcpSink {
        let bind_fn = move || {
            let l = StdTcpListener::bind(bind)?;
            l.set_nonblocking(true)?;
            Ok((l.local_addr()?, l))
        };
        TcpSink(ServerThread::start(ns, "TcpSink", bind_fn, ReadAll))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Bytes received so far, over every connection.
    pub fn bytes(&self) -> u64 {
        self.0.count()
    }
}

/// UDP server counting the datagrams it receives, until Drop.
#[derive(Debug)]
pub struct UdpSink(ServerThread);

impl UdpSink {
    /// Binds `bind` inside `ns` (port 0 picks one: see [`UdpSink::addr`]) and starts counting.
    pub fn start(ns: &Netns, bind: SocketAddr) -> UdpSink {
        UdpSink(ServerThread::start(
            ns,
            "UdpSink",
            move || bind_udp(bind),
            Sink,
        ))
    }

    /// The bound address (with the real port).
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.0.count()
    }

    /// Polls until at least `n` datagrams arrived or `timeout` passed; returns whether they did.
    pub fn wait_for_count(&self, n: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.count() >= n)
    }
}

/// TCP server that accepts each connection and closes it at once, until Drop.
#[derive(Debug)]
pub struct TcpAcceptServer(ServerThread);

/// The brief's name for [`TcpAcceptServer`].
pub type TcpListener = TcpAcceptServer;

impl TcpAcceptServer {
    /// Listens on `bind` inside `ns` (port 0 picks one: see [`TcpAcceptServer::addr`]).
    pub fn start(ns: &Netns, bind: SocketAddr) -> TcpAcceptServer {
        let bind_fn = move || {
            let l = StdTcpListener::bind(bind)?;
            l.set_nonblocking(true)?;
            Ok((l.local_addr()?, l))
        };
        TcpAcceptServer(ServerThread::start(
            ns,
            "TcpAcceptServer",
            bind_fn,
            AcceptClose,
        ))
    }

    /// The bound address (with the real port).
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.0.count()
    }
}
