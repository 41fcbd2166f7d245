"""ChildSaSet: the CHILD_SAs of one session, keyed by our inbound SPI, and how they are made.

It owns the SAs and the next child_id, builds SA/TSi/TSr offers, checks the gateway's answer
(it may narrow our traffic selectors, never widen them: §2.9), derives KEYMAT (§2.17) and
reports each SA that leaves the set as ChildSaDeleted. State changes of one SA go through
`ChildSa.apply` (child_sa.py); this set only adds and removes.
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, Optional

from . import traffic_selectors
from . import session_crypto as crypto
from .child_sa import ChildSa, ChildState
from .events import ChildSaDeleted, Event
from .ike_sa import IkeSaContext, ProtocolViolation, first, jitter
from .payloads import SA, TSi, TSr
from .settings import Settings


class ChildSaSet:
    """The session's CHILD_SAs (ours and the gateway's), with their factory."""

    def __init__(self, settings: Settings, offered_esp: list, random: Callable[[int], bytes],
                 events: deque[Event], udp_encapsulated: Callable[[], bool]) -> None:
        self._settings = settings
        self._offered_esp = offered_esp
        self._random = random
        self._events = events
        self._udp_encapsulated = udp_encapsulated
        self._by_spi_in: dict[bytes, ChildSa] = {}
        self._next_child_id = 1

    # ------------------------------------------------------------------ looking up

    def view(self) -> Mapping[bytes, ChildSa]:
        """Read-only: our inbound SPI -> ChildSa."""
        return MappingProxyType(self._by_spi_in)

    def __iter__(self) -> Iterator[ChildSa]:
        return iter(list(self._by_spi_in.values()))

    def __len__(self) -> int:
        return len(self._by_spi_in)

    def holds(self, child: ChildSa) -> bool:
        return self._by_spi_in.get(child.spi_in) is child

    def installed(self, child_id: int) -> Optional[ChildSa]:
        for child in self._by_spi_in.values():
            if child.child_id == child_id and child.state is ChildState.INSTALLED:
                return child
        return None

    def by_spi_out(self, spi: bytes) -> Optional[ChildSa]:
        return next((c for c in self._by_spi_in.values() if c.spi_out == spi), None)

    def any_rekeying(self) -> bool:
        return any(c.state is ChildState.REKEYING for c in self._by_spi_in.values())

    def new_spi(self) -> bytes:
        while True:
            spi = self._random(4)
            # SPIs 1..255 are reserved by IANA (RFC 4303 §2.1)
            if int.from_bytes(spi, "big") > 255 and spi not in self._by_spi_in:
                return spi

    # ------------------------------------------------------------------ making

    def offer(self, spi: bytes, ke_payload=None, ts=None) -> list:
        """SA [KE] TSi TSr. ts: (local, remote) networks; the settings' for a new CHILD_SA,
        the current (narrowed) ones when rekeying, as strongSwan does."""
        local_ts, remote_ts = ts or (self._settings.local_ts, self._settings.remote_ts)
        payloads = [SA(crypto.esp_proposal_payloads(self._offered_esp, spi,
                                                    with_ke=ke_payload is not None))]
        if ke_payload is not None:
            payloads.append(ke_payload)
        payloads += [TSi(traffic_selectors.selectors_for(local_ts)),
                     TSr(traffic_selectors.selectors_for(remote_ts))]
        return payloads

    def from_response(self, ike: IkeSaContext, payloads, spi_in, ni, nr, shared, now,
                      child_id, we_initiated, with_ke: bool = False, ts=None) -> ChildSa:
        """Build a CHILD_SA from the responder's SA/TSi/TSr (we initiated the exchange)."""
        sa, tsi, tsr = first(payloads, SA), first(payloads, TSi), first(payloads, TSr)
        if sa is None or tsi is None or tsr is None:
            raise ProtocolViolation("CHILD_SA response lacks SA, TSi or TSr")
        chosen = crypto.choose_esp(self._offered_esp, sa, with_ke=with_ke)
        spi_out = sa.proposals[0].spi
        if len(spi_out) != 4:
            raise ProtocolViolation("ESP SPI must be 4 bytes")
        local_ts, remote_ts = ts or (self._settings.local_ts, self._settings.remote_ts)
        proposed_i = traffic_selectors.selectors_for(local_ts)
        proposed_r = traffic_selectors.selectors_for(remote_ts)
        if not (traffic_selectors.is_narrowing_of(proposed_i, tsi.selectors)
                and traffic_selectors.is_narrowing_of(proposed_r, tsr.selectors)):
            raise ProtocolViolation("the gateway widened our traffic selectors")
        return self.install(ike, chosen, spi_in, spi_out, ni, nr, shared,
                            traffic_selectors.networks_of(tsi.selectors),
                            traffic_selectors.networks_of(tsr.selectors),
                            now, child_id, we_initiated)

    def install(self, ike: IkeSaContext, chosen, spi_in, spi_out, ni, nr, shared, local_ts,
                remote_ts, now, child_id, we_initiated) -> ChildSa:
        s = self._settings
        keymat = crypto.child_keymat(chosen, ike.proposal, ike.keys.sk_d, ni, nr, shared)
        if child_id is None:
            child_id = self._next_child_id
            self._next_child_id += 1
        soft = s.child_rekey_time - jitter(self._random, s.child_rand_time)
        hard = max(s.child_life_time, soft)
        child = ChildSa.from_keymat(
            child_id, spi_in, spi_out, chosen, keymat, we_initiated,
            local_ts=local_ts, remote_ts=remote_ts,
            udp_encapsulation=self._udp_encapsulated(),
            rekey_at=now + soft, expire_at=now + hard, lifetime_soft=soft, lifetime_hard=hard)
        self._by_spi_in[spi_in] = child
        return child

    # ------------------------------------------------------------------ removing

    def remove(self, child: ChildSa, reason: str) -> None:
        if self._by_spi_in.pop(child.spi_in, None) is not None:
            self._events.append(ChildSaDeleted(child.child_id, child.spi_in, child.spi_out,
                                               reason))

    def remove_all(self, reason: str) -> None:
        """The IKE_SA is gone and its CHILD_SAs with it (§1.4.1)."""
        for child in list(self._by_spi_in.values()):
            self._events.append(ChildSaDeleted(child.child_id, child.spi_in, child.spi_out,
                                               reason))
        self._by_spi_in.clear()
