//! Netlink framing: the fixed kernel headers, a request builder and readers for replies and attributes.

use std::mem::size_of;

// Message types and flags, from include/uapi/linux/netlink.h.
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
pub(super) const NLMSG_OVERRUN: u16 = 4;
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
/// Set on dump parts when the object list changed while the kernel was walking it.
pub(super) const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_ROOT | NLM_F_MATCH`.
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLM_F_REPLACE: u16 = 0x100;
pub(super) const NLM_F_EXCL: u16 = 0x200;
pub(super) const NLM_F_CREATE: u16 = 0x400;
/// On an `NLMSG_ERROR`: only the header of our request is echoed back (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// On an `NLMSG_ERROR`: extended-ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// The extended-ack attribute carrying the kernel's text (`NL_SET_ERR_MSG`).
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Attribute type bits; the top two are the `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER` flags.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Largest payload an attribute can carry: its length field is a u16 that includes the header.
const NLA_MAX_PAYLOAD: usize = u16::MAX as usize - NLA_HDRLEN;
const NLA_HDRLEN: usize = 4;

/// Netlink aligns every message and attribute to 4 bytes (`NLMSG_ALIGN`, `NLA_ALIGN`).
pub(super) const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A `#[repr(C)]` kernel struct made only of integers, with its padding spelled out as fields:
/// every byte is initialised and every bit pattern is valid, so it converts to and from bytes.
///
/// # Safety
/// Implement only for such types.
pub(super) unsafe trait Plain: Copy {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: per the trait contract all `size_of::<Self>()` bytes are initialised.
        unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(self).cast::<u8>(), size_of::<Self>())
        }
    }

    /// Copies one from the start of `bytes`; `None` when `bytes` is too short.
    fn read(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        // SAFETY: the length was checked, any bit pattern is valid, and `read_unaligned`
        // does not need `bytes` to be aligned.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}

/// `struct nlmsghdr` (include/uapi/linux/netlink.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NlMsgHdr {
    pub len: u32,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}
const _: () = assert!(size_of::<NlMsgHdr>() == 16);
// SAFETY: integers only, no implicit padding (the size assertion above).
unsafe impl Plain for NlMsgHdr {}

/// `struct ifinfomsg` (include/uapi/linux/rtnetlink.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct IfInfoMsg {
    pub family: u8,
    pub _pad: u8,
    pub ty: u16,
    pub index: i32,
    pub flags: u32,
    pub change: u32,
}
const _: () = assert!(size_of::<IfInfoMsg>() == 16);
// SAFETY: integers only, padding explicit.
unsafe impl Plain for IfInfoMsg {}

/// `struct tcmsg` (include/uapi/linux/rtnetlink.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TcMsg {
    pub family: u8,
    pub _pad1: u8,
    pub _pad2: u16,
    pub ifindex: i32,
    pub handle: u32,
    pub parent: u32,
    /// For filters: `TC_H_MAKE(prio << 16, protocol)`.
    pub info: u32,
}
const _: () = assert!(size_of::<TcMsg>() == 20);
// SAFETY: integers only, padding explicit.
unsafe impl Plain for TcMsg {}

impl TcMsg {
    pub fn new(ifindex: u32, handle: u32, parent: u32, info: u32) -> Self {
        Self {
            // The kernel's ifindex is a positive `int`; a larger u32 wraps and gets ENODEV.
            ifindex: ifindex as i32,
            handle,
            parent,
            info,
            ..Self::default()
        }
    }
}

/// Appends one attribute, padded to 4 bytes; false (and nothing appended) if it is too long.
pub(super) fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) -> bool {
    if payload.len() > NLA_MAX_PAYLOAD {
        return false;
    }
    let len = (NLA_HDRLEN + payload.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align(buf.len()), 0);
    true
}

