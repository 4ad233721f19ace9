//! Network namespaces (`ip netns add`, entered with `setns`) and veth pairs between them.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::util::{must_run, run_cmd, unique_name};

/// Moves the calling thread into the network namespace behind `ns` (an open
/// `/run/netns/NAME` or `/proc/PID/ns/net`). Network namespaces are per thread, so
/// only this thread moves; sockets it creates afterwards belong to that namespace.
pub fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: setns takes a valid open fd and a flag; it touches no Rust-visible memory.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A named network namespace `/run/netns/fl-XXXXXXXX` with `lo` up, deleted on Drop.
///
/// Objects that live in it (veth ends, addresses, routes) go with it. Anything that
/// keeps it alive (a thread or process still inside) should be dropped first: declare
/// servers and probes after the `Netns` so they drop before it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates a fresh namespace with a unique name and brings `lo` up. Panics on failure
    /// (after removing whatever it had created).
    pub fn new() -> Netns {
        let name = unique_name("fl-");
        must_run("ip", &["netns", "add", &name]);
        // Guard first, so a failure below still deletes the namespace.
        let ns = Netns {
            path: PathBuf::from(format!("/run/netns/{name}")),
            name,
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`: open it and `setns` to enter, or pass to `nsenter --net=`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inode number of the namespace (what `stat -L /proc/PID/ns/net` shows for a
    /// process inside it): lets a test check where a process or thread really is.
    pub fn ino(&self) -> u64 {
        std::fs::metadata(&self.path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", self.path.display()))
            .ino()
    }

    /// Opens `/run/netns/NAME` for [`enter_netns`] (close-on-exec).
    pub fn open(&self) -> File {
        File::open(&self.path).unwrap_or_else(|e| panic!("open {}: {e}", self.path.display()))
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its handle.
    /// For servers that must outlive the call; sockets they open live in the namespace.
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = self.open();
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                enter_netns(&file).unwrap_or_else(|e| panic!("setns into {name}: {e}"));
                drop(file);
                f()
            })
            .expect("spawn thread")
    }

    /// Runs `f` to completion on a scoped thread inside this namespace and returns its
    /// result; `f` may borrow from the caller. Panics in `f` propagate.
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let file = self.open();
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                enter_netns(&file).unwrap_or_else(|e| panic!("setns into {}: {e}", self.name));
                drop(file);
                f()
            });
            match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// Runs `program args…` inside the namespace with `nsenter --net=PATH` (which, unlike
    /// `ip netns exec`, leaves the mount namespace and /sys alone). Returns stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let net = format!("--net={}", self.path.display());
        let mut all = vec![net.as_str(), "--", program];
        all.extend_from_slice(args);
        run_cmd("nsenter", &all)
    }

    /// `ip ARGS…` inside the namespace; panics on failure (test setup).
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        match self.exec("ip", args) {
            Ok(s) => s,
            Err(e) => panic!("in netns {}: {e}", self.name),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Best effort: the kernel frees the namespace (and its veth ends) once the last
        // process or thread inside it is gone.
        if let Err(e) = run_cmd("ip", &["netns", "del", &self.name]) {
            eprintln!("warning: deleting netns {}: {e}", self.name);
        }
    }
}

/// One end of a veth pair: an interface inside a [`Netns`].
#[derive(Debug, Clone)]
pub struct Link {
    name: String,
    netns_name: String,
    netns_path: PathBuf,
}

impl Link {
    /// Interface name (≤ 15 characters).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Name of the namespace the interface lives in.
    pub fn netns_name(&self) -> &str {
        &self.netns_name
    }

    fn ip(&self, args: &[&str]) -> String {
        let net = format!("--net={}", self.netns_path.display());
        let mut all = vec![net.as_str(), "--", "ip"];
        all.extend_from_slice(args);
        match run_cmd("nsenter", &all) {
            Ok(s) => s,
            Err(e) => panic!("on {} in netns {}: {e}", self.name, self.netns_name),
        }
    }

    /// Adds an address in CIDR form (`192.0.2.1/24`, `2001:db8::1/64`). IPv6 addresses
    /// get `nodad` so they are usable at once instead of after duplicate detection.
    pub fn add_addr(&self, cidr: &str) {
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", &self.name, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", &self.name]);
        }
    }

    /// Adds a route to `dest` (CIDR) through this interface, via gateway `via` or on-link.
    pub fn add_route(&self, dest: &str, via: Option<&str>) {
        let mut args = vec!["route", "add", dest];
        if let Some(gw) = via {
            args.extend_from_slice(&["via", gw]);
        }
        args.extend_from_slice(&["dev", &self.name]);
        self.ip(&args);
    }

    /// The interface index inside its namespace (what a tc/XDP attach would use).
    pub fn ifindex(&self) -> u32 {
        let out = self.ip(&["-j", "link", "show", "dev", &self.name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j link show JSON");
        v[0]["ifindex"].as_u64().expect("ifindex in ip -j output") as u32
    }
}

/// A veth pair: end `a` in one namespace, end `b` in another, both up.
///
/// Deleted with the namespaces (removing either end removes both), so it has no Drop.
#[derive(Debug, Clone)]
pub struct VethPair {
    /// The end inside the first namespace.
    pub a: Link,
    /// The end inside the second namespace.
    pub b: Link,
}

impl VethPair {
    /// Creates the pair directly inside `ns_a` and `ns_b` (never in the host namespace,
    /// so nothing leaks there if the test dies) and brings both ends up, without addresses.
    pub fn new(ns_a: &Netns, ns_b: &Netns) -> VethPair {
        let base = unique_name("fv");
        let (name_a, name_b) = (format!("{base}a"), format!("{base}b"));
        must_run(
            "ip",
            &[
                "link",
                "add",
                &name_a,
                "netns",
                ns_a.name(),
                "type",
                "veth",
                "peer",
                "name",
                &name_b,
                "netns",
                ns_b.name(),
            ],
        );
        let link = |name: String, ns: &Netns| Link {
            name,
            netns_name: ns.name().to_owned(),
            netns_path: ns.path().to_owned(),
        };
        let pair = VethPair {
            a: link(name_a, ns_a),
            b: link(name_b, ns_b),
        };
        for l in [&pair.a, &pair.b] {
            l.ip(&["link", "set", &l.name, "up"]);
        }
        pair
    }

    /// Like [`VethPair::new`], then adds `addrs_a` to end `a` and `addrs_b` to end `b`
    /// (CIDR strings, IPv4 or IPv6, several per end).
    pub fn with_addrs(ns_a: &Netns, addrs_a: &[&str], ns_b: &Netns, addrs_b: &[&str]) -> VethPair {
        let pair = VethPair::new(ns_a, ns_b);
        for a in addrs_a {
            pair.a.add_addr(a);
        }
        for b in addrs_b {
            pair.b.add_addr(b);
        }
        pair
    }
}
