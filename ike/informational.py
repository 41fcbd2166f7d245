"""INFORMATIONAL exchanges (§1.4, §1.5, §2.4): DELETE both ways, liveness checks (DPD),
the gateway's address and REDIRECT notifications, and closing the IKE_SA.

`Informational` is a collaborator of IkeSession (session.py). It owns how the IKE_SA is being
closed (the reason, a pending REDIRECT, whether the gateway deleted it). Of the session it
uses the state machine (`state`, `_transition`, `_finish`), the current IKE_SA, settings and
events, and the collaborators: the request channel, the CHILD_SA set, the lifetimes and
rekeying (to retire a rekeyed-away IKE_SA).
"""

from __future__ import annotations

import logging
from typing import Optional

from .session_part import SessionPart
from .child_sa import ChildInput, ChildSa, ChildState
from .constants import ExchangeType, NotifyType, ProtocolId
from .events import DeadPeerDetected, Redirected
from .ike_sa import IkeSaContext, Input, State
from .mobike import dpd_policy
from .payloads import Delete, Notify
from .redirect import RedirectError, decode_redirect

log = logging.getLogger(__name__)


class Informational(SessionPart):
    """IkeSession's INFORMATIONAL exchanges, ours and the gateway's."""

    def __init__(self, session) -> None:
        super().__init__(session)
        self.pending_redirect: Optional[str] = None
        self.close_reason = ""
        self.deleted_by_gateway = False

    # The parts of the session this collaborator uses (its narrow interface)

    # ------------------------------------------------------------------ our INFORMATIONAL

    def send_child_delete(self, child: ChildSa, now: float, why: str) -> None:
        s = self._s
        if not self._child_sas.holds(child) or s.state is not State.ESTABLISHED:
            return
        if child.state is not ChildState.DELETING:  # a redundant SA is DELETING already
            child.apply(ChildInput.SEND_DELETE)
        payloads = [Delete(ProtocolId.ESP, [child.spi_in])]

        def on_response(reply, t):
            self._child_sas.remove(child, why)

        self._requests.send_request(s._ike, ExchangeType.INFORMATIONAL, payloads, on_response,
                                    now, on_give_up=lambda t: self.unreachable(t, "INFORMATIONAL"))

    def unreachable(self, now: float, exchange: str, transmissions: int = 0) -> None:
        transmissions = transmissions or self._s.settings.retransmission.tries + 1
        reason = f"gateway unreachable: no answer to {exchange} after {transmissions} transmissions"
        log.info("IKE_SA %s: %s", self._s._ike.spi_i.hex(), reason)
        self._s._finish(reason, DeadPeerDetected(reason))

    def send_ike_delete_of(self, ike: IkeSaContext, now: float) -> None:
        """DELETE of a replaced or redundant IKE_SA, sent over that IKE_SA (§2.18)."""
        retire = self._rekeying.retire
        self._requests.send_request(ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])],
                                    lambda reply, t: retire(ike, t), now,
                                    on_give_up=lambda t: retire(ike, t))

    def send_ike_delete(self, now: float) -> None:
        """Our DELETE of the IKE_SA (close(), or after a failed first CHILD_SA)."""
        reason = self._closing_reason()

        def done(*_):
            events = (Redirected(self.pending_redirect),) if self.pending_redirect else ()
            self._s._finish(reason, *events)

        self._requests.send_request(self._s._ike, ExchangeType.INFORMATIONAL,
                                    [Delete(ProtocolId.IKE, [])], lambda reply, t: done(),
                                    now, on_give_up=lambda t: done())

    def _closing_reason(self) -> str:
        if self.pending_redirect:
            return f"redirected to {self.pending_redirect}"
        return self.close_reason or "closed"

    def close_after_established(self, reason: str = "", redirect: Optional[str] = None) -> None:
        """Right after IKE_AUTH: delete the IKE_SA again (a REDIRECT, or no usable CHILD_SA)."""
        self._s._transition(Input.CLOSE)
        if redirect:
            self.pending_redirect = redirect
        else:
            self.close_reason = reason
        self._requests.queue(self.send_ike_delete)

    def close_with(self, reason: str) -> None:
        """Delete the established IKE_SA instead of whatever was queued (close(), REDIRECT)."""
        s = self._s
        if s.state is State.ESTABLISHED:
            self.close_reason = reason
            s._transition(Input.CLOSE)
            self._requests.clear_queue()
            self._requests.queue(self.send_ike_delete)

    def send_delete_spi(self, child: ChildSa, now: float) -> None:
        self._requests.send_request(
            self._s._ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.ESP, [child.spi_in])],
            lambda reply, t: None, now,
            on_give_up=lambda t: self.unreachable(t, "INFORMATIONAL"))

    def send_dpd(self, now: float) -> None:
        """§2.4 liveness check: an empty INFORMATIONAL request."""
        policy = dpd_policy(self._s.settings)  # maybe a short budget (ike/mobike.py)
        ike = self._s._ike
        log.debug("IKE_SA %s: liveness check (DPD), message ID %d", ike.spi_i.hex(),
                  ike.next_request_id)
        self._requests.send_request(
            ike, ExchangeType.INFORMATIONAL, [],
            lambda reply, t: log.debug("IKE_SA %s: liveness check answered", ike.spi_i.hex()),
            now, on_give_up=lambda t: self.unreachable(t, "a liveness check", policy.tries + 1),
            policy=policy)

    # ------------------------------------------------------------------ the gateway's INFORMATIONAL

    def answer(self, ike, payloads, addr, now) -> Optional[list]:
        """INFORMATIONAL from the gateway (§1.4): DELETE, liveness, address notifies."""
        s = self._s
        response: list = []
        self.record_additional_addresses(payloads)
        for p in payloads:
            if isinstance(p, Notify) and p.type == NotifyType.UPDATE_SA_ADDRESSES:
                # RFC 4555 §3.5: the new addresses are those of the IP header
                self._requests.remote = (addr[0], addr[1])
            elif isinstance(p, Notify) and p.type == NotifyType.COOKIE2:  # RFC 4555 §3.8
                response.append(Notify(NotifyType.COOKIE2, data=p.data))
            elif isinstance(p, Notify) and p.type == NotifyType.AUTH_LIFETIME:  # RFC 4478 §3
                self._lifetimes.on_auth_lifetime(p, now)
            elif isinstance(p, Notify) and p.type == NotifyType.REDIRECT:  # RFC 5685 §5
                try:
                    gateway, _ = decode_redirect(p.data)
                except RedirectError:
                    continue
                self.pending_redirect = gateway
                self.close_with(f"redirected to {gateway}")
        deletes = [p for p in payloads if isinstance(p, Delete)]
        for delete in deletes:
            if delete.protocol == ProtocolId.IKE:
                if ike is not s._ike:
                    self._rekeying.retire(ike, now)  # the gateway deletes an IKE_SA rekeyed away
                    return []
                self.deleted_by_gateway = True  # answer first, then finish
                return []
            if delete.protocol == ProtocolId.ESP:
                ours = []
                for spi in delete.spis:
                    child = self._child_sas.by_spi_out(spi)
                    if child is None:
                        continue
                    if child.state is not ChildState.DELETING:
                        ours.append(child.spi_in)  # §1.4.1: answer with our half
                    reason = "rekeyed by the gateway" if child.state is ChildState.REKEYED \
                        else "deleted by the gateway"
                    self._child_sas.remove(child, reason)
                if ours:
                    response.append(Delete(ProtocolId.ESP, ours))
        return response

    def record_additional_addresses(self, payloads) -> None:
        """ADDITIONAL_IP4/6_ADDRESS (RFC 4555 §3.4), in IKE_AUTH or INFORMATIONAL: kept by
        ike/mobike.py as alternatives, reported as PeerAddressesAdded."""
        event = self._s._mobike.record_addresses(payloads)
        if event is not None:
            self._s._events.append(event)
