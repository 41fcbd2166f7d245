"""MOBIKE (RFC 4555): keeping an IKE_SA and its CHILD_SAs when our address or path changes,
and the liveness check after a resume.

A collaborator of IkeSession (session.py), which owns the message plumbing; this object holds
the MOBIKE state of the session's IKE_SA and builds and checks its exchanges:

- IKE_AUTH carries MOBIKE_SUPPORTED (§3.1); the gateway's answer says whether it supports it,
  and its ADDITIONAL_IP4/IP6_ADDRESS notifies (§3.4) are kept as alternative addresses.
- `update_addresses()` after our address or path changed (§3.5): an INFORMATIONAL request
  from the new address with UPDATE_SA_ADDRESSES, fresh NAT_DETECTION_SOURCE/DESTINATION_IP
  hashes for the new address pair (§3.5: NAT may have appeared or gone) and a COOKIE2 (§3.8)
  the gateway must echo, so an old or spoofed response cannot complete the update.
  The gateway moves its SAs to the address the request came from; the response tells us
  whether there is NAT on the new path (AddressesUpdated.nat_detected).
- UNEXPECTED_NAT_DETECTED in the response (the gateway sent NO_NATS_ALLOWED, §3.9) or
  UNACCEPTABLE_ADDRESSES (§3.5) fail the move: the path cannot carry this IKE_SA.
- `check_liveness()`: one empty INFORMATIONAL (RFC 7296 §2.4) with a short retransmission
  budget, e.g. after a resume from suspend: if the gateway forgot us it does not answer, and
  the session ends with DeadPeerDetected (the owner reconnects).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Optional

from .constant_time import bytes_equal
from .constants import ExchangeType, NotifyType
from .events import AddressesUpdated, PeerAddressesAdded
from .nat_detection import nat_detection_hash
from .payloads import Notify
from .retransmission import RetransmissionPolicy

log = logging.getLogger(__name__)

COOKIE2_SIZE = 16  # RFC 4555 §3.8: 8 to 64 octets
NAT_T_PORT = 4500
# After a resume: three quick sends (0, 0.5, 1.25 s), given up at 2.4 s, not strongSwan's 165 s.
LIVENESS_POLICY = RetransmissionPolicy(tries=2, timeout=0.5, base=1.5)


# A short budget for idle liveness checks (DPD), which the engine asks for (Settings.
# dpd_retransmission): sends at 0, 0.5, 1.5, 3.5 s, given up at 7.5 s rather than after
# strongSwan's 165 s, so a second gateway of the list takes over within dpd + 7.5 s.
DPD_POLICY = RetransmissionPolicy(tries=3, timeout=0.5, base=2.0)


def give_up_after(policy: RetransmissionPolicy) -> float:
    return sum(policy.delay(n) for n in range(1, policy.tries + 2))


def dpd_policy(settings) -> RetransmissionPolicy:
    """The DPD budget: Settings.dpd_retransmission, unless the general schedule gives up
    sooner (tests make it tiny); without one, the general schedule (strongSwan's)."""
    configured, short = settings.retransmission, settings.dpd_retransmission
    if short is None or give_up_after(configured) <= give_up_after(short):
        return configured
    return short


class Mobike:
    """RFC 4555 state of one IkeSession."""

    def __init__(self, session) -> None:
        self._session = session
        self.peer_supports = False  # the gateway sent MOBIKE_SUPPORTED in IKE_AUTH
        self.peer_addresses: tuple = ()  # its ADDITIONAL_*_ADDRESS: alternatives (§3.4)
        self._cookie2 = b""
        self._in_flight = False
        self._again = False  # the address changed again while an update was under way

    # ------------------------------------------------------------------ IKE_AUTH (§3.1)

    def offer(self) -> list:
        return [Notify(NotifyType.MOBIKE_SUPPORTED)] if self._session.settings.mobike else []

    def on_established(self, notifies: dict) -> None:
        self.peer_supports = (self._session.settings.mobike
                              and NotifyType.MOBIKE_SUPPORTED in notifies)

    def record_addresses(self, payloads) -> Optional[PeerAddressesAdded]:
        """§3.4: the gateway's additional addresses replace the list it sent before; with
        NO_ADDITIONAL_ADDRESSES it has none but the one we use."""
        addresses, said_none = [], False
        for p in payloads:
            if not isinstance(p, Notify):
                continue
            if p.type in (NotifyType.ADDITIONAL_IP4_ADDRESS, NotifyType.ADDITIONAL_IP6_ADDRESS):
                try:
                    addresses.append(ipaddress.ip_address(p.data))
                except ValueError:
                    continue
            elif p.type == NotifyType.NO_ADDITIONAL_ADDRESSES:
                said_none = True
        if addresses or said_none:
            self.peer_addresses = tuple(addresses)
        return PeerAddressesAdded(tuple(addresses)) if addresses else None

    # ------------------------------------------------------------------ our address changed (§3.5)

    @property
    def can_update(self) -> bool:
        return self.peer_supports

    def update_addresses(self, local_address: str, now: float) -> None:
        """Our address (or the path to the gateway) changed: tell the gateway from there."""
        s = self._session
        s.settings.local_address = local_address
        if self._in_flight:
            self._again = True  # the running update went out from the old address
            return
        self._in_flight = True
        s._requests.queue(self._send_update)
        # A request stuck on the old path goes out again at once, on the new one (window of
        # one: our update waits behind it).
        s._requests.retransmit_now(now)

    def _send_update(self, now: float) -> None:
        s = self._session
        ike = s._ike
        local, remote = s.settings.local_address, s._requests.remote
        self._cookie2 = s._random(COOKIE2_SIZE)
        # §3.5: the hashes are over the addresses and ports the request is sent between
        local_port = NAT_T_PORT if remote[1] == NAT_T_PORT else s.settings.local_port
        source = nat_detection_hash(ike.spi_i, ike.spi_r, local, local_port)
        if s.settings.force_encapsulation:
            source = s._random(len(source))  # keep the faked NAT (RFC 7296 §2.23 trick)
        payloads = [
            Notify(NotifyType.UPDATE_SA_ADDRESSES),
            Notify(NotifyType.NAT_DETECTION_SOURCE_IP, data=source),
            Notify(NotifyType.NAT_DETECTION_DESTINATION_IP,
                   data=nat_detection_hash(ike.spi_i, ike.spi_r, remote[0], remote[1])),
            Notify(NotifyType.COOKIE2, data=self._cookie2),
        ]
        self._sent_from = (local, local_port)
        self._again = False
        s._requests.send_request(ike, ExchangeType.INFORMATIONAL, payloads, self._on_update_response,
                        now, on_give_up=self._on_update_give_up)

    def _on_update_response(self, reply, now: float) -> None:
        s = self._session
        notifies = {int(p.type): p for p in reply.payloads if isinstance(p, Notify)}
        cookie = notifies.get(NotifyType.COOKIE2)
        if cookie is None or not bytes_equal(cookie.data, self._cookie2):
            # §3.8: the response must echo our COOKIE2; else it is not the answer to this
            # request. Raising drops it and keeps the request outstanding.
            from .ike_sa import ProtocolViolation

            raise ProtocolViolation("UPDATE_SA_ADDRESSES response without our COOKIE2")
        self._in_flight = False
        if self._again:
            # We moved again meanwhile: this answer (and its NAT detection) is about an
            # address pair we have left. Update again from the current one.
            return self._follow_up(now)
        for error in (NotifyType.UNEXPECTED_NAT_DETECTED, NotifyType.UNACCEPTABLE_ADDRESSES):
            if error in notifies:
                reason = f"the gateway refused our new address ({error.name})"
                s._events.append(AddressesUpdated(self._sent_from[0], s._requests.remote, False,
                                                  refused=reason))
                return self._follow_up(now)
        nat = self._nat_on_path(notifies, reply.addr)
        if nat and not s._requests.nat_t:
            # NAT appeared (§3.5): IKE and ESP move to port 4500, ESP in UDP (RFC 3948)
            s._requests.nat_t = True
            if s._requests.remote[1] != NAT_T_PORT:
                s._requests.remote = (s._requests.remote[0], NAT_T_PORT)
        s._establishment._nat_detected = nat
        s._events.append(AddressesUpdated(
            self._sent_from[0], s._requests.remote, nat or s.settings.force_encapsulation))
        self._follow_up(now)

    def _follow_up(self, now: float) -> None:
        if self._again:
            self._in_flight = True
            self._session._requests.queue(self._send_update)

    def _on_update_give_up(self, now: float) -> None:
        self._in_flight = False
        if self._again:  # the path changed again: try from the newest address
            self._in_flight = True
            return self._session._requests.queue(self._send_update)
        self._session._informational.unreachable(now, "UPDATE_SA_ADDRESSES")

    def _nat_on_path(self, notifies: dict, addr: tuple) -> bool:
        """RFC 7296 §2.23 over the new address pair."""
        s = self._session
        ike = s._ike
        source = notifies.get(NotifyType.NAT_DETECTION_SOURCE_IP)
        destination = notifies.get(NotifyType.NAT_DETECTION_DESTINATION_IP)
        if source is None or destination is None:
            return s._establishment._nat_detected  # no news: as before
        seen_remote = nat_detection_hash(ike.spi_i, ike.spi_r, addr[0], addr[1])
        seen_local = nat_detection_hash(ike.spi_i, ike.spi_r, *self._sent_from)
        return not bytes_equal(source.data, seen_remote) or \
            not bytes_equal(destination.data, seen_local)

    # ------------------------------------------------------------------ liveness (RFC 7296 §2.4)

    def check_liveness(self, now: Optional[float],
                       policy: RetransmissionPolicy = LIVENESS_POLICY) -> None:
        s = self._session
        s._requests.queue(lambda t: s._requests.send_request(
            s._ike, ExchangeType.INFORMATIONAL, [], lambda reply, t2: None, t,
            on_give_up=lambda t2: s._informational.unreachable(t2, "a liveness check", policy.tries + 1),
            policy=policy))
        if now is not None:
            s._requests.retransmit_now(now)
