"""The kernel data plane: CHILD_SAs handed to the kernel's XFRM (as charon and charon-nm do).

(About 600 lines for a reason: one DataPlane implementation with its XFRM interface, SA and
policy requests and kernel events; they share the tunnel's reqid/if_id bookkeeping.)

Packets never pass through Python: the kernel encrypts and decrypts (esp4/esp6), Cygnet only
installs and removes SAs and policies over XFRM netlink (client/xfrm.py) and listens for the
kernel's EXPIRE and ACQUIRE notices.

Placement (as charon's `if_id_in/out` connections do): an XFRM interface (`xfrmi`, linux ≥ 4.19)
per tunnel. SAs and policies carry the interface's `if_id`, so they apply only to packets routed
through that interface; the virtual IP goes on it and the remote traffic selectors are routed
through it (client/netconfig.py, the same split routes and pinned gateway route as the TUN
case), so the path to the gateway itself never enters the tunnel.

What a tunnel installs per CHILD_SA pair (RFC 4301 §4.4):
* inbound SA  gateway → us, SPI spi_in; outbound SA us → gateway, SPI spi_out; tunnel mode,
  XFRM_STATE_AF_UNSPEC (IPv6 inside IPv4 works), replay window in XFRMA_REPLAY_ESN_VAL
  (XFRM_STATE_ESN when negotiated, RFC 4303 §2.2.1), UDP encapsulation template on both when
  the IKE_SA uses NAT-T (RFC 3948; the engine's port-4500 socket gets UDP_ENCAP_ESPINUDP, so
  the kernel takes ESP off it and leaves IKE, behind its non-ESP marker, to us);
* policies out (local_ts → remote_ts) and in + fwd (remote_ts → local_ts) per pair of
  selectors of one family, each with a template carrying the child's reqid.

Recognising our own kernel state: reqids are REQID_BASE + child_id, if_ids are derived from
the tunnel name (`tunnel_if_id`). At start, `clean_stale()` deletes SAs and policies with this
tunnel's if_id and the xfrm interface a killed run left.

Make-before-break (RFC 7296 §2.8): a rekey adds the new SAs next to the old ones. For outbound
traffic the kernel picks the newest valid SA with the policy's reqid, and inserting it bumps
the generation of the older ones, so cached routes move over at once. When the outbound SA
must wait (we answered the rekey: the initiator may not use the new inbound SA yet), its
parameters are kept and it is installed by `activate_outbound` — what charon does with
`install_outbound`.

Lifetimes: the IKE session rekeys on its own timers. The kernel gets a hard time limit of
lifetime_hard (so SAs of a killed engine die) and a soft limit halfway between the session's
rekey time and the hard limit: it only fires when the session's own rekey did not happen,
and, like volume limits, it becomes a SaLimitReached event (the same "rekey needed" signal the
userspace data plane gives). An ACQUIRE for one of our policies (traffic while a child has no
outbound SA) becomes one too.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

from client import esp, xfrm
from client.dataplane import (IKE_NATT_PORT, NON_ESP_MARKER, SaCounters, SaLimitReached,
                              SharedUdpSocket)
from client.sockets import local_address_towards
from client.tun import configure_link

log = logging.getLogger(__name__)

# reqids and if_ids Cygnet uses ("cy" in the high half): charon allocates reqids from 1.
REQID_BASE = xfrm.CYGNET_REQID_BASE
REQID_MASK = 0xFFFF0000
IF_ID_BASE = 0x63790000
POLICY_PRIORITY = 200000  # minus the selectors' prefix lengths: more specific wins (lower)
REPLAY_WINDOW = 128  # packets; charon's default is 32, the userspace plane's 1024
ACQUIRE_INTERVAL = 10.0  # seconds between rekey requests caused by ACQUIREs for one child

ALL_ALGORITHMS = 0xFFFFFFFF  # template: any algorithm (the SA decides)

# ENCR transform id -> (kernel name, ICV bits) for AEAD ciphers (the key includes the salt)
AEAD_ALGORITHMS = {
    20: ("rfc4106(gcm(aes))", 128),  # AES-GCM-16, RFC 4106
    19: ("rfc4106(gcm(aes))", 96),  # AES-GCM-12
    18: ("rfc4106(gcm(aes))", 64),  # AES-GCM-8
    16: ("rfc4309(ccm(aes))", 128),  # AES-CCM-16, RFC 4309
    28: ("rfc7539esp(chacha20,poly1305)", 128),  # RFC 7634
}
CIPHER_ALGORITHMS = {
    12: "cbc(aes)",  # RFC 3602
    13: "rfc3686(ctr(aes))",  # RFC 3686 (key includes the nonce)
    3: "cbc(des3_ede)",  # RFC 2451 (legacy, only when a profile names 3des)
}
# INTEG transform id -> (kernel name, ICV truncation in bits)
INTEG_ALGORITHMS = {
    2: ("hmac(sha1)", 96),  # RFC 2404
    1: ("hmac(md5)", 96),  # RFC 2403 (legacy)
    5: ("xcbc(aes)", 96),  # RFC 3566 (legacy)
    12: ("hmac(sha256)", 128),  # RFC 4868 §2.3: truncated to half the output
    13: ("hmac(sha384)", 192),
    14: ("hmac(sha512)", 256),
}


class KernelDataPlaneError(OSError):
    """The kernel cannot do what the kernel data plane needs (reason in plain words)."""


def tunnel_if_id(name: str) -> int:
    """The XFRM interface id of the tunnel called `name` (stable across runs)."""
    return IF_ID_BASE | (zlib.crc32(name.encode()) & 0xFFFF)


def interface_name(if_id: int) -> str:
    return f"cygx{if_id & 0xFFFF:04x}"


def reqid_of(child_id: int) -> int:
    return REQID_BASE | (child_id % 0xFFFF)  # never xfrm.PROBE_REQID


# ------------------------------------------------------------------------------ probing


def bypass_socket(sock: socket.socket) -> None:
    """Let IKE on `sock` bypass every IPsec policy (as charon does for its sockets): without
    this, a policy covering the gateway's address would tunnel IKE itself."""
    v6 = sock.family == socket.AF_INET6
    level, option = (socket.IPPROTO_IPV6, xfrm.IPV6_XFRM_POLICY) if v6 else (socket.IPPROTO_IP, xfrm.IP_XFRM_POLICY)
    for direction in (xfrm.XFRM_POLICY_IN, xfrm.XFRM_POLICY_OUT):
        policy = xfrm.struct_bytes(xfrm.xfrm_userpolicy_info, {
            **xfrm.no_limits(), "sel_family": sock.family, "dir": direction,
            "action": xfrm.XFRM_POLICY_ALLOW})
        sock.setsockopt(level, option, policy)


