"""XFRM netlink: the kernel's IPsec SA and policy database (linux/xfrm.h), spoken directly.

(Over 500 lines for a reason: a codec. Most of it is linux/xfrm.h's message layouts declared
one to one, which belong together.)

pyroute2 0.9.7 has no XFRM SA/policy API, so the message layouts are declared here on its
``nlmsg``/``nla`` classes, and ``XfrmSocket`` sends them on a plain NETLINK_XFRM socket.
Why netlink and not ``ip xfrm``: keys must never appear on a command line.

Layout rules (checked against gcc's ``sizeof``/``offsetof`` on x86_64 and aarch64, see
tests/client/test_xfrm_messages.py):

* pyroute2 packs each field on its own, so the C compiler's alignment padding is written out
  as explicit ``Nx`` fields (named ``__padN``; they decode to ``()``);
* ``__u64`` members are 8-byte aligned (the 64-bit ABIs; 32-bit x86 differs and is not
  supported, as in strongSwan's compat handling);
* network-order values (``__be16`` ports, ``__be32`` SPI) are kept as raw ``bytes`` (``2s``,
  ``4s``): a ``>`` byte-order mark in a pyroute2 field format breaks decoding;
* nested structs (``xfrm_selector`` inside ``xfrm_usersa_info`` …) are flattened with a
  prefix: ``sel_daddr``, ``id_spi``, ``lft_hard_byte_limit``, ``curlft_packets``.

Addresses (``xfrm_address_t``) are 16 bytes: an IPv4 address fills the first four.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, nla, nlmsg

NETLINK_XFRM = 6

# Cygnet's reqids have "cy" in the high half (charon allocates reqids from 1); the probe's
# dummy SA carries the last one.
CYGNET_REQID_BASE = 0x63790000
PROBE_REQID = CYGNET_REQID_BASE | 0xFFFF

# enum xfrm_msg_type (linux/xfrm.h)
XFRM_MSG_NEWSA = 0x10
XFRM_MSG_DELSA = 0x11
XFRM_MSG_GETSA = 0x12
XFRM_MSG_NEWPOLICY = 0x13
XFRM_MSG_DELPOLICY = 0x14
XFRM_MSG_GETPOLICY = 0x15
XFRM_MSG_ALLOCSPI = 0x16
XFRM_MSG_ACQUIRE = 0x17
XFRM_MSG_EXPIRE = 0x18
XFRM_MSG_UPDPOLICY = 0x19
XFRM_MSG_UPDSA = 0x1A
XFRM_MSG_POLEXPIRE = 0x1B
XFRM_MSG_FLUSHSA = 0x1C
XFRM_MSG_FLUSHPOLICY = 0x1D

# enum xfrm_nlgroups: multicast groups (bind with 1 << (group - 1))
XFRMNLGRP_ACQUIRE = 1
XFRMNLGRP_EXPIRE = 2
XFRMNLGRP_SA = 3
XFRMNLGRP_POLICY = 4

XFRM_POLICY_IN = 0
XFRM_POLICY_OUT = 1
XFRM_POLICY_FWD = 2
XFRM_POLICY_ALLOW = 0
XFRM_POLICY_BLOCK = 1
XFRM_POLICY_TYPE_MAIN = 0

XFRM_MODE_TRANSPORT = 0
XFRM_MODE_TUNNEL = 1

# xfrm_usersa_info.flags
XFRM_STATE_NOECN = 1
XFRM_STATE_DECAP_DSCP = 2
XFRM_STATE_NOPMTUDISC = 4
XFRM_STATE_WILDRECV = 8
XFRM_STATE_ICMP = 16
XFRM_STATE_AF_UNSPEC = 32  # tunnel mode: the inner family may differ from the outer one
XFRM_STATE_ALIGN4 = 64
XFRM_STATE_ESN = 128  # RFC 4303 §2.2.1 extended sequence numbers

XFRM_INF = (1 << 64) - 1  # "no limit" in struct xfrm_lifetime_cfg
XFRMA_REPLAY_ESN_MAX = 4096  # bits in the largest replay bitmap the kernel accepts

IPPROTO_ESP = 50
UDP_ENCAP = 100  # linux/udp.h socket option
UDP_ENCAP_ESPINUDP = 2  # RFC 3948 (with the non-ESP marker for IKE)
IP_XFRM_POLICY = 17  # linux/in.h: per-socket policy
IPV6_XFRM_POLICY = 35  # linux/in6.h

# --- nested structs, flattened -------------------------------------------------------------

# struct xfrm_selector (56 bytes)
SELECTOR = (
    ("daddr", "16s"),
    ("saddr", "16s"),
    ("dport", "2s"),
    ("dport_mask", "2s"),
    ("sport", "2s"),
    ("sport_mask", "2s"),
    ("family", "H"),
    ("prefixlen_d", "B"),
    ("prefixlen_s", "B"),
    ("proto", "B"),
    ("__pad0", "3x"),
    ("ifindex", "i"),
    ("user", "I"),
)
# struct xfrm_id (24 bytes)
ID = (
    ("daddr", "16s"),
    ("spi", "4s"),
    ("proto", "B"),
    ("__pad0", "3x"),
)
# struct xfrm_lifetime_cfg (64 bytes)
LIFETIME_CFG = (
    ("soft_byte_limit", "Q"),
    ("hard_byte_limit", "Q"),
    ("soft_packet_limit", "Q"),
    ("hard_packet_limit", "Q"),
    ("soft_add_expires_seconds", "Q"),
    ("hard_add_expires_seconds", "Q"),
    ("soft_use_expires_seconds", "Q"),
    ("hard_use_expires_seconds", "Q"),
)
# struct xfrm_lifetime_cur (32 bytes)
LIFETIME_CUR = (
    ("bytes", "Q"),
    ("packets", "Q"),
    ("add_time", "Q"),
    ("use_time", "Q"),
)
# struct xfrm_stats (12 bytes)
STATS = (
    ("replay_window", "I"),
    ("replay", "I"),
    ("integrity_failed", "I"),
)


def _embed(prefix: str, fields) -> tuple:
    """A nested struct's fields under `prefix` (padding names made unique too)."""
    return tuple((f"{prefix}{name}" if not name.startswith("__") else f"__{prefix}{name[2:]}", fmt)
                 for name, fmt in fields)


