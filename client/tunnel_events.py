"""What the tunnel does with its IKE sessions' events: the rooms each event goes to.

    current session        ConfigReceived → HostConfig; ChildSaEstablished → data plane +
                           ChildRegistry + HostConfig; ChildSaDeleted → ChildRegistry;
                           AuthenticationFailed / ProposalMismatch → Failure (client.failure);
                           DeadPeerDetected / IkeSaDeleted → the attempt ends (a Failure)
    reauthenticating one   collected until its CHILD_SA is up, then the switch (RFC 4478)
    retiring one           only its end matters

It works on the Tunnel (client/engine.py) that owns it, through the Tunnel's attributes and
its fail / end_attempt / now; it never imports the engine (the arrow points here).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from client.children import ChildEntry
from client.failure import Failure, FailureKind, from_event
from client.sessions import CURRENT, REAUTHENTICATING, RETIRING
from client.sockets import NAT_T_PORT

log = logging.getLogger("cygnet")

NAT_KEEPALIVE_INTERVAL = 20.0  # strongSwan's charon.keep_alive default
CLOSED = Failure(FailureKind.STOPPED, "closed")


@dataclass(frozen=True)
class Redirect:
    """An attempt ended with a REDIRECT (RFC 5685): try `gateway` next."""

    gateway: str


class SessionEvents:
    def __init__(self, tunnel):
        self.tunnel = tunnel
        self.config = None  # the ConfigReceived applied last
        self._reauth_events: dict = {}  # the new IKE_SA's IkeSaEstablished / ConfigReceived
        self._replaces_stuck = False  # the reauthentication is a recovery (client/recovery.py)
        self._keepalive = None

    def close(self) -> None:
        self._stop_keepalive()

    def dispatch(self, event, session) -> None:
        if type(event).__name__ == "GatewayCertificateVerified":  # client/revocation.py
            return self._check_revocation(event, session)
        role = self.tunnel.sessions.role(session)
        if role == CURRENT:
            self._handle(event)
        elif role == REAUTHENTICATING:
            self._handle_reauth(event)
        elif role == RETIRING:
            self._handle_retiring(event)

    def _check_revocation(self, event, session) -> None:
        """The session waits (ike/revocation_gate.py) while CRLs/OCSP are asked off the loop."""
        from client import revocation

        t = self.tunnel

        def done(failure) -> None:
            session.revocation_checked(failure, t.now())
            t._pump()

        revocation.check_in_background(t.loop, event.chain, t.profile.revocation, t.now(), done,
                                       t.progress.say, getattr(event, "role", "gateway"))

    def _handle(self, event) -> None:
        from ike import events as ev

        t = self.tunnel
        log.debug("event %s", event)
        if isinstance(event, ev.ReauthenticationRequested):
            self._start_reauthentication(event)
        elif isinstance(event, ev.IkeSaEstablished):
            t.status.remote_id = event.peer_identity
            t.status.ike_spi_i, t.status.ike_spi_r = event.spi_i.hex(), event.spi_r.hex()
            t.status.ike_proposal = event.proposal
            t.status.nat = event.nat_detected
            if event.nat_detected:
                self._schedule_keepalive()
        elif isinstance(event, ev.ConfigReceived):
            self.config = event
            t.host.apply(event, t.status)
            t.observer.config_received(t, event)
        elif isinstance(event, ev.ChildSaEstablished):
            self._install_child(event)
        elif isinstance(event, ev.ChildSaDeleted):
            successor = t.children.deleted(event.child_id, event.spi_in)
            if successor is not None:  # rekeyed: send on the new SA from now on
                t.dataplane.activate_outbound(successor)
        elif isinstance(event, ev.IkeSaRekeyed):
            t.status.ike_spi_i, t.status.ike_spi_r = event.new_spi_i.hex(), event.new_spi_r.hex()
            t.status.ike_rekeys += 1
        elif isinstance(event, ev.ChildSaRekeyed):
            t.status.child_rekeys += 1
        elif isinstance(event, ev.OutboundCountersAdvanced):  # RFC 6311 (ike/msgid_sync.py)
            advance = getattr(t.dataplane, "advance_outbound", None)
            t.decided(f"the gateway asks to move our ESP sequence numbers on by {event.delta}"
                      + ("" if advance else ": not supported by this data plane"))
            if advance:
                advance(event.delta)
        elif isinstance(event, ev.ProposalMismatch) and not event.authenticated:
            # may be spoofed (RFC 7296 §2.21.1): this attempt ends, the next one may work
            self._tunnel_lost(from_event(event))
        elif isinstance(event, (ev.AuthenticationFailed, ev.ProposalMismatch)):
            t.fail(from_event(event, self._identities_used()))
        elif isinstance(event, ev.AddressesUpdated):  # MOBIKE (client/roaming.py)
            t.roaming.on_addresses_updated(event)
        elif isinstance(event, ev.Redirected):
            t.progress.say(f"redirected to {event.gateway}")
            t.end_attempt(Redirect(event.gateway))
        elif isinstance(event, ev.DeadPeerDetected):
            t.roaming.peer_dead = True  # run() moves to the next address or gateway at once
            self._tunnel_lost(Failure(FailureKind.GATEWAY_UNREACHABLE, event.reason))
        elif isinstance(event, ev.IkeSaDeleted):
            self._tunnel_lost(Failure(self._kind_of_end(), event.reason))

    def _identities_used(self) -> str:
        """The gateway only says "AUTHENTICATION_FAILED": name the identities we used, the
        usual culprits besides the credentials."""
        t = self.tunnel
        sent = f"we are {t.status.local_id or '?'}"
        if t.profile.remote_id:
            sent += f", asking for the gateway {t.profile.remote_id}"
        return sent

    def _kind_of_end(self) -> FailureKind:
        """An IKE_SA that ended without a more specific event: lost if it was up, unreachable
        if the gateway never answered this attempt, else a failed exchange."""
        if self.tunnel.came_up:
            return FailureKind.TUNNEL_LOST
        if self.tunnel.heard_from_gateway:
            return FailureKind.PROTOCOL_ERROR
        return FailureKind.GATEWAY_UNREACHABLE

    # --- make-before-break reauthentication (RFC 4478, RFC 7296 §2.8.3) ---

    def replace_ike_sa(self, why: str) -> None:
        """client/recovery.py: the current IKE_SA is stuck (a request the gateway lost), so a
        new one comes up next to it, asking for the addresses we hold."""
        self._start_reauthentication(None, why=why, keep_addresses=True)

    def _start_reauthentication(self, event, why: str = "", keep_addresses: bool = False) -> None:
        """A new IKE_SA and CHILD_SA from scratch next to the current ones, on the same
        sockets. Without INITIAL_CONTACT: it would make the gateway delete the current IKE_SA
        at once (RFC 7296 §2.4), which is the outage make-before-break avoids."""
        from dataclasses import replace

        from ike.session import IkeSession

        t = self.tunnel
        if t.sessions.reauthenticating is not None or t.stopping:
            return  # one at a time
        if not why:
            why = "the gateway asks for it (AUTH_LIFETIME)" if event.requested_by_gateway \
                else "reauth_time"
        t.decided(f"reauthenticating: {why}")
        self._reauth_events = {}
        self._replaces_stuck = keep_addresses  # the old IKE_SA's request is lost for good
        kept = tuple(t.host.addresses) if keep_addresses else ()
        session = IkeSession(replace(t.settings, initial_contact=False,
                                     requested_addresses=kept), t.now())
        t.sessions.begin_reauthentication(session)
        session.connect(t.now())

    def _handle_reauth(self, event) -> None:
        from ike import events as ev

        log.debug("event (reauthentication) %s", event)
        if isinstance(event, (ev.IkeSaEstablished, ev.ConfigReceived)):
            self._reauth_events[type(event)] = event
        elif isinstance(event, ev.ChildSaEstablished):
            self._switch_to_reauthenticated(event)
        elif isinstance(event, (ev.IkeSaDeleted, ev.AuthenticationFailed, ev.ProposalMismatch,
                                ev.Redirected, ev.DeadPeerDetected)):
            # The current IKE_SA goes on until the gateway deletes it; then we reconnect.
            self.tunnel.decided(f"reauthentication failed: {getattr(event, 'reason', event)}")
            self.tunnel.sessions.reauthentication_failed()

    def _switch_to_reauthenticated(self, child) -> None:
        """The new CHILD_SA is up on the gateway (it installs it before answering IKE_AUTH):
        install it, send on it from now on, then delete the old IKE_SA. The old CHILD_SAs keep
        decrypting for REKEYED_SA_GRACE, for what the gateway sent on them meanwhile."""
        from ike import events as ev

        t = self.tunnel
        old = t.sessions.switch()
        established = self._reauth_events.get(ev.IkeSaEstablished)
        config = self._reauth_events.get(ev.ConfigReceived)
        t.children.retire_all()  # the old CHILD_SAs are no longer the tunnel's
        if established is not None:
            self._handle(established)
        if config is not None and config != self.config:
            # A different lease or DNS: switch to it.
            t.host.lease_changes(config)
            self._handle(config)
        # Not a rekey (the registry is empty now): outbound switches at once. Both sessions
        # number their CHILD_SAs from 1, so the new one takes over the old one's child_id
        # (strongSwan keeps the reqid across a reauthentication too).
        self._install_child(child)
        t.status.reauths += 1
        t.recovery.restart()
        t.progress.say(f"reauthenticated (IKE_SA {t.status.ike_spi_i}_i)")
        old.close(abandon_unanswered=self._replaces_stuck)

    def _handle_retiring(self, event) -> None:
        """The old IKE_SA after a reauthentication: its CHILD_SAs are already on their way
        out of the data plane (ChildRegistry.retire_all); wait for the end of its DELETE."""
        from ike import events as ev

        log.debug("event (retiring IKE_SA) %s", event)
        if isinstance(event, ev.IkeSaDeleted):
            self.tunnel.sessions.retired()

    # --- CHILD_SAs and the tunnel's state ---

    def _install_child(self, child) -> None:
        t = self.tunnel
        t.dataplane.set_peer((t.gateway_address, NAT_T_PORT))
        # A rekey: the new SA decrypts at once, but we go on sending on the old one until it
        # is deleted. When the gateway rekeys, it installs the new SAs only once our response
        # arrives: packets we sent on the new SA before that were lost. The DELETE of the old
        # SA comes after that in both directions of a rekey.
        rekey = t.children.is_rekey(child.child_id)
        t.dataplane.install_child_sa(child, activate_outbound=not rekey)
        t.host.child_installed(child, t.gateway_address)
        if t.leaks is not None:  # client/killswitch.py: block the families it does not carry
            t.leaks.tunnel_up({n.version for n in child.local_ts})
            t.status.blocked = t.leaks.blocked
        entry = ChildEntry.from_event(child)
        t.children.add(entry)
        t.netconfig.release()  # set up: the netlink agent may go (a later change forks anew)
        if t.status.state != "up":
            self._now_up(entry)

    def _now_up(self, entry: ChildEntry) -> None:
        t = self.tunnel
        if t.first_up.done():
            t.status.reconnects += 1
        t.came_up = True
        t.status.state = "up"
        t.status.up_since = time.time()
        algorithms = entry.encryption + ("/" + entry.integrity if entry.integrity else "")
        t.progress.say(f"tunnel up ({t.tun.name}, ESP {algorithms})")
        t.recovery.up()
        t.observer.tunnel_up(t)
        if not t.first_up.done():
            t.first_up.set_result(True)

    def _tunnel_lost(self, failure: Failure, report: bool = True) -> None:
        t = self.tunnel
        if not t.attempt_running():
            return  # already reported (DeadPeerDetected comes before IkeSaDeleted)
        t.children.remove_all()
        pending = t.sessions.lost()
        if pending is not None:  # too late for make-before-break
            pending.close()
        t.status.state = "down"
        t.status.up_since = None
        self._stop_keepalive()
        if report:  # not for a deliberate reconnect (client/roaming.py): NM need not know
            t.observer.tunnel_lost(t, failure)
        if t.stopping:
            failure = CLOSED
        elif t.came_up:
            failure = Failure(failure.kind, f"tunnel lost: {failure.message}")
        t.end_attempt(failure)

    def _schedule_keepalive(self) -> None:
        t = self.tunnel

        def send() -> None:
            try:
                t.dataplane.send_keepalive((t.gateway_address, NAT_T_PORT))
            except OSError:
                pass
            self._keepalive = t.loop.call_later(NAT_KEEPALIVE_INTERVAL, send)

        if self._keepalive is None:
            self._keepalive = t.loop.call_later(NAT_KEEPALIVE_INTERVAL, send)

    def _stop_keepalive(self) -> None:
        if self._keepalive:
            self._keepalive.cancel()
            self._keepalive = None

