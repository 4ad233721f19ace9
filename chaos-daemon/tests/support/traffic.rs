//! Traffic jobs for impairment tests: a paced UDP round-trip probe that times every reply,
//! and a TCP bulk sender.
use std::io::{ErrorKind, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Sends `count` datagrams of `size` bytes (at least 24), one every `interval_us`, to an
/// echo server, and times each reply. Result: `sent`, `received` (distinct), `duplicates`,
/// `reordered` (replies arriving after a later-sent one), `rtt_us` ([seq, sent_at_us,
/// rtt_us] per first reply), `started_unix_ms`.
pub fn udp_rtt(
    peer: SocketAddr,
    count: u64,
    interval_us: u64,
    size: usize,
    ready: impl FnOnce(),
) -> Value {
    let bind: SocketAddr = match peer {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("addr"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("addr"),
    };
    let sock = UdpSocket::bind(bind).expect("bind UDP probe socket");
    sock.set_nonblocking(true).expect("nonblocking");
    let nonce: u64 = super::util::random_u32().into();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let start = Instant::now();
    let n = count as usize;
    let mut sent_at: Vec<Option<u64>> = vec![None; n];
    let mut rtt: Vec<Option<u64>> = vec![None; n];
    let (mut sent, mut dups, mut reordered, mut highest) = (0u64, 0u64, 0u64, None::<u64>);
    let mut buf = vec![0u8; size.max(24)];
    let mut payload = vec![0u8; size.max(24)];
    let mut next = 0u64;
    // Replies may trail the last send by the delay: wait up to 2 s of silence after it.
    let mut quiet_since = None::<Instant>;
    ready();
    loop {
        let now_us = start.elapsed().as_micros() as u64;
        if next < count && now_us >= next * interval_us {
            payload[..8].copy_from_slice(&nonce.to_be_bytes());
            payload[8..16].copy_from_slice(&next.to_be_bytes());
            if sock.send_to(&payload, peer).is_ok() {
                sent += 1;
                sent_at[next as usize] = Some(now_us);
            }
            next += 1;
            continue;
        }
        match sock.recv_from(&mut buf) {
            Ok((len, _)) if len >= 16 && buf[..8] == nonce.to_be_bytes() => {
                let at = start.elapsed().as_micros() as u64;
                let seq = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
                let Some(when) = sent_at.get(seq as usize).copied().flatten() else {
                    continue;
                };
                quiet_since = None;
                if rtt[seq as usize].is_some() {
                    dups += 1;
                    continue;
                }
                rtt[seq as usize] = Some(at - when);
                if highest.is_some_and(|h| seq < h) {
                    reordered += 1;
                }
                highest = highest.max(Some(seq));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if next >= count {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(2) || rtt.iter().all(Option::is_some) {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => panic!("recv_from: {e}"),
        }
    }
    let samples: Vec<Value> = (0..n)
        .filter_map(|i| Some(json!([i, sent_at[i]?, rtt[i]?])))
        .collect();
    json!({
        "sent": sent,
        "received": samples.len(),
        "duplicates": dups,
        "reordered": reordered,
        "rtt_us": samples,
        "started_unix_ms": started_unix_ms,
    })
}

/// Writes to a TCP connection for `duration_ms`. Result: `bytes` written, `elapsed_us`.
pub fn tcp_send(peer: SocketAddr, duration_ms: u64, ready: impl FnOnce()) -> Value {
    let mut stream = TcpStream::connect_timeout(&peer, Duration::from_secs(10))
        .expect("connect to the TCP sink");
    stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .expect("write timeout");
    let chunk = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let end = Duration::from_millis(duration_ms);
    let mut bytes = 0u64;
    ready();
    while start.elapsed() < end {
        match stream.write(&chunk) {
            Ok(n) => bytes += n as u64,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("write: {e}"),
        }
    }
    json!({ "bytes": bytes, "elapsed_us": start.elapsed().as_micros() as u64 })
}

/// RTT quantiles of [`udp_rtt`] samples, in ms. Quantiles rather than mean and maximum: a
/// busy (or emulated) machine adds latency spikes to a few packets, which move a mean and a
/// maximum but not a quartile.
pub struct Rtts(Vec<f64>);

impl Rtts {
    pub fn of(result: &Value) -> Rtts {
        let mut rtts: Vec<f64> = result["rtt_us"]
            .as_array()
            .expect("rtt_us")
            .iter()
            .map(|s| s[2].as_f64().expect("rtt") / 1000.0)
            .collect();
        assert!(!rtts.is_empty(), "no reply at all: {result}");
        rtts.sort_by(f64::total_cmp);
        Rtts(rtts)
    }

    /// The `q` quantile (0 = min, 1 = max).
    pub fn q(&self, q: f64) -> f64 {
        self.0[((self.0.len() - 1) as f64 * q).round() as usize]
    }

    pub fn min(&self) -> f64 {
        self.q(0.0)
    }

    pub fn median(&self) -> f64 {
        self.q(0.5)
    }

    /// Interquartile range.
    pub fn iqr(&self) -> f64 {
        self.q(0.75) - self.q(0.25)
    }

    /// Share of samples below `ms`.
    pub fn below(&self, ms: f64) -> f64 {
        self.0.iter().filter(|r| **r < ms).count() as f64 / self.0.len() as f64
    }
}
