//! Qdiscs: reading and replacing a device's root qdisc, and the clsact qdisc BPF filters hang on.

use super::message::{
    attr_string, attrs_after, push_attr, Plain, Request, TcMsg, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REPLACE,
};
use super::{Error, Rtnl, CLSACT_HANDLE, TCA_KIND, TCA_OPTIONS, TC_H_CLSACT, TC_H_ROOT};

// include/uapi/linux/rtnetlink.h.
const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;

// fq's options, include/uapi/linux/pkt_sched.h.
const TCA_FQ_PLIMIT: u16 = 1;
const TCA_FQ_FLOW_PLIMIT: u16 = 2;
const TCA_FQ_HORIZON: u16 = 14;
const TCA_FQ_HORIZON_DROP: u16 = 15;

/// One qdisc attached to a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qdisc {
    pub ifindex: u32,
    /// `TCA_KIND`: `noqueue`, `pfifo`, `fq`, `clsact`, …
    pub kind: String,
    /// `major:minor` as one u32; 0 for a device's default qdisc.
    pub handle: u32,
    /// [`TC_H_ROOT`] for the root qdisc, [`TC_H_CLSACT`] for clsact/ingress.
    pub parent: u32,
}

/// `TCA_OPTIONS` payload for fq (include/uapi/linux/pkt_sched.h `TCA_FQ_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FqOptions {
    /// Packets the whole qdisc may hold (`TCA_FQ_PLIMIT`).
    pub limit: u32,
    /// Packets one flow may hold (`TCA_FQ_FLOW_PLIMIT`).
    pub flow_limit: u32,
    /// How far in the future a packet's departure time may be, in µs (`TCA_FQ_HORIZON`).
    pub horizon_us: u32,
    /// Drop packets beyond the horizon; false caps their timestamp at the horizon instead
    /// (`TCA_FQ_HORIZON_DROP`, a u8).
    pub horizon_drop: bool,
}

impl FqOptions {
    /// The nested attributes, ready for [`Rtnl::replace_root`].
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(32);
        // Fixed-size payloads cannot exceed an attribute's length limit.
        push_attr(&mut buf, TCA_FQ_PLIMIT, &self.limit.to_ne_bytes());
        push_attr(&mut buf, TCA_FQ_FLOW_PLIMIT, &self.flow_limit.to_ne_bytes());
        push_attr(&mut buf, TCA_FQ_HORIZON, &self.horizon_us.to_ne_bytes());
        push_attr(
            &mut buf,
            TCA_FQ_HORIZON_DROP,
            &[u8::from(self.horizon_drop)],
        );
        buf
    }
}

impl Rtnl {
    /// The qdiscs attached to `ifindex` (root, children, clsact).
    pub fn qdiscs(&mut self, ifindex: u32) -> Result<Vec<Qdisc>, Error> {
        // tc_dump_qdisc walks every device whatever tcm_ifindex says, so filter here:
        // https://elixir.bootlin.com/linux/v6.1/source/net/sched/sch_api.c (tc_dump_qdisc)
        let req = Request::new(RTM_GETQDISC, 0, &TcMsg::new(ifindex, 0, 0, 0));
        let request = format!("RTM_GETQDISC dump on ifindex {ifindex}");
        self.dump(&request, req, RTM_NEWQDISC, |payload| {
            parse_qdisc(payload).filter(|q| q.ifindex == ifindex)
        })
    }

    /// The root qdisc of `ifindex`, if the device has one.
    pub fn root_qdisc(&mut self, ifindex: u32) -> Result<Option<Qdisc>, Error> {
        Ok(self
            .qdiscs(ifindex)?
            .into_iter()
            .find(|q| q.parent == TC_H_ROOT))
    }

    /// Makes a `kind` qdisc with `handle` (0: the kernel picks one) the root of `ifindex`,
    /// replacing whatever was there. `options` is the `TCA_OPTIONS` payload (e.g.
    /// [`FqOptions::encode`]); empty sends none, leaving the qdisc's defaults.
    pub fn replace_root(
        &mut self,
        ifindex: u32,
        handle: u32,
        kind: &str,
        options: &[u8],
    ) -> Result<(), Error> {
        let mut req = Request::new(
            RTM_NEWQDISC,
            NLM_F_CREATE | NLM_F_REPLACE,
            &TcMsg::new(ifindex, handle, TC_H_ROOT, 0),
        );
        req.attr_str(TCA_KIND, kind);
        if !options.is_empty() {
            req.attr(TCA_OPTIONS, options);
        }
        self.execute(&format!("RTM_NEWQDISC {kind} on ifindex {ifindex}"), req)
    }

