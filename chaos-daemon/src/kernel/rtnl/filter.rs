//! cls_bpf filters on a clsact hook: attach a direct-action program, list, delete.

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::message::{
    attr_string, attr_u32, attrs, attrs_after, Plain, Request, TcMsg, NLM_F_CREATE, NLM_F_EXCL,
};
use super::{
    tc_handle, Error, Rtnl, TCA_KIND, TCA_OPTIONS, TC_H_CLSACT, TC_H_MIN_EGRESS, TC_H_MIN_INGRESS,
};

// include/uapi/linux/rtnetlink.h.
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;

// cls_bpf's options, include/uapi/linux/pkt_cls.h.
const TCA_BPF_CLASSID: u16 = 3;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
/// The program's return value is the verdict (TC_ACT_*); no separate action is attached.
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;

/// Which clsact hook a filter is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcDir {
    Ingress,
    Egress,
}

impl TcDir {
    /// The hook's parent handle: `ffff:fff2` or `ffff:fff3`.
    fn parent(self) -> u32 {
        let major = (TC_H_CLSACT >> 16) as u16;
        match self {
            TcDir::Ingress => tc_handle(major, TC_H_MIN_INGRESS),
            TcDir::Egress => tc_handle(major, TC_H_MIN_EGRESS),
        }
    }
}

impl fmt::Display for TcDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcDir::Ingress => "ingress",
            TcDir::Egress => "egress",
        })
    }
}

/// One filter on a clsact hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub prio: u16,
    pub handle: u32,
    /// The classifier: `bpf`, `u32`, `flower`, …
    pub kind: String,
    /// `TCA_BPF_NAME`: the name given at attach time (cls_bpf only).
    pub bpf_name: Option<String>,
    /// `TCA_BPF_ID`: the attached program's id (cls_bpf only).
    pub bpf_id: Option<u32>,
}

/// `tcm_info` of a filter: priority in the upper half, protocol in network byte order in
/// the lower, as tc(8) builds it. Always ETH_P_ALL: the program sees every packet.
fn filter_info(prio: u16) -> u32 {
    tc_handle(prio, (libc::ETH_P_ALL as u16).to_be())
}