/// A request: `nlmsghdr`, the family header, then attributes. Encoding problems are kept
/// until [`Request::finish`], so building reads as a straight list of attributes.
pub(super) struct Request {
    buf: Vec<u8>,
    problem: Option<&'static str>,
}

impl Request {
    /// `flags` beyond `NLM_F_REQUEST`, which is always set.
    pub fn new<T: Plain>(ty: u16, flags: u16, header: &T) -> Self {
        let hdr = NlMsgHdr {
            ty,
            flags: NLM_F_REQUEST | flags,
            ..NlMsgHdr::default()
        };
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(hdr.as_bytes());
        buf.extend_from_slice(header.as_bytes());
        buf.resize(align(buf.len()), 0);
        Self { buf, problem: None }
    }

    pub fn attr(&mut self, ty: u16, payload: &[u8]) {
        if !push_attr(&mut self.buf, ty, payload) {
            self.problem = Some("attribute longer than 64 KiB");
        }
    }

    pub fn attr_u32(&mut self, ty: u16, value: u32) {
        self.attr(ty, &value.to_ne_bytes());
    }

    /// A NUL-terminated string, as the kernel's `NLA_STRING` / `nla_strscpy` expect.
    pub fn attr_str(&mut self, ty: u16, value: &str) {
        if value.contains('\0') {
            self.problem = Some("string contains a NUL byte");
        }
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.attr(ty, &payload);
    }

    /// Opens a nested attribute; close it with [`Request::end_nest`].
    pub fn begin_nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.attr(ty, &[]);
        start
    }

    pub fn end_nest(&mut self, start: usize) {
        match u16::try_from(self.buf.len() - start) {
            Ok(len) => self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes()),
            Err(_) => self.problem = Some("nested attribute longer than 64 KiB"),
        }
    }

    /// Fills in length and sequence number, adds `flags`; returns the bytes to send.
    pub fn finish(&mut self, seq: u32, flags: u16) -> Result<&[u8], &'static str> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        let mut hdr = NlMsgHdr::read(&self.buf).unwrap_or_default();
        hdr.len = u32::try_from(self.buf.len()).map_err(|_| "message longer than 4 GiB")?;
        hdr.seq = seq;
        hdr.flags |= flags;
        self.buf[..size_of::<NlMsgHdr>()].copy_from_slice(hdr.as_bytes());
        Ok(&self.buf)
    }
}

/// Splits a received datagram into (header, payload) pairs; `Err` when a length is bogus.
pub(super) fn messages(
    mut buf: &[u8],
) -> impl Iterator<Item = Result<(NlMsgHdr, &[u8]), &'static str>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let item = NlMsgHdr::read(buf)
            .filter(|h| h.len as usize >= size_of::<NlMsgHdr>() && h.len as usize <= buf.len())
            .map(|h| (h, &buf[size_of::<NlMsgHdr>()..h.len as usize]));
        match item {
            Some((h, payload)) => {
                buf = buf.get(align(h.len as usize)..).unwrap_or(&[]);
                Some(Ok((h, payload)))
            }
            None => {
                buf = &[];
                Some(Err("message length out of bounds"))
            }
        }
    })
}

/// Reads an `NLMSG_ERROR` payload (`struct nlmsgerr`, then extended-ack attributes): the
/// errno (0 for a plain ack) and the kernel's explanation when it sent one.
pub(super) fn parse_error(flags: u16, payload: &[u8]) -> Option<(i32, Option<String>)> {
    let code = i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?);
    let echoed = NlMsgHdr::read(payload.get(4..)?)?;
    // The echoed request is whole unless capped; the attributes follow it.
    // https://elixir.bootlin.com/linux/v6.1/source/net/netlink/af_netlink.c (netlink_ack)
    let tlvs = if flags & NLM_F_CAPPED != 0 {
        4 + size_of::<NlMsgHdr>()
    } else {
        4 + align(echoed.len as usize)
    };
    let message = (flags & NLM_F_ACK_TLVS != 0)
        .then(|| payload.get(tlvs..))
        .flatten()
        .and_then(|tlvs| attrs(tlvs).find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG))
        .map(|(_, text)| attr_string(text));
    Some((code.saturating_neg(), message))
}