# ------------------------------------------------------------------------------ the interface


def _off_loop(function, *args):
    """Run function(*args) on a short-lived thread: pyroute2's IPRoute runs an asyncio loop of
    its own, which cannot start on the engine's loop thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(function, *args).result()


class XfrmInterface:
    """An XFRM interface (`ip link add NAME type xfrm if_id N`): where the virtual IP lives and
    the tunnel's routes point. Shaped like client.tun.TunDevice for the engine."""

    vnet_hdr = False

    def __init__(self, name: str, if_id: int, index: int):
        self.name = name
        self.if_id = if_id
        self.index = index
        self._closed = False

    @classmethod
    def create(cls, if_id: int, name: str | None = None) -> "XfrmInterface":
        return _off_loop(cls._create, if_id, name)

    @classmethod
    def _create(cls, if_id: int, name: str | None) -> "XfrmInterface":
        from pyroute2.iproute import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        name = name or interface_name(if_id)
        with IPRoute() as ipr:
            for index in ipr.link_lookup(ifname=name):  # left by a killed run
                ipr.link("del", index=index)
            try:
                ipr.link("add", ifname=name, kind="xfrm", xfrm_if_id=if_id)
            except NetlinkError as error:
                raise KernelDataPlaneError(
                    error.code, f"cannot create an XFRM interface (kernel module xfrm_interface): {error}") from None
            index = ipr.link_lookup(ifname=name)[0]
        return cls(name, if_id, index)

    def configure(self, addresses=(), *, mtu: int | None = None, up: bool = True, ipr=None,
                  **_ignored) -> None:
        """Like TunDevice.configure: through `ipr` (the engine's netlink agent) or our own."""
        if ipr is None:
            from pyroute2.iproute import IPRoute

            with IPRoute() as own:
                return self.configure(addresses, mtu=mtu, up=up, ipr=own)
        configure_link(ipr, self.index, addresses, mtu=mtu, state="up" if up else None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _off_loop(self._delete)

    def _delete(self) -> None:
        from pyroute2.iproute import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            with IPRoute() as ipr:
                ipr.link("del", index=self.index)
        except NetlinkError:
            pass  # already gone


# ------------------------------------------------------------------------------ SA records


@dataclass(eq=False)
class _Pair:
    """One installed CHILD_SA pair (what we need to find, read and delete it)."""

    child_id: int
    spi_in: bytes
    spi_out: bytes
    local: str  # our outer address
    peer: str  # the gateway's outer address
    outbound_installed: bool
    pending_outbound: dict | None = field(default=None, repr=False)  # NEWSA fields + attrs (keys)
    soft_signalled: bool = False


@dataclass
class _ChildPolicies:
    reqid: int
    selectors: list  # [(direction, src network, dst network)]
    local: str
    peer: str


class KernelDataPlane(SharedUdpSocket):
    """The DataPlane protocol (client/dataplane.py) on kernel XFRM.

    sock: the engine's UDP socket on port 4500 (IKE behind the non-ESP marker, and ESP-in-UDP
    which the kernel takes off it). on_ike_packet(message, addr) and on_event(SaLimitReached)
    run on the event loop.
    """

    kind = "kernel"

    def __init__(self, sock: socket.socket, if_id: int, peer: tuple[str, int] | None = None, *,
                 on_ike_packet: Callable[[bytes, tuple], None] | None = None,
                 on_event: Callable[[object], None] | None = None,
                 replay_window: int = REPLAY_WINDOW, limits: esp.SaLimits | None = None):
        self.sock = sock
        sock.setblocking(False)
        self.if_id = if_id
        self.peer = peer
        self.on_ike_packet = on_ike_packet or (lambda message, addr: None)
        self.on_event = on_event or (lambda event: None)
        self.replay_window = replay_window
        self.limits = limits
        self._nl = xfrm.XfrmSocket()
        self._monitor = xfrm.XfrmSocket(xfrm.group_mask(xfrm.XFRMNLGRP_ACQUIRE, xfrm.XFRMNLGRP_EXPIRE))
        self._pairs: dict[bytes, _Pair] = {}  # spi_in -> pair
        self._policies: dict[int, _ChildPolicies] = {}  # child_id -> installed policies
        self._last_acquire: dict[int, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # ESP-in-UDP (RFC 3948) on the shared socket: the kernel decapsulates ESP and passes
        # IKE (non-ESP marker) and nothing else up to us; keepalives it eats.
        sock.setsockopt(socket.IPPROTO_UDP, xfrm.UDP_ENCAP, xfrm.UDP_ENCAP_ESPINUDP)
        bypass_socket(sock)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_socket_readable)
        self._loop.add_reader(self._monitor.fileno(), self._on_kernel_event)

    def _on_socket_readable(self) -> None:
        for _ in range(64):
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # ICMP errors reported on the socket
                if error.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue
                raise
            if data[:4] == NON_ESP_MARKER:
                self.on_ike_packet(data[4:], addr)
            # anything else reached us only if no SA matched it: ignore

    # --- SA management (DataPlane) ---

    def install_child_sa(self, sa, *, activate_outbound: bool = True) -> None:
        if self.peer is None:
            raise KernelDataPlaneError(errno.EDESTADDRREQ, "no peer address set before installing a CHILD_SA")
        peer = self.peer[0]
        local = local_address_towards(peer, IKE_NATT_PORT)
        spi_in, spi_out = bytes(sa.spi_in), bytes(sa.spi_out)
        reqid = reqid_of(sa.child_id)
        encap = bool(getattr(sa, "udp_encapsulation", False))
        inbound = self._sa_request(sa, spi_in, src=peer, dst=local, reqid=reqid, encap=encap,
                                   encr_key=sa.encr_key_in, integ_key=sa.integ_key_in)
        outbound = self._sa_request(sa, spi_out, src=local, dst=peer, reqid=reqid, encap=encap,
                                    encr_key=sa.encr_key_out, integ_key=sa.integ_key_out)
        self._nl.request(xfrm.xfrm_usersa_info, xfrm.XFRM_MSG_NEWSA, *inbound)
        pair = _Pair(sa.child_id, spi_in, spi_out, local, peer, outbound_installed=False)
        self._pairs[spi_in] = pair
        first = not any(p.outbound_installed for p in self._pairs.values() if p.child_id == sa.child_id)
        if activate_outbound or first:
            self._add_outbound(pair, outbound)
        else:
            pair.pending_outbound = outbound
        self._ensure_policies(sa, reqid, local, peer)

    def activate_outbound(self, spi_in: bytes) -> None:
        pair = self._pairs[bytes(spi_in)]
        if pair.pending_outbound is not None:
            self._add_outbound(pair, pair.pending_outbound)

    def _add_outbound(self, pair: _Pair, request) -> None:
        self._nl.request(xfrm.xfrm_usersa_info, xfrm.XFRM_MSG_NEWSA, *request)
        pair.outbound_installed = True
        pair.pending_outbound = None

    def remove_child_sa(self, spi_in: bytes) -> None:
        pair = self._pairs.pop(bytes(spi_in), None)
        if pair is None:
            return
        self._delete_sa(pair.local, pair.spi_in)
        if pair.outbound_installed:
            self._delete_sa(pair.peer, pair.spi_out)
        siblings = [p for p in self._pairs.values() if p.child_id == pair.child_id]
        if not siblings:
            self._remove_policies(pair.child_id)
        elif pair.outbound_installed and not any(p.outbound_installed for p in siblings):
            # The old outbound SA is gone; send with the newest one even if not yet activated.
            newest = siblings[-1]
            if newest.pending_outbound is not None:
                self._add_outbound(newest, newest.pending_outbound)

    def counters(self) -> dict[bytes, SaCounters]:
        result = {}
        for spi_in, pair in list(self._pairs.items()):
            counters = SaCounters(pair.child_id, pair.spi_in, pair.spi_out)
            inbound = self._get_sa(pair.local, pair.spi_in)
            if inbound is not None:
                counters.bytes_in = inbound["curlft_bytes"]
                counters.packets_in = inbound["curlft_packets"]
                counters.replay_drops = inbound["stats_replay"]
                counters.auth_failures = inbound["stats_integrity_failed"]
            outbound = self._get_sa(pair.peer, pair.spi_out) if pair.outbound_installed else None
            if outbound is not None:
                counters.bytes_out = outbound["curlft_bytes"]
                counters.packets_out = outbound["curlft_packets"]
            result[spi_in] = counters
        return result

    def close(self) -> None:
        """Delete every SA and policy this data plane installed; stop reading."""
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            for fd in (self.sock.fileno(), self._monitor.fileno()):
                try:
                    self._loop.remove_reader(fd)
                except (ValueError, OSError):
                    pass
        for spi_in in list(self._pairs):
            try:
                self.remove_child_sa(spi_in)
            except OSError as error:
                log.info("removing SA %s failed: %s", spi_in.hex(), error)
        for child_id in list(self._policies):
            self._remove_policies(child_id)
        self._nl.close()
        self._monitor.close()

    # --- netlink requests ---

    def _sa_request(self, sa, spi: bytes, *, src: str, dst: str, reqid: int, encap: bool,
                    encr_key: bytes, integ_key: bytes):
        """(fields, attributes) of an XFRM_MSG_NEWSA for one direction. Holds key material."""
        family = xfrm.family_of(dst)
        flags = xfrm.XFRM_STATE_AF_UNSPEC
        if sa.esn:
            flags |= xfrm.XFRM_STATE_ESN
        lifetimes = xfrm.no_limits()
        hard = float(getattr(sa, "lifetime_hard", 0) or 0)
        soft = float(getattr(sa, "lifetime_soft", 0) or 0)
        if hard > 0:
            lifetimes["lft_hard_add_expires_seconds"] = int(hard)
            if 0 < soft < hard:
                lifetimes["lft_soft_add_expires_seconds"] = int(soft + (hard - soft) / 2)
        if self.limits is not None:
            for mine, theirs in (("soft_packets", "soft_packet_limit"), ("hard_packets", "hard_packet_limit"),
                                 ("soft_bytes", "soft_byte_limit"), ("hard_bytes", "hard_byte_limit")):
                value = getattr(self.limits, mine)
                if value is not None:
                    lifetimes[f"lft_{theirs}"] = value
        fields = {
            **xfrm.selector(), **lifetimes,
            "id_daddr": xfrm.pack_address(dst), "id_spi": spi, "id_proto": xfrm.IPPROTO_ESP,
            "saddr": xfrm.pack_address(src), "family": family, "mode": xfrm.XFRM_MODE_TUNNEL,
            "reqid": reqid, "flags": flags, "replay_window": 0,
        }
        attrs = _algorithm_attributes(sa, encr_key, integ_key)
        words = (self.replay_window + 31) // 32
        attrs.append(("XFRMA_REPLAY_ESN_VAL", {"bmp_len": words, "replay_window": self.replay_window,
                                              "bmp": bytes(4 * words)}))
        if encap:
            local_port = self.sock.getsockname()[1]
            peer_port = self.peer[1] if self.peer else IKE_NATT_PORT
            sport, dport = (local_port, peer_port) if src != self.peer[0] else (peer_port, local_port)
            attrs.append(("XFRMA_ENCAP", {"encap_type": xfrm.UDP_ENCAP_ESPINUDP,
                                          "encap_sport": xfrm.pack_port(sport),
                                          "encap_dport": xfrm.pack_port(dport),
                                          "encap_oa": bytes(16)}))
        attrs.append(("XFRMA_IF_ID", self.if_id))
        return fields, attrs

    def _delete_sa(self, daddr: str, spi: bytes) -> None:
        try:
            self._nl.request(xfrm.xfrm_usersa_id, xfrm.XFRM_MSG_DELSA, {
                "daddr": xfrm.pack_address(daddr), "spi": spi, "family": xfrm.family_of(daddr),
                "proto": xfrm.IPPROTO_ESP})
        except OSError as error:
            if error.errno != errno.ESRCH:  # already gone (hard expiry)
                raise

    def _get_sa(self, daddr: str, spi: bytes):
        try:
            answer = self._nl.request(xfrm.xfrm_usersa_id, xfrm.XFRM_MSG_GETSA, {
                "daddr": xfrm.pack_address(daddr), "spi": spi, "family": xfrm.family_of(daddr),
                "proto": xfrm.IPPROTO_ESP})
        except OSError:
            return None
        return answer[0] if answer else None

    def _ensure_policies(self, sa, reqid: int, local: str, peer: str) -> None:
        if sa.child_id in self._policies:
            return
        selectors = []
        for local_net in sa.local_ts:
            for remote_net in sa.remote_ts:
                if local_net.version != remote_net.version:
                    continue
                selectors.append((xfrm.XFRM_POLICY_OUT, local_net, remote_net))
                selectors.append((xfrm.XFRM_POLICY_IN, remote_net, local_net))
                selectors.append((xfrm.XFRM_POLICY_FWD, remote_net, local_net))
        installed = _ChildPolicies(reqid, [], local, peer)
        self._policies[sa.child_id] = installed
        for direction, src, dst in selectors:
            outer_src, outer_dst = (local, peer) if direction == xfrm.XFRM_POLICY_OUT else (peer, local)
            fields = {**xfrm.selector(src, dst), **xfrm.no_limits(),
                      "priority": POLICY_PRIORITY - src.prefixlen - dst.prefixlen,
                      "dir": direction, "action": xfrm.XFRM_POLICY_ALLOW}
            template = {"id_daddr": xfrm.pack_address(outer_dst), "id_proto": xfrm.IPPROTO_ESP,
                        "family": xfrm.family_of(outer_dst), "saddr": xfrm.pack_address(outer_src),
                        "reqid": reqid, "mode": xfrm.XFRM_MODE_TUNNEL, "aalgos": ALL_ALGORITHMS,
                        "ealgos": ALL_ALGORITHMS, "calgos": ALL_ALGORITHMS}
            # UPDPOLICY: create or replace (a policy left by an earlier child is taken over)
            self._nl.request(xfrm.xfrm_userpolicy_info, xfrm.XFRM_MSG_UPDPOLICY, fields,
                             [("XFRMA_TMPL", template), ("XFRMA_IF_ID", self.if_id)])
            installed.selectors.append((direction, src, dst))

    def _remove_policies(self, child_id: int) -> None:
        installed = self._policies.pop(child_id, None)
        if installed is None:
            return
        for direction, src, dst in installed.selectors:
            try:
                self._nl.request(xfrm.xfrm_userpolicy_id, xfrm.XFRM_MSG_DELPOLICY,
                                 {**xfrm.selector(src, dst), "dir": direction},
                                 [("XFRMA_IF_ID", self.if_id)])
            except OSError as error:
                if error.errno != errno.ENOENT:
                    log.info("removing a policy failed: %s", error)

    # --- kernel notices ---

    def _on_kernel_event(self) -> None:
        try:
            events = self._monitor.events()
        except OSError as error:
            log.info("reading XFRM events failed: %s", error)
            return
        for kind, message in events:
            if kind == xfrm.XFRM_MSG_EXPIRE:
                self._on_expire(message)
            elif kind == xfrm.XFRM_MSG_ACQUIRE:
                self._on_acquire(message)

    def _find_pair(self, spi: bytes):
        for pair in self._pairs.values():
            if spi == pair.spi_in:
                return pair, "in"
            if spi == pair.spi_out and pair.outbound_installed:
                return pair, "out"
        return None, ""

    def _on_expire(self, message) -> None:
        if message.get_attr("XFRMA_IF_ID") not in (None, self.if_id):
            return
        pair, direction = self._find_pair(bytes(message["state_id_spi"]))
        if pair is None:
            return
        hard = bool(message["hard"])
        what = "time"
        for kind in ("byte", "packet"):
            limit = message[f"state_lft_{'hard' if hard else 'soft'}_{kind}_limit"]
            if limit != xfrm.XFRM_INF and message[f"state_curlft_{kind}s"] >= limit:
                what = kind + "s"
        if hard:
            log.info("CHILD_SA %s reached its hard %s limit (%s)", pair.spi_in.hex(), what, direction)
            if direction == "out":
                pair.outbound_installed = False  # the kernel deleted it
        elif pair.soft_signalled or not self._is_newest(pair):
            return  # one rekey request per SA pair, and none for an SA already replaced
        else:
            pair.soft_signalled = True
        self.on_event(SaLimitReached(pair.child_id, pair.spi_in, pair.spi_out, direction,
                                     "hard" if hard else "soft", what))

    def _is_newest(self, pair: _Pair) -> bool:
        siblings = [p for p in self._pairs.values() if p.child_id == pair.child_id]
        return siblings[-1] is pair

    def _on_acquire(self, message) -> None:
        template = message.get_attr("XFRMA_TMPL")
        if template is None or message.get_attr("XFRMA_IF_ID") not in (None, self.if_id):
            return
        reqid = template["reqid"]
        child_id = next((c for c, p in self._policies.items() if p.reqid == reqid), None)
        if child_id is None:
            return
        now = time.monotonic()
        if now - self._last_acquire.get(child_id, -ACQUIRE_INTERVAL) < ACQUIRE_INTERVAL:
            return
        self._last_acquire[child_id] = now
        newest = [p for p in self._pairs.values() if p.child_id == child_id]
        spi_in, spi_out = (newest[-1].spi_in, newest[-1].spi_out) if newest else (b"", b"")
        self.on_event(SaLimitReached(child_id, spi_in, spi_out, "out", "soft", "acquire"))


# ------------------------------------------------------------------------------ helpers


def _algorithm_attributes(sa, encr_key: bytes, integ_key: bytes) -> list:
    """XFRMA_ALG_AEAD, or XFRMA_ALG_CRYPT + XFRMA_ALG_AUTH_TRUNC, for the negotiated ids."""
    if sa.encr_id in AEAD_ALGORITHMS:
        name, icv_bits = AEAD_ALGORITHMS[sa.encr_id]
        return [("XFRMA_ALG_AEAD", {"alg_name": name.encode(), "alg_key_len": len(encr_key) * 8,
                                    "alg_icv_len": icv_bits, "alg_key": bytes(encr_key)})]
    if sa.encr_id not in CIPHER_ALGORITHMS:
        raise KernelDataPlaneError(errno.EOPNOTSUPP, f"ENCR transform {sa.encr_id} is not supported by the kernel data plane")
    if sa.integ_id not in INTEG_ALGORITHMS:
        raise KernelDataPlaneError(errno.EOPNOTSUPP, f"INTEG transform {sa.integ_id} is not supported by the kernel data plane")
    integ_name, trunc_bits = INTEG_ALGORITHMS[sa.integ_id]
    return [
        ("XFRMA_ALG_CRYPT", {"alg_name": CIPHER_ALGORITHMS[sa.encr_id].encode(),
                             "alg_key_len": len(encr_key) * 8, "alg_key": bytes(encr_key)}),
        ("XFRMA_ALG_AUTH_TRUNC", {"alg_name": integ_name.encode(), "alg_key_len": len(integ_key) * 8,
                                  "alg_trunc_len": trunc_bits, "alg_key": bytes(integ_key)}),
    ]


def clean_stale(if_id: int) -> int:
    """Delete SAs and policies a previous run of the tunnel with `if_id` left in the kernel
    (recognised by its if_id and Cygnet's reqid range). Returns how many were removed."""
    removed = 0
    with xfrm.XfrmSocket() as nl:
        for sa in nl.request(xfrm.xfrm_usersa_info, xfrm.XFRM_MSG_GETSA, {}, dump=True):
            if sa.get_attr("XFRMA_IF_ID") != if_id or sa["reqid"] & REQID_MASK != REQID_BASE:
                continue
            family = sa["family"]
            try:
                nl.request(xfrm.xfrm_usersa_id, xfrm.XFRM_MSG_DELSA, {
                    "daddr": sa["id_daddr"], "spi": sa["id_spi"], "family": family,
                    "proto": sa["id_proto"]})
                removed += 1
            except OSError:
                pass
        for policy in nl.request(xfrm.xfrm_userpolicy_info, xfrm.XFRM_MSG_GETPOLICY, {}, dump=True):
            template = policy.get_attr("XFRMA_TMPL")
            if policy.get_attr("XFRMA_IF_ID") != if_id or template is None \
                    or template["reqid"] & REQID_MASK != REQID_BASE:
                continue
            selector = {k: v for k, v in policy.items() if k.startswith("sel_")}
            try:
                nl.request(xfrm.xfrm_userpolicy_id, xfrm.XFRM_MSG_DELPOLICY,
                           {**selector, "dir": policy["dir"]}, [("XFRMA_IF_ID", if_id)])
                removed += 1
            except OSError:
                pass
    return removed


def open_kernel(name: str, sock4500: socket.socket, sock500: socket.socket | None = None, *,
                on_ike_packet=None, on_event=None, limits: esp.SaLimits | None = None):
    """Everything the engine needs for the kernel data plane of tunnel `name`: removes what a
    killed run left (SAs, policies, the interface), creates the XFRM interface, lets the IKE
    sockets bypass IPsec. Returns (XfrmInterface, KernelDataPlane, stale objects removed).
    Raises KernelDataPlaneError (or OSError) if the kernel cannot."""
    if_id = tunnel_if_id(name)
    removed = clean_stale(if_id)
    interface = XfrmInterface.create(if_id)
    try:
        if sock500 is not None:
            bypass_socket(sock500)
        dataplane = KernelDataPlane(sock4500, if_id, on_ike_packet=on_ike_packet,
                                    on_event=on_event, limits=limits)
    except BaseException:
        interface.close()
        raise
    return interface, dataplane, removed
