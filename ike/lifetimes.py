"""Lifetimes: when the IKE_SA is rekeyed (§2.8), when it must be reauthenticated (RFC 4478,
§2.8.3) and when the gateway has been quiet long enough for a liveness check (§2.4).

It only keeps the clock readings and decides what is due; the exchanges that follow live in
rekeying.py and informational.py, and the session reports ReauthenticationRequested.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from .events import ReauthenticationRequested
from .ike_sa import jitter
from .settings import Settings

log = logging.getLogger(__name__)

MIN_AUTH_LIFETIME = 10  # seconds: a smaller AUTH_LIFETIME (RFC 4478) is raised to this


class Lifetimes:
    """The IKE_SA's rekey and reauthentication deadlines and the gateway's last sign of life."""

    def __init__(self, settings: Settings, random: Callable[[int], bytes], now: float,
                 spi_text: Callable[[], str]) -> None:
        self._settings = settings
        self._random = random
        self._spi_text = spi_text  # names the IKE_SA in logs
        self.ike_rekey_at: Optional[float] = None
        # RFC 4478 / §2.8.3: when to report ReauthenticationRequested, and its deadline
        self.reauth_at: Optional[float] = None
        self._reauth_deadline = 0.0
        self._reauth_by_gateway = False
        self.last_received = now

    def jitter(self, span: float) -> float:
        return jitter(self._random, span)

    # ------------------------------------------------------------------ IKE_SA rekey

    def schedule_ike_rekey(self, since: float) -> None:
        s = self._settings
        self.ike_rekey_at = since + s.ike_rekey_time - self.jitter(s.ike_rand_time)

    def take_ike_rekey_due(self, now: float, rekey_running: bool) -> bool:
        if self.ike_rekey_at is not None and now >= self.ike_rekey_at and not rekey_running:
            self.ike_rekey_at = None
            return True
        return False

    # ------------------------------------------------------------------ liveness

    def heard_from_peer(self, now: float) -> None:
        self.last_received = now

    def dpd_at(self) -> Optional[float]:
        if self._settings.dpd_delay > 0:
            return self.last_received + self._settings.dpd_delay
        return None

    # ------------------------------------------------------------------ reauthentication

    def take_reauth_due(self, now: float) -> Optional[ReauthenticationRequested]:
        if self.reauth_at is not None and now >= self.reauth_at:
            self.reauth_at = None
            return ReauthenticationRequested(self._reauth_deadline, self._reauth_by_gateway)
        return None

    def schedule_own_reauth(self, now: float) -> None:
        """swanctl's reauth_time: reauthenticate periodically; off (0) by default."""
        s = self._settings
        if s.reauth_time <= 0:
            return
        spread = s.reauth_time / 10 if s.reauth_rand_time is None else s.reauth_rand_time
        # like swanctl's over_time (default 10 % of reauth_time): the IKE_SA is kept that much
        # longer, time for the new one to come up
        self._plan_reauth(now + s.reauth_time - self.jitter(spread),
                          now + s.reauth_time + s.reauth_time / 10, now, by_gateway=False)

    def on_auth_lifetime(self, notify, now: float) -> None:
        """RFC 4478 §3: AUTH_LIFETIME (in IKE_AUTH or INFORMATIONAL) holds the seconds left
        until the gateway deletes this IKE_SA unless we reauthenticate. Start 10 % (strongSwan's
        default margin) plus up to 10 % random jitter (RFC 7296 §2.8: fewer collisions, no
        synchronised storms of reauthentications) before that."""
        if len(notify.data) != 4:
            log.info("ignored an AUTH_LIFETIME notify of %d octets (4 expected)", len(notify.data))
            return
        lifetime = int.from_bytes(notify.data, "big")
        if lifetime < MIN_AUTH_LIFETIME:
            # 0 would have us reauthenticate back to back, as fast as the handshakes go: RFC
            # 4478 §3 leaves the value to the gateway, we take no less than MIN_AUTH_LIFETIME:
            # a hostile or broken gateway gets at most one handshake every ~9 s out of us.
            log.info("AUTH_LIFETIME of %d s raised to %d s", lifetime, MIN_AUTH_LIFETIME)
            lifetime = MIN_AUTH_LIFETIME
        margin = lifetime / 10
        self._plan_reauth(now + lifetime - margin - self.jitter(margin), now + lifetime, now,
                          by_gateway=True)

    def _plan_reauth(self, at: float, deadline: float, now: float, by_gateway: bool) -> None:
        # The gateway's word replaces an earlier one of its own (RFC 4478 §3); between ours
        # and the gateway's, the earlier deadline wins.
        current = self.reauth_at is not None
        if current and not (by_gateway and self._reauth_by_gateway) \
                and self._reauth_deadline <= deadline:
            return
        self.reauth_at, self._reauth_deadline, self._reauth_by_gateway = at, deadline, by_gateway
        log.info("IKE_SA %s: reauthentication (%s) in %.0f s, deadline in %.0f s",
                 self._spi_text(), "AUTH_LIFETIME" if by_gateway else "reauth_time",
                 at - now, deadline - now)