/// Iterates over the attributes in `buf` as (type without flag bits, payload); stops at the
/// first malformed one.
pub(super) fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes([*buf.first()?, *buf.get(1)?]) as usize;
        let ty = u16::from_ne_bytes([*buf.get(2)?, *buf.get(3)?]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > buf.len() {
            return None;
        }
        let payload = &buf[NLA_HDRLEN..len];
        buf = buf.get(align(len)..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

/// The attributes after a fixed header `T` at the start of a message payload.
pub(super) fn attrs_after<T: Plain>(payload: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    attrs(payload.get(align(size_of::<T>())..).unwrap_or(&[]))
}

pub(super) fn attr_u32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?))
}

/// A string attribute up to its first NUL (the kernel NUL-terminates, not always).
pub(super) fn attr_string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_padded_and_lengths_are_filled_in() {
        let mut req = Request::new(36, NLM_F_CREATE, &TcMsg::new(3, 0x10000, 0xffff_ffff, 0));
        req.attr_str(1, "pfifo");
        let nest = req.begin_nest(2);
        req.attr_u32(1, 100);
        req.end_nest(nest);
        let bytes = req.finish(7, NLM_F_ACK).unwrap().to_vec();
        // 16 header + 20 tcmsg + 12 ("pfifo\0" padded) + 4 nest header + 8 u32 attribute.
        assert_eq!(bytes.len(), 60);
        let hdr = NlMsgHdr::read(&bytes).unwrap();
        assert_eq!((hdr.len, hdr.ty, hdr.seq), (60, 36, 7));
        assert_eq!(hdr.flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
        let tcm = TcMsg::read(&bytes[16..]).unwrap();
        assert_eq!(
            (tcm.ifindex, tcm.handle, tcm.parent),
            (3, 0x10000, 0xffff_ffff)
        );
        let top: Vec<_> = attrs_after::<TcMsg>(&bytes[16..]).collect();
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].0, attr_string(top[0].1).as_str()), (1, "pfifo"));
        assert_eq!(top[1].0, 2);
        let inner: Vec<_> = attrs(top[1].1).collect();
        assert_eq!(inner.len(), 1);
        assert_eq!(attr_u32(inner[0].1), Some(100));
    }

    #[test]
    fn bad_strings_and_oversized_attributes_are_refused_at_finish() {
        let mut req = Request::new(36, 0, &TcMsg::default());
        req.attr_str(1, "fq\0x");
        assert!(req.finish(1, 0).is_err());
        let mut req = Request::new(36, 0, &TcMsg::default());
        req.attr(2, &vec![0; 70_000]);
        assert!(req.finish(1, 0).is_err());
    }

    #[test]
    fn errors_with_extended_ack_are_parsed() {
        // nlmsgerr { error: -2, capped echoed header } then NLMSGERR_ATTR_MSG.
        let mut payload = (-2i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(
            NlMsgHdr {
                len: 60,
                ..NlMsgHdr::default()
            }
            .as_bytes(),
        );
        push_attr(
            &mut payload,
            NLMSGERR_ATTR_MSG,
            b"Specified qdisc kind is unknown\0",
        );
        let (errno, msg) = parse_error(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).unwrap();
        assert_eq!(errno, 2);
        assert_eq!(msg.as_deref(), Some("Specified qdisc kind is unknown"));
        // A plain ack.
        let (errno, msg) = parse_error(0, &payload[..20]).unwrap();
        assert_eq!((errno, msg), (2, None));
    }

    #[test]
    fn truncated_input_stops_iteration_instead_of_panicking() {
        assert_eq!(attrs(&[8, 0, 1, 0, 1]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        let mut it = messages(&[40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
    }
}