impl Rtnl {
    /// Attaches `prog_fd` (a `BPF_PROG_TYPE_SCHED_CLS` program) as a direct-action cls_bpf
    /// filter on the `dir` hook of `ifindex`'s clsact qdisc, at `prio` with `handle`; fails
    /// with `EEXIST` if that filter exists. `prio` and `handle` must be non-zero: for the
    /// kernel 0 means "pick one" here and "all of them" when deleting. A non-zero `classid`
    /// is what the program reads in `skb->tc_classid` (its low 16 bits): cls_bpf sets it
    /// before each run
    /// (<https://elixir.bootlin.com/linux/v6.1/source/net/sched/cls_bpf.c#L94>), which
    /// tells one attachment of a program from another.
    #[allow(clippy::too_many_arguments)]
    pub fn add_bpf_filter(
        &mut self,
        ifindex: u32,
        dir: TcDir,
        prio: u16,
        handle: u32,
        prog_fd: BorrowedFd<'_>,
        name: &str,
        classid: u32,
    ) -> Result<(), Error> {
        let request = format!(
            "RTM_NEWTFILTER bpf {name} {dir} prio {prio} handle {handle:#x} on ifindex {ifindex}"
        );
        check_ids(&request, prio, handle)?;
        let mut req = Request::new(
            RTM_NEWTFILTER,
            NLM_F_CREATE | NLM_F_EXCL,
            &TcMsg::new(ifindex, handle, dir.parent(), filter_info(prio)),
        );
        req.attr_str(TCA_KIND, "bpf");
        let options = req.begin_nest(TCA_OPTIONS);
        req.attr_u32(TCA_BPF_FD, prog_fd.as_raw_fd() as u32);
        req.attr_str(TCA_BPF_NAME, name);
        req.attr_u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT);
        if classid != 0 {
            req.attr_u32(TCA_BPF_CLASSID, classid);
        }
        req.end_nest(options);
        self.execute(&request, req)
    }

    /// Deletes the cls_bpf filter at `prio`/`handle` on the `dir` hook of `ifindex`. Ok if
    /// it is not there, including when the clsact qdisc itself is gone.
    pub fn delete_filter(
        &mut self,
        ifindex: u32,
        dir: TcDir,
        prio: u16,
        handle: u32,
    ) -> Result<(), Error> {
        let request =
            format!("RTM_DELTFILTER {dir} prio {prio} handle {handle:#x} on ifindex {ifindex}");
        check_ids(&request, prio, handle)?;
        let mut req = Request::new(
            RTM_DELTFILTER,
            0,
            &TcMsg::new(ifindex, handle, dir.parent(), filter_info(prio)),
        );
        // With the kind, someone else's classifier at this prio is refused (EINVAL), not deleted.
        req.attr_str(TCA_KIND, "bpf");
        match self.execute(&request, req) {
            Ok(()) => Ok(()),
            // ENOENT: no classifier at this prio, or no filter with this handle in it.
            // EINVAL: no clsact qdisc ("Parent Qdisc doesn't exists"), or another kind of
            // classifier at this prio — only a look tells which.
            // https://elixir.bootlin.com/linux/v6.1/source/net/sched/cls_api.c (tc_del_tfilter)
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            Err(e) if e.errno() == Some(libc::EINVAL) && !self.has_clsact(ifindex)? => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The filters on the `dir` hook of `ifindex`; empty when there is no clsact qdisc.
    pub fn filters(&mut self, ifindex: u32, dir: TcDir) -> Result<Vec<Filter>, Error> {
        let req = Request::new(RTM_GETTFILTER, 0, &TcMsg::new(ifindex, 0, dir.parent(), 0));
        let request = format!("RTM_GETTFILTER dump {dir} on ifindex {ifindex}");
        self.dump(&request, req, RTM_NEWTFILTER, parse_filter)
    }
}

fn check_ids(request: &str, prio: u16, handle: u32) -> Result<(), Error> {
    if prio == 0 || handle == 0 {
        return Err(Error::Invalid {
            request: request.to_owned(),
            reason: "prio and handle must be non-zero",
        });
    }
    Ok(())
}

fn parse_filter(payload: &[u8]) -> Option<Filter> {
    let tcm = TcMsg::read(payload)?;
    // Each classifier instance (one per prio) is dumped first as a header of its own with
    // handle 0 and no options, then its filters:
    // https://elixir.bootlin.com/linux/v6.1/source/net/sched/cls_api.c (tcf_chain_dump)
    if tcm.handle == 0 {
        return None;
    }
    let mut filter = Filter {
        prio: (tcm.info >> 16) as u16,
        handle: tcm.handle,
        kind: String::new(),
        bpf_name: None,
        bpf_id: None,
    };
    for (ty, value) in attrs_after::<TcMsg>(payload) {
        match ty {
            TCA_KIND => filter.kind = attr_string(value),
            TCA_OPTIONS => {
                for (ty, value) in attrs(value) {
                    match ty {
                        TCA_BPF_NAME => filter.bpf_name = Some(attr_string(value)),
                        TCA_BPF_ID => filter.bpf_id = attr_u32(value),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // TCA_BPF_* numbers mean something else in other classifiers' options.
    if filter.kind != "bpf" {
        filter.bpf_name = None;
        filter.bpf_id = None;
    }
    Some(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_and_info_match_tc() {
        assert_eq!(TcDir::Ingress.parent(), 0xffff_fff2);
        assert_eq!(TcDir::Egress.parent(), 0xffff_fff3);
        // `tc filter add … prio 1 protocol all` sends tcm_info 0x00010300 on little endian.
        assert_eq!(filter_info(1), 0x0001_0000 | u32::from(3u16.to_be()));
    }
}