# struct xfrm_usersa_info (224 bytes)
USERSA_INFO = (
    _embed("sel_", SELECTOR)
    + _embed("id_", ID)
    + (("saddr", "16s"),)
    + _embed("lft_", LIFETIME_CFG)
    + _embed("curlft_", LIFETIME_CUR)
    + _embed("stats_", STATS)
    + (
        ("seq", "I"),
        ("reqid", "I"),
        ("family", "H"),
        ("mode", "B"),
        ("replay_window", "B"),
        ("flags", "B"),
        ("__pad_info", "7x"),
    )
)
# struct xfrm_userpolicy_info (168 bytes)
USERPOLICY_INFO = (
    _embed("sel_", SELECTOR)
    + _embed("lft_", LIFETIME_CFG)
    + _embed("curlft_", LIFETIME_CUR)
    + (
        ("priority", "I"),
        ("index", "I"),
        ("dir", "B"),
        ("action", "B"),
        ("flags", "B"),
        ("share", "B"),
        ("__pad_policy", "4x"),
    )
)

# --- attributes -----------------------------------------------------------------------------


class _XfrmAttributes:
    """The XFRMA_* attributes (enum xfrm_attr_type_t) and their payload structs."""

    nla_map = (
        ("XFRMA_UNSPEC", "none"),
        ("XFRMA_ALG_AUTH", "xfrm_algo"),
        ("XFRMA_ALG_CRYPT", "xfrm_algo"),
        ("XFRMA_ALG_COMP", "xfrm_algo"),
        ("XFRMA_ENCAP", "xfrm_encap_tmpl"),
        ("XFRMA_TMPL", "xfrm_user_tmpl"),
        ("XFRMA_SA", "hex"),
        ("XFRMA_POLICY", "hex"),
        ("XFRMA_SEC_CTX", "hex"),
        ("XFRMA_LTIME_VAL", "xfrm_lifetime_cur"),
        ("XFRMA_REPLAY_VAL", "xfrm_replay_state"),
        ("XFRMA_REPLAY_THRESH", "uint32"),
        ("XFRMA_ETIMER_THRESH", "uint32"),
        ("XFRMA_SRCADDR", "xfrm_address"),
        ("XFRMA_COADDR", "xfrm_address"),
        ("XFRMA_LASTUSED", "uint64"),
        ("XFRMA_POLICY_TYPE", "xfrm_userpolicy_type"),
        ("XFRMA_MIGRATE", "hex"),
        ("XFRMA_ALG_AEAD", "xfrm_algo_aead"),
        ("XFRMA_KMADDRESS", "hex"),
        ("XFRMA_ALG_AUTH_TRUNC", "xfrm_algo_auth"),
        ("XFRMA_MARK", "xfrm_mark"),
        ("XFRMA_TFCPAD", "uint32"),
        ("XFRMA_REPLAY_ESN_VAL", "xfrm_replay_state_esn"),
        ("XFRMA_SA_EXTRA_FLAGS", "uint32"),
        ("XFRMA_PROTO", "uint8"),
        ("XFRMA_ADDRESS_FILTER", "hex"),
        ("XFRMA_PAD", "none"),
        ("XFRMA_OFFLOAD_DEV", "hex"),
        ("XFRMA_SET_MARK", "uint32"),
        ("XFRMA_SET_MARK_MASK", "uint32"),
        ("XFRMA_IF_ID", "uint32"),
        ("XFRMA_MTIMER_THRESH", "uint32"),
    )

    class _struct(nla):
        """A C struct as an attribute: fields not given are zero (bytes fields zero bytes)."""

        def ft_encode(self, offset):
            for name, value in zero_fields(self.fields).items():
                if self.get(name) is None:
                    self[name] = value
            return nla.ft_encode(self, offset)

    class _with_tail(_struct):
        """A struct followed by a variable-length array (alg_key[], bmp[]): the tail is the
        value of field TAIL, as bytes."""

        TAIL = ""

        def ft_encode(self, offset):
            offset, diff = _XfrmAttributes._struct.ft_encode(self, offset)
            tail = bytes(self.get(self.TAIL) or b"")
            self.data.extend(tail)
            offset += len(tail)
            pad = -offset % 4
            self.data.extend(b"\0" * pad)
            return offset + pad, pad

        def ft_decode(self, offset):
            nla.ft_decode(self, offset)
            fixed = struct.calcsize("".join(fmt for _, fmt in self.fields))
            self[self.TAIL] = bytes(self.data[offset + fixed:self.offset + self.length])

    class xfrm_algo(_with_tail):
        """struct xfrm_algo (68 bytes + key)."""

        fields = (("alg_name", "64s"), ("alg_key_len", "I"))
        TAIL = "alg_key"

    class xfrm_algo_auth(_with_tail):
        """struct xfrm_algo_auth (72 bytes + key): HMAC with its ICV truncation."""

        fields = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_trunc_len", "I"))
        TAIL = "alg_key"

    class xfrm_algo_aead(_with_tail):
        """struct xfrm_algo_aead (72 bytes + key‖salt)."""

        fields = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_icv_len", "I"))
        TAIL = "alg_key"

    class xfrm_replay_state_esn(_with_tail):
        """struct xfrm_replay_state_esn (24 bytes + bmp_len 32-bit words of bitmap)."""

        fields = (
            ("bmp_len", "I"),
            ("oseq", "I"),
            ("seq", "I"),
            ("oseq_hi", "I"),
            ("seq_hi", "I"),
            ("replay_window", "I"),
        )
        TAIL = "bmp"

    class xfrm_encap_tmpl(_struct):
        """struct xfrm_encap_tmpl (24 bytes): UDP encapsulation of ESP (RFC 3948)."""

        fields = (
            ("encap_type", "H"),
            ("encap_sport", "2s"),
            ("encap_dport", "2s"),
            ("__pad0", "2x"),
            ("encap_oa", "16s"),
        )

    class xfrm_user_tmpl(_struct):
        """struct xfrm_user_tmpl (64 bytes): what SA a policy needs. One per attribute here;
        the kernel allows an array (IPComp+ESP bundles), which Cygnet never installs."""

        fields = _embed("id_", ID) + (
            ("family", "H"),
            ("__pad0", "2x"),
            ("saddr", "16s"),
            ("reqid", "I"),
            ("mode", "B"),
            ("share", "B"),
            ("optional", "B"),
            ("__pad1", "x"),
            ("aalgos", "I"),
            ("ealgos", "I"),
            ("calgos", "I"),
        )

    class xfrm_lifetime_cur(_struct):
        fields = LIFETIME_CUR

    class xfrm_replay_state(_struct):
        fields = (("oseq", "I"), ("seq", "I"), ("bitmap", "I"))

    class xfrm_address(_struct):
        fields = (("address", "16s"),)

    class xfrm_userpolicy_type(_struct):
        """struct xfrm_userpolicy_type (6 bytes)."""

        fields = (("type", "B"), ("__pad0", "x"), ("reserved1", "H"), ("reserved2", "B"), ("__pad1", "x"))

    class xfrm_mark(_struct):
        """struct xfrm_mark (8 bytes)."""

        fields = (("v", "I"), ("m", "I"))