    /// Deletes the root qdisc of `ifindex`; the kernel puts the device's default back.
    ///
    /// When there is nothing to delete the error says so through [`Error::errno`]: `ENOENT`
    /// when the root is already the default (handle 0), see tc_get_qdisc in
    /// https://elixir.bootlin.com/linux/v6.1/source/net/sched/sch_api.c
    pub fn delete_root(&mut self, ifindex: u32) -> Result<(), Error> {
        let req = Request::new(RTM_DELQDISC, 0, &TcMsg::new(ifindex, 0, TC_H_ROOT, 0));
        self.execute(&format!("RTM_DELQDISC root on ifindex {ifindex}"), req)
    }

    /// Attaches a clsact qdisc to `ifindex`: true if created, false if one was already there.
    pub fn add_clsact(&mut self, ifindex: u32) -> Result<bool, Error> {
        let request = format!("RTM_NEWQDISC clsact on ifindex {ifindex}");
        let mut req = Request::new(
            RTM_NEWQDISC,
            NLM_F_CREATE | NLM_F_EXCL,
            &TcMsg::new(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0),
        );
        req.attr_str(TCA_KIND, "clsact");
        match self.execute(&request, req) {
            Ok(()) => Ok(true),
            // clsact and ingress share parent and handle, so EEXIST does not say which
            // of the two is there.
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                let existing = self
                    .qdiscs(ifindex)?
                    .into_iter()
                    .find(|q| q.parent == TC_H_CLSACT);
                match existing {
                    Some(q) if q.kind == "clsact" => Ok(false),
                    Some(q) => Err(Error::Occupied {
                        request,
                        found: q.kind,
                    }),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the clsact qdisc of `ifindex`, and with it every filter on it. Ok if there
    /// is none (another kind of qdisc in its place is left alone).
    pub fn delete_clsact(&mut self, ifindex: u32) -> Result<(), Error> {
        let mut req = Request::new(
            RTM_DELQDISC,
            0,
            &TcMsg::new(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0),
        );
        // With the kind, the kernel refuses to delete an `ingress` qdisc in its place.
        req.attr_str(TCA_KIND, "clsact");
        match self.execute(&format!("RTM_DELQDISC clsact on ifindex {ifindex}"), req) {
            Ok(()) => Ok(()),
            // ENOENT: the device never had an ingress queue. EINVAL: the queue holds its
            // default qdisc (handle 0, "Invalid handle") or an ingress one ("Invalid qdisc
            // name") — or the request was wrong, which only a look can tell.
            // https://elixir.bootlin.com/linux/v6.1/source/net/sched/sch_api.c (tc_get_qdisc)
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            Err(e) if e.errno() == Some(libc::EINVAL) && !self.has_clsact(ifindex)? => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether a clsact qdisc is attached to `ifindex`.
    pub(super) fn has_clsact(&mut self, ifindex: u32) -> Result<bool, Error> {
        Ok(self
            .qdiscs(ifindex)?
            .iter()
            .any(|q| q.parent == TC_H_CLSACT && q.kind == "clsact"))
    }
}

fn parse_qdisc(payload: &[u8]) -> Option<Qdisc> {
    let tcm = TcMsg::read(payload)?;
    let kind = attrs_after::<TcMsg>(payload)
        .find(|(ty, _)| *ty == TCA_KIND)
        .map(|(_, kind)| attr_string(kind))?;
    Some(Qdisc {
        ifindex: u32::try_from(tcm.ifindex).ok()?,
        kind,
        handle: tcm.handle,
        parent: tcm.parent,
    })
}

#[cfg(test)]
mod tests {
    use super::super::message::{attr_u32, attrs};
    use super::*;

    #[test]
    fn fq_options_encode_as_tc_does() {
        let opts = FqOptions {
            limit: 10_000,
            flow_limit: 100,
            horizon_us: 10_000_000,
            horizon_drop: false,
        };
        let bytes = opts.encode();
        // Three u32 attributes (8 bytes each) and a u8 one padded to 8.
        assert_eq!(bytes.len(), 32);
        let got: Vec<_> = attrs(&bytes).map(|(ty, v)| (ty, v.to_vec())).collect();
        assert_eq!(got[0].0, TCA_FQ_PLIMIT);
        assert_eq!(attr_u32(&got[0].1), Some(10_000));
        assert_eq!(
            (got[1].0, attr_u32(&got[1].1)),
            (TCA_FQ_FLOW_PLIMIT, Some(100))
        );
        assert_eq!(
            (got[2].0, attr_u32(&got[2].1)),
            (TCA_FQ_HORIZON, Some(10_000_000))
        );
        assert_eq!(got[3], (TCA_FQ_HORIZON_DROP, vec![0]));
        // The u8 attribute's length field says 5, not the padded 8.
        assert_eq!(&bytes[24..26], &5u16.to_ne_bytes());
    }
}
