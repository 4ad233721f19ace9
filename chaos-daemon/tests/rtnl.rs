//! The rtnetlink client against the real kernel, inside throwaway network namespaces: links,
//! the root qdisc, clsact and cls_bpf filters, cross-checked with `ip` and `tc`.
mod support;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use chaos_daemon::kernel::netns;
use chaos_daemon::kernel::rtnl::{
    tc_handle, Filter, FqOptions, Qdisc, Rtnl, TcDir, TC_H_CLSACT, TC_H_ROOT,
};
use support::{require_root, Netns, VethPair};

/// Priority and handle of the test filter.
const PRIO: u16 = 0xfa17;
const HANDLE: u32 = 1;

/// A namespace with a veth pair whose peer is in a second namespace, and a socket in the
/// first. Fields drop in order: the socket (which keeps its namespace alive) first, then the
/// namespaces, which take the veth pair and any qdisc or filter on it with them.
struct Fixture {
    rtnl: Rtnl,
    pair: VethPair,
    ns: Netns,
    _peer_ns: Netns,
}

impl Fixture {
    fn new() -> Fixture {
        let ns = Netns::new();
        let peer_ns = Netns::new();
        let pair = VethPair::new(&ns, &peer_ns);
        let rtnl = Rtnl::open_in(ns.path()).unwrap_or_else(|e| panic!("{e}"));
        Fixture {
            rtnl,
            pair,
            ns,
            _peer_ns: peer_ns,
        }
    }

    /// `tc OBJECT VERB dev <end a> REST…` inside the namespace, from `[OBJECT, VERB, REST…]`.
    fn tc(&self, args: &[&str]) -> String {
        let mut all = args[..2].to_vec();
        all.extend_from_slice(&["dev", self.pair.a.name()]);
        all.extend_from_slice(&args[2..]);
        self.ns
            .exec("tc", &all)
            .unwrap_or_else(|e| panic!("tc {all:?}: {e}"))
    }
}

#[test]
fn links_come_from_the_target_namespace() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let other = Netns::new();
    let local = VethPair::new(&ns, &ns);
    let cross = VethPair::new(&ns, &other);
    let mut rtnl = Rtnl::open_in(ns.path()).unwrap_or_else(|e| panic!("{e}"));

    let links = rtnl.links().unwrap_or_else(|e| panic!("{e}"));
    let find = |name: &str| {
        links
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {links:#?}"))
    };
    let lo = find("lo");
    assert!(lo.loopback && lo.up, "{lo:?}");
    assert_eq!(lo.kind, None);

    let (a, b) = (find(local.a.name()), find(local.b.name()));
    for end in [a, b] {
        assert_eq!(end.kind.as_deref(), Some("veth"), "{end:?}");
        assert!(end.up && !end.loopback, "{end:?}");
        assert_eq!(
            end.peer_netnsid, None,
            "peer in the same namespace: {end:?}"
        );
    }
    assert_eq!(a.ifindex, local.a.ifindex());
    assert_eq!(b.ifindex, local.b.ifindex());
    assert_eq!(a.peer_ifindex, Some(b.ifindex));
    assert_eq!(b.peer_ifindex, Some(a.ifindex));

    let x = find(cross.a.name());
    assert_eq!(x.kind.as_deref(), Some("veth"));
    assert_eq!(x.peer_ifindex, Some(cross.b.ifindex()), "{x:?}");
    assert!(x.peer_netnsid.is_some(), "peer in another namespace: {x:?}");

    // Exactly what `ip link` sees inside the namespace…
    let out = ns.ip(&["-j", "link", "show"]);
    let ip: serde_json::Value = serde_json::from_str(&out).expect("ip -j link show JSON");
    let mut ip_names: Vec<String> = ip
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_owned())
        .collect();
    let mut names: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
    ip_names.sort();
    names.sort();
    assert_eq!(names, ip_names);
    // …and none of it is in this thread's (the root) namespace.
    let root = Rtnl::open()
        .and_then(|mut r| r.links())
        .unwrap_or_else(|e| panic!("{e}"));
    for name in [local.a.name(), local.b.name(), cross.a.name()] {
        assert!(
            !root.iter().any(|l| l.name == name),
            "{name} in the root namespace"
        );
    }

    // netns::run_in really moves its thread, and only its thread.
    let own = Path::new("/proc/thread-self/ns/net");
    let inside = netns::run_in(ns.path(), move || netns::inode(own))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inside, ns.ino());
    assert_eq!(
        netns::inode(ns.path()).unwrap_or_else(|e| panic!("{e}")),
        ns.ino()
    );
    assert_ne!(
        netns::inode(own).unwrap_or_else(|e| panic!("{e}")),
        ns.ino()
    );
}