# --- messages -------------------------------------------------------------------------------


class xfrm_usersa_info(_XfrmAttributes, nlmsg):
    """XFRM_MSG_NEWSA / UPDSA / GETSA replies (224 bytes + attributes)."""

    fields = USERSA_INFO


class xfrm_usersa_id(_XfrmAttributes, nlmsg):
    """XFRM_MSG_DELSA / GETSA requests (24 bytes + attributes, e.g. XFRMA_SRCADDR, XFRMA_MARK)."""

    fields = (("daddr", "16s"), ("spi", "4s"), ("family", "H"), ("proto", "B"), ("__pad0", "x"))


class xfrm_userpolicy_info(_XfrmAttributes, nlmsg):
    """XFRM_MSG_NEWPOLICY / UPDPOLICY / GETPOLICY replies (168 bytes + attributes)."""

    fields = USERPOLICY_INFO


class xfrm_userpolicy_id(_XfrmAttributes, nlmsg):
    """XFRM_MSG_DELPOLICY / GETPOLICY requests (64 bytes + attributes, e.g. XFRMA_IF_ID)."""

    fields = _embed("sel_", SELECTOR) + (("index", "I"), ("dir", "B"), ("__pad0", "3x"))


class xfrm_user_expire(_XfrmAttributes, nlmsg):
    """XFRM_MSG_EXPIRE (232 bytes): an SA reached a soft or hard lifetime limit."""

    fields = _embed("state_", USERSA_INFO) + (("hard", "B"), ("__pad_expire", "7x"))


