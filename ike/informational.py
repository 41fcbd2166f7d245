"""INFORMATIONAL exchanges (§1.4, §1.5, §2.4): DELETE both ways, liveness checks (DPD),
the gateway's address and REDIRECT notifications, and closing the IKE_SA.

These are methods of IkeSession (session.py), split out by exchange; all state lives on the
session.
"""

from __future__ import annotations

import logging
from typing import Optional

from .child_sa import ChildSa, ChildState
from .constants import ExchangeType, NotifyType, ProtocolId
from .events import ChildSaDeleted, DeadPeerDetected, Redirected
from .ike_sa import IkeSaContext, Input, State
from .mobike import dpd_policy
from .payloads import Delete, Notify
from .redirect import RedirectError, decode_redirect

log = logging.getLogger(__name__)


class Informational:
    """IkeSession's INFORMATIONAL exchanges, ours and the gateway's."""

    def _send_child_delete(self, child: ChildSa, now: float, why: str) -> None:
        if self._children.get(child.spi_in) is not child or self.state is not State.ESTABLISHED:
            return
        child.state = ChildState.DELETING
        payloads = [Delete(ProtocolId.ESP, [child.spi_in])]

        def on_response(reply, t):
            self._remove_child(child, why)

        self._send_request(self._ike, ExchangeType.INFORMATIONAL, payloads, on_response, now,
                           on_give_up=lambda t: self._unreachable(t, "INFORMATIONAL"))

    def _remove_child(self, child: ChildSa, reason: str) -> None:
        if self._children.pop(child.spi_in, None) is not None:
            self._events.append(ChildSaDeleted(child.child_id, child.spi_in, child.spi_out,
                                               reason))

    def _unreachable(self, now: float, exchange: str, transmissions: int = 0) -> None:
        transmissions = transmissions or self.settings.retransmission.tries + 1
        reason = f"gateway unreachable: no answer to {exchange} after {transmissions} transmissions"
        self._finish(reason, DeadPeerDetected(reason))

    def _send_ike_delete_of(self, ike: IkeSaContext, now: float) -> None:
        """DELETE of a replaced or redundant IKE_SA, sent over that IKE_SA (§2.18)."""
        self._send_request(ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])],
                           lambda reply, t: self._retire(ike, t), now,
                           on_give_up=lambda t: self._retire(ike, t))

    def _send_ike_delete(self, now: float) -> None:
        """Our DELETE of the IKE_SA (close(), or after a failed first CHILD_SA)."""
        reason = self._closing_reason()

        def done(*_):
            events = (Redirected(self._pending_redirect),) if self._pending_redirect else ()
            self._finish(reason, *events)

        self._send_request(self._ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])],
                           lambda reply, t: done(), now, on_give_up=lambda t: done())

    def _closing_reason(self) -> str:
        if self._pending_redirect:
            return f"redirected to {self._pending_redirect}"
        return self._close_reason or "closed"

    def _close_with(self, reason: str) -> None:
        if self.state is State.ESTABLISHED:
            self._close_reason = reason
            self._transition(Input.CLOSE)
            self._queue.clear()
            self._queue.append(self._send_ike_delete)

    # ------------------------------------------------------------------ the gateway's INFORMATIONAL

    def _answer_informational(self, ike, payloads, addr, now) -> Optional[list]:
        """INFORMATIONAL from the gateway (§1.4): DELETE, liveness, address notifies."""
        response: list = []
        self._record_additional_addresses(payloads)
        for p in payloads:
            if isinstance(p, Notify) and p.type == NotifyType.UPDATE_SA_ADDRESSES:
                # RFC 4555 §3.5: the new addresses are those of the IP header
                self._remote = (addr[0], addr[1])
            elif isinstance(p, Notify) and p.type == NotifyType.COOKIE2:  # RFC 4555 §3.8
                response.append(Notify(NotifyType.COOKIE2, data=p.data))
            elif isinstance(p, Notify) and p.type == NotifyType.AUTH_LIFETIME:  # RFC 4478 §3
                self._on_auth_lifetime(p, now)
            elif isinstance(p, Notify) and p.type == NotifyType.REDIRECT:  # RFC 5685 §5
                try:
                    gateway, _ = decode_redirect(p.data)
                except RedirectError:
                    continue
                self._pending_redirect = gateway
                self._close_with(f"redirected to {gateway}")
        deletes = [p for p in payloads if isinstance(p, Delete)]
        for delete in deletes:
            if delete.protocol == ProtocolId.IKE:
                if ike is not self._ike:
                    self._retire(ike, now)  # the gateway deletes an IKE_SA rekeyed away
                    return []
                self._deleted_by_gateway = True  # answer first, then finish
                return []
            if delete.protocol == ProtocolId.ESP:
                ours = []
                for spi in delete.spis:
                    child = self._child_by_spi_out(spi)
                    if child is None:
                        continue
                    if child.state is not ChildState.DELETING:
                        ours.append(child.spi_in)  # §1.4.1: answer with our half
                    reason = "rekeyed by the gateway" if child.state is ChildState.REKEYED \
                        else "deleted by the gateway"
                    self._remove_child(child, reason)
                if ours:
                    response.append(Delete(ProtocolId.ESP, ours))
        return response

    def _send_delete_spi(self, child: ChildSa, now: float) -> None:
        self._send_request(self._ike, ExchangeType.INFORMATIONAL,
                           [Delete(ProtocolId.ESP, [child.spi_in])], lambda reply, t: None, now,
                           on_give_up=lambda t: self._unreachable(t, "INFORMATIONAL"))

    def _send_dpd(self, now: float) -> None:
        """§2.4 liveness check: an empty INFORMATIONAL request."""
        policy = dpd_policy(self.settings)  # maybe a short budget (ike/mobike.py)
        self._send_request(self._ike, ExchangeType.INFORMATIONAL, [],
                           lambda reply, t: None, now, policy=policy,
                           on_give_up=lambda t: self._unreachable(t, "a liveness check",
                                                                  policy.tries + 1))