#[test]
fn root_qdisc_is_replaced_and_restored() {
    if !require_root() {
        return;
    }
    let mut f = Fixture::new();
    let ifindex = f.pair.a.ifindex();
    let default = Qdisc {
        ifindex,
        kind: "noqueue".into(),
        handle: 0,
        parent: TC_H_ROOT,
    };
    let root = f.rtnl.root_qdisc(ifindex).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root.as_ref(), Some(&default));

    // struct tc_fifo_qopt { __u32 limit; }
    let handle = tc_handle(0xfa17, 0);
    f.rtnl
        .replace_root(ifindex, handle, "pfifo", &77u32.to_ne_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let root = f.rtnl.root_qdisc(ifindex).unwrap_or_else(|e| panic!("{e}"));
    let pfifo = Qdisc {
        ifindex,
        kind: "pfifo".into(),
        handle,
        parent: TC_H_ROOT,
    };
    assert_eq!(root.as_ref(), Some(&pfifo));
    let shown = f.tc(&["qdisc", "show"]);
    assert!(
        shown.contains("qdisc pfifo fa17: root") && shown.contains("limit 77p"),
        "{shown}"
    );

    f.rtnl
        .delete_root(ifindex)
        .unwrap_or_else(|e| panic!("{e}"));
    let root = f.rtnl.root_qdisc(ifindex).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root.as_ref(), Some(&default));
    assert!(f.tc(&["qdisc", "show"]).contains("qdisc noqueue 0: root"));

    // Nothing left to delete: an error that says so by its errno.
    let e = f.rtnl.delete_root(ifindex).unwrap_err();
    eprintln!(
        "deleting the default root qdisc: {e} (errno {:?})",
        e.errno()
    );
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("RTM_DELQDISC root on ifindex {ifindex}: ")),
        "{e}"
    );
}

#[test]
fn fq_root_is_refused_with_an_errno_where_fq_is_missing() {
    if !require_root() {
        return;
    }
    let mut f = Fixture::new();
    let ifindex = f.pair.a.ifindex();
    let options = FqOptions {
        limit: 10_000,
        flow_limit: 100,
        horizon_us: 10_000_000,
        horizon_drop: false,
    };
    let handle = tc_handle(0xfa17, 0);
    match f
        .rtnl
        .replace_root(ifindex, handle, "fq", &options.encode())
    {
        Ok(()) => {
            // A kernel with sch_fq: the options must have arrived.
            eprintln!("this kernel has fq");
            let shown = f.tc(&["qdisc", "show"]);
            assert!(
                shown.contains("qdisc fq fa17: root")
                    && shown.contains("limit 10000p")
                    && shown.contains("flow_limit 100p")
                    && shown.contains("horizon_cap"),
                "{shown}"
            );
        }
        Err(e) => {
            eprintln!("fq on this kernel: {e} (errno {:?})", e.errno());
            assert!(
                matches!(e.errno(), Some(libc::ENOENT | libc::EOPNOTSUPP)),
                "{e}"
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("RTM_NEWQDISC fq on ifindex {ifindex}: ")),
                "{e}"
            );
            // The failed replace left the default in place.
            let root = f.rtnl.root_qdisc(ifindex).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(root.map(|q| q.kind).as_deref(), Some("noqueue"));
        }
    }
}

#[test]
fn clsact_and_bpf_filter_come_and_go() {
    if !require_root() {
        return;
    }
    let prog = load_tc_ok_program();
    let prog_id = prog_id(&prog);
    let mut f = Fixture::new();
    let ifindex = f.pair.a.ifindex();
    let rtnl = &mut f.rtnl;

    assert!(rtnl.add_clsact(ifindex).unwrap_or_else(|e| panic!("{e}")));
    assert!(!rtnl.add_clsact(ifindex).unwrap_or_else(|e| panic!("{e}")));
    let clsact = rtnl
        .qdiscs(ifindex)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|q| q.kind == "clsact")
        .expect("clsact listed");
    assert_eq!(
        (clsact.handle, clsact.parent),
        (tc_handle(0xffff, 0), TC_H_CLSACT)
    );

    rtnl.add_bpf_filter(
        ifindex,
        TcDir::Egress,
        PRIO,
        HANDLE,
        prog.as_fd(),
        "shape_test",
        0,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = rtnl
        .add_bpf_filter(
            ifindex,
            TcDir::Egress,
            PRIO,
            HANDLE,
            prog.as_fd(),
            "shape_test",
            0,
        )
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    let e = rtnl
        .add_bpf_filter(
            ifindex,
            TcDir::Egress,
            0,
            HANDLE,
            prog.as_fd(),
            "shape_test",
            0,
        )
        .unwrap_err();
    assert_eq!(
        e.errno(),
        None,
        "prio 0 is refused before the kernel sees it: {e}"
    );

    let filters = rtnl
        .filters(ifindex, TcDir::Egress)
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = Filter {
        prio: PRIO,
        handle: HANDLE,
        kind: "bpf".into(),
        bpf_name: Some("shape_test".into()),
        bpf_id: Some(prog_id),
    };
    assert_eq!(filters, vec![expected]);
    let ingress = rtnl
        .filters(ifindex, TcDir::Ingress)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ingress.is_empty(), "{ingress:?}");
    let shown = f.tc(&["filter", "show", "egress"]);
    assert!(
        shown.contains("shape_test") && shown.contains("direct-action"),
        "{shown}"
    );

    let rtnl = &mut f.rtnl;
    rtnl.delete_filter(ifindex, TcDir::Egress, PRIO, HANDLE)
        .unwrap_or_else(|e| panic!("{e}"));
    let left = rtnl
        .filters(ifindex, TcDir::Egress)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "{left:?}");
    // Deleting what is not there is fine: first with clsact still there…
    rtnl.delete_filter(ifindex, TcDir::Egress, PRIO, HANDLE)
        .unwrap_or_else(|e| panic!("{e}"));
    rtnl.delete_clsact(ifindex)
        .unwrap_or_else(|e| panic!("{e}"));
    let qdiscs = rtnl.qdiscs(ifindex).unwrap_or_else(|e| panic!("{e}"));
    assert!(!qdiscs.iter().any(|q| q.kind == "clsact"), "{qdiscs:?}");
    // …then with it gone.
    rtnl.delete_filter(ifindex, TcDir::Egress, PRIO, HANDLE)
        .unwrap_or_else(|e| panic!("{e}"));
    rtnl.delete_clsact(ifindex)
        .unwrap_or_else(|e| panic!("{e}"));
    let none = rtnl
        .filters(ifindex, TcDir::Egress)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.is_empty(), "{none:?}");

    // An `ingress` qdisc in clsact's slot is reported, not mistaken for clsact, and left alone.
    f.tc(&["qdisc", "add", "ingress"]);
    let e = f.rtnl.add_clsact(ifindex).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    assert!(e.to_string().contains("qdisc ingress already holds"), "{e}");
    f.rtnl
        .delete_clsact(ifindex)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.tc(&["qdisc", "show"]).contains("qdisc ingress ffff:"));
}