class xfrm_user_polexpire(_XfrmAttributes, nlmsg):
    """XFRM_MSG_POLEXPIRE (176 bytes)."""

    fields = _embed("pol_", USERPOLICY_INFO) + (("hard", "B"), ("__pad_polexpire", "7x"))


class xfrm_user_acquire(_XfrmAttributes, nlmsg):
    """XFRM_MSG_ACQUIRE (280 bytes): a packet matched a policy with no SA; XFRMA_TMPL says
    which template (and so which reqid) wanted one."""

    fields = (
        _embed("id_", ID)
        + (("saddr", "16s"),)
        + _embed("sel_", SELECTOR)
        + _embed("policy_", USERPOLICY_INFO)
        + (("aalgos", "I"), ("ealgos", "I"), ("calgos", "I"), ("seq", "I"))
    )


class xfrm_usersa_flush(_XfrmAttributes, nlmsg):
    """XFRM_MSG_FLUSHSA (1 byte, padded to 4 by netlink alignment)."""

    fields = (("proto", "B"),)


MESSAGE_CLASSES = {
    XFRM_MSG_NEWSA: xfrm_usersa_info,
    XFRM_MSG_UPDSA: xfrm_usersa_info,
    XFRM_MSG_DELSA: xfrm_usersa_id,  # multicast notifications carry usersa_info instead
    XFRM_MSG_NEWPOLICY: xfrm_userpolicy_info,
    XFRM_MSG_UPDPOLICY: xfrm_userpolicy_info,
    XFRM_MSG_DELPOLICY: xfrm_userpolicy_id,
    XFRM_MSG_EXPIRE: xfrm_user_expire,
    XFRM_MSG_POLEXPIRE: xfrm_user_polexpire,
    XFRM_MSG_ACQUIRE: xfrm_user_acquire,
}


# --- helpers --------------------------------------------------------------------------------


def family_of(address) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def pack_address(address) -> bytes:
    """xfrm_address_t: 16 bytes, an IPv4 address in the first four."""
    if address is None:
        return bytes(16)
    return ipaddress.ip_address(address).packed.ljust(16, b"\0")


def unpack_address(data: bytes, family: int):
    """The address in an xfrm_address_t of `family`."""
    if family == socket.AF_INET6:
        return ipaddress.IPv6Address(bytes(data[:16]))
    return ipaddress.IPv4Address(bytes(data[:4]))


def pack_port(port: int) -> bytes:
    return struct.pack("!H", port)


def selector(src=None, dst=None, family: int | None = None, proto: int = 0) -> dict:
    """xfrm_selector fields (prefix "sel_") from two networks; None = any (family from the
    other network, or AF_UNSPEC when both are None)."""
    src_net = ipaddress.ip_network(src) if src is not None else None
    dst_net = ipaddress.ip_network(dst) if dst is not None else None
    if family is None:
        known = src_net or dst_net
        family = 0 if known is None else (socket.AF_INET6 if known.version == 6 else socket.AF_INET)
    return {
        "sel_daddr": pack_address(dst_net.network_address if dst_net else None),
        "sel_saddr": pack_address(src_net.network_address if src_net else None),
        "sel_dport": b"\0\0", "sel_dport_mask": b"\0\0",
        "sel_sport": b"\0\0", "sel_sport_mask": b"\0\0",
        "sel_family": family,
        "sel_prefixlen_d": dst_net.prefixlen if dst_net else 0,
        "sel_prefixlen_s": src_net.prefixlen if src_net else 0,
        "sel_proto": proto, "sel_ifindex": 0, "sel_user": 0,
    }


def no_limits(prefix: str = "lft_") -> dict:
    """An xfrm_lifetime_cfg without limits, as `ip xfrm` sends it: byte and packet limits at
    XFRM_INF, but the *_expires_seconds at 0 ("never"). XFRM_INF there would overflow the
    kernel's add_time + limit and expire the SA or policy at once (or one second after use)."""
    return {f"{prefix}{name}": (0 if name.endswith("_seconds") else XFRM_INF) for name, _ in LIFETIME_CFG}


def zero_fields(fields, prefix: str = "") -> dict:
    """Every non-padding field of a layout set to zero (bytes fields to zero bytes)."""
    values = {}
    for name, fmt in fields:
        if name.startswith("__"):
            continue
        values[prefix + name] = bytes(struct.calcsize(fmt)) if fmt.endswith("s") else 0
    return values


def build(cls, msg_type: int, flags: int, values: dict, attrs=(), seq: int = 0) -> bytes:
    """Encode one netlink message: header, `cls` fields (missing ones zero), attributes."""
    msg = cls()
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.update(zero_fields(cls.fields))
    msg.update(values or {})
    msg["attrs"] = [list(a) for a in attrs]
    msg.encode()
    return bytes(msg.data)


def struct_bytes(cls, values: dict) -> bytes:
    """The bare C struct of `cls` (no netlink header, no attributes), e.g. for setsockopt."""
    data = build(cls, 0, 0, values)
    size = sum(struct.calcsize(fmt) for _, fmt in cls.fields)
    return data[16:16 + size]


def parse(data: bytes) -> list:
    """Split a netlink datagram into messages: (type, decoded message or None, error code).

    NLMSG_ERROR gives (NLMSG_ERROR, None, errno) with errno 0 for an acknowledgement."""
    messages = []
    offset = 0
    while offset + 16 <= len(data):
        length, msg_type = struct.unpack_from("IH", data, offset)
        if length < 16:
            break
        chunk = data[offset:offset + length]
        if msg_type == NLMSG_ERROR:
            (code,) = struct.unpack_from("i", chunk, 16)
            messages.append((msg_type, None, -code))
        elif msg_type == NLMSG_DONE:
            messages.append((msg_type, None, 0))
        else:
            cls = MESSAGE_CLASSES.get(msg_type)
            decoded = None
            if cls is not None:
                decoded = cls(bytearray(chunk))
                decoded.decode()
            messages.append((msg_type, decoded, 0))
        offset += (length + 3) & ~3
    return messages