/// Loads `r0 = TC_ACT_OK (0); exit` as a SCHED_CLS program with a raw `bpf(BPF_PROG_LOAD)`.
fn load_tc_ok_program() -> OwnedFd {
    /// The `BPF_PROG_LOAD` prefix of `union bpf_attr`; the kernel zero-fills the rest.
    #[repr(C)]
    struct ProgLoadAttr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
    }
    const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 64);
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
    // BPF_MOV64_IMM(BPF_REG_0, 0) and BPF_EXIT_INSN(): opcode in the low byte.
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = b"GPL\0";
    let mut prog_name = [0u8; 16];
    prog_name[..9].copy_from_slice(b"fl_tc_ok\0");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SCHED_CLS,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix whose pointers outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    assert!(
        fd >= 0,
        "bpf(BPF_PROG_LOAD): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// The program's id, from `/proc/self/fdinfo/FD`.
fn prog_id(prog: &OwnedFd) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", prog.as_raw_fd()))
        .expect("read fdinfo");
    info.lines()
        .find_map(|l| l.strip_prefix("prog_id:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no prog_id in {info}"))
}

/// Kills and reaps a helper process when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two namespaces A1, A2, each with a veth to its own B1, B2: fresh namespaces number their
/// devices alike, so indexes alone cannot tell B1's end from B2's; the peer's namespace id
/// does, and the ingress end of a process in A2 is found in B2.
#[test]
fn the_other_end_of_a_veth_is_told_by_its_namespace_id() {
    if !require_root() {
        return;
    }
    let (a1, b1, a2, b2) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
    let one = VethPair::new(&a1, &b1);
    let two = VethPair::new(&a2, &b2);
    for (ns, pair) in [(&a1, &one), (&a2, &two)] {
        ns.ip(&["link", "set", pair.a.name(), "up"]);
    }
    assert_eq!(
        (one.a.ifindex(), one.b.ifindex()),
        (two.a.ifindex(), two.b.ifindex()),
        "the two pairs should collide on indexes for this test to mean anything"
    );
    let mut rtnl = Rtnl::open_in(a2.path()).unwrap_or_else(|e| panic!("{e}"));
    let links = rtnl.links().unwrap_or_else(|e| panic!("{e}"));
    let end = links
        .iter()
        .find(|l| l.name == two.a.name())
        .expect("A2's veth");
    let want = end.peer_netnsid.expect("the peer is in another namespace");
    let mut nsid = |ns: &Netns| rtnl.nsid_of(&ns.open()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nsid(&b2), Some(want));
    assert_ne!(nsid(&b1), Some(want));

    let sleeper = std::process::Command::new("nsenter")
        .arg(format!("--net={}", a2.path().display()))
        .args(["sleep", "60"])
        .spawn()
        .expect("nsenter sleep");
    let sleeper = Reaped(sleeper);
    let pid = sleeper.0.id();
    let in_a2 = support::wait_until(std::time::Duration::from_secs(10), || {
        netns::inode(Path::new(&format!("/proc/{pid}/ns/net"))).ok() == Some(a2.ino())
    });
    assert!(in_a2, "the helper never entered A2");
    let (own, ingress) =
        chaos_daemon::kernel::ifaces::interfaces_of([pid], true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(ingress[0].netns, b2.ino(), "{ingress:?} is not B2's end");
    assert_eq!(ingress[0].name, two.b.name());
}