# --- the socket -----------------------------------------------------------------------------


class XfrmError(OSError):
    """The kernel refused an XFRM request (errno and the request's name)."""


class XfrmSocket:
    """A NETLINK_XFRM socket for requests (synchronous: send, wait for the answer)."""

    def __init__(self, groups: int = 0):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, groups))
        self._seq = int.from_bytes(os.urandom(2), "big")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "XfrmSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, cls, msg_type: int, values: dict | None = None, attrs=(), *, dump: bool = False) -> list:
        """Send one request; returns the messages of the answer (a dump's entries, or a GET's
        reply, or [] for an acknowledged change). Raises XfrmError if the kernel refuses."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        if dump:  # a dump request carries no struct (the kernel would parse it as attributes)
            cls, values = nlmsg, {}
        self.sock.send(build(cls, msg_type, flags, values, attrs, seq=seq))
        answer = []
        # One request at a time on this socket: everything that arrives answers it. A GET
        # gets its reply and then the acknowledgement; a dump ends with NLMSG_DONE.
        while True:
            data = self.sock.recv(1 << 20)
            for kind, message, code in parse(data):
                if kind == NLMSG_ERROR:
                    if code:
                        raise XfrmError(code, f"{os.strerror(code)} ({_msg_name(msg_type)})")
                    return answer
                if kind == NLMSG_DONE:
                    return answer
                answer.append(message)

    def events(self) -> list:
        """Read every pending multicast message (non-blocking): [(type, message)]."""
        found = []
        while True:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return found
            except OSError as error:
                if error.errno == errno.ENOBUFS:  # we fell behind; events were lost
                    continue
                raise
            found.extend((kind, message) for kind, message, _ in parse(data) if message is not None)


def _msg_name(msg_type: int) -> str:
    for name, value in globals().items():
        if name.startswith("XFRM_MSG_") and value == msg_type:
            return name
    return f"XFRM message {msg_type}"


def group_mask(*groups: int) -> int:
    mask = 0
    for group in groups:
        mask |= 1 << (group - 1)
    return mask


# --- probing --------------------------------------------------------------------------------


def probe_esp() -> str | None:
    """Try to add (and delete) a dummy ESP SA. None if the kernel can do ESP, else why not.
    Needs only this module (the netlink agent runs it before loading the rest of pyroute2)."""
    spi = os.urandom(4)
    loopback = pack_address("127.0.0.1")
    try:
        with XfrmSocket() as nl:
            nl.request(xfrm_usersa_info, XFRM_MSG_NEWSA, {
                **selector(), **no_limits(),
                "id_daddr": loopback, "id_spi": spi, "id_proto": IPPROTO_ESP,
                "saddr": loopback, "family": socket.AF_INET,
                "mode": XFRM_MODE_TUNNEL, "reqid": PROBE_REQID,
            }, [("XFRMA_ALG_AEAD", {"alg_name": b"rfc4106(gcm(aes))", "alg_key_len": 160,
                                    "alg_icv_len": 128, "alg_key": os.urandom(20)})])
            nl.request(xfrm_usersa_id, XFRM_MSG_DELSA, {
                "daddr": loopback, "spi": spi, "family": socket.AF_INET, "proto": IPPROTO_ESP})
    except OSError as error:
        code = error.errno
        if code in (errno.EPROTONOSUPPORT, errno.ENOSYS, errno.ENOENT):
            return "the kernel has no ESP (modules esp4/esp6 or the AES-GCM cipher are missing)"
        if code in (errno.EPERM, errno.EACCES):
            return "not allowed to install IPsec SAs (needs root or CAP_NET_ADMIN)"
        return f"installing a test SA failed: {error}"
    return None
