"""The connection engine: the thin asyncio adapter that drives sans-I/O IkeSessions over real
sockets and timers, and hands what they report to the rooms that act on it.

    UDP 500  ─┐                           ┌─ ConfigReceived    → HostConfig (addresses, DNS)
    UDP 4500 ─┼─ SessionSet (client/      ├─ ChildSaEstablished → data plane, ChildRegistry,
    timers  ──┘   sessions.py): IkeSession│                       HostConfig (routes)
                  per attempt, + reauth   └─ failures           → client.failure.Failure
                                                                  (observer, status, exit)

Here: opening and closing the sockets, TUN and data plane; the attempt loop (gateways,
back-off, redirects); receiving, sending (IKE routed by its session's socket), the pump and
the timer; the control socket's status. What each event does is client/tunnel_events.py.
Rooms it uses: client.sessions, client.children (the CHILD_SA registry), client.host_config,
client.session_settings, client.status (the status model), client.failure. It knows no
command line: `cygnet up/down/status` live in client/commands.py, which imports this, never back.
"""
from __future__ import annotations

from client.no_system_openssl import import_without_system_openssl

import_without_system_openssl("asyncio")  # first: its ssl would load the system's OpenSSL too
import asyncio
import ipaddress
import logging
import socket
import time
from typing import Optional, Union

from client import control
from client.children import REKEYED_SA_GRACE, ChildEntry, ChildRegistry  # noqa: F401 (re-export)
from client.failure import Failure, FailureKind, FatalError
from client.host_config import DEFAULT_MTU, HostConfig  # noqa: F401 (re-export)
from client.profile import Profile
from client.recovery import RecoveryDriver
from client.session_settings import session_settings
from client.sessions import SessionSet
from client.sockets import (NAT_T_PORT, LookupFailed, gateway_family, local_address_towards,
                            resolve_gateway, udp_socket)
from client.status import Progress, TunnelStatus, snapshot
from client.tunnel_events import CLOSED, NAT_KEEPALIVE_INTERVAL, Redirect, SessionEvents  # noqa: F401

log = logging.getLogger("cygnet")

BACKOFF_FIRST = 1.0  # seconds; doubled per failed attempt up to BACKOFF_MAX (as strongSwan's
BACKOFF_MAX = 120.0  # Android app does)


class TunnelObserver:
    """Hooks for whoever runs a Tunnel in-process (the NetworkManager plugin); the CLI uses
    none. Each is called on the event loop; the default does nothing."""

    def config_received(self, tunnel: "Tunnel", config) -> None:
        """ike.events.ConfigReceived, after addresses and DNS were applied."""

    def tunnel_up(self, tunnel: "Tunnel") -> None:
        """The first CHILD_SA of an IKE_SA is installed: traffic flows."""

    def tunnel_lost(self, tunnel: "Tunnel", failure: Failure) -> None:
        """The IKE_SA is gone; the tunnel will reconnect unless it is stopping."""

    def failed(self, tunnel: "Tunnel", failure: Failure) -> None:
        """A fatal error: the tunnel stops."""


class Tunnel:
    """One profile's tunnel: sockets, TUN, data plane, and a fresh IkeSession per attempt."""

    def __init__(self, profile: Profile, secret, progress: Progress,
                 observer: Optional[TunnelObserver] = None):
        self.profile = profile
        self.secret = secret
        self.progress = progress
        self.observer = observer or TunnelObserver()
        self.status = TunnelStatus(profile.name)
        self.loop = asyncio.get_running_loop()
        self.sessions = SessionSet()
        self.gateway_address = ""
        self._timer: Optional[asyncio.TimerHandle] = None
        # The session's clock: monotonic (the loop's) shifted to wall-clock seconds, because
        # the same `now` checks certificate validity. Re-sampled per attempt.
        self._clock_offset = time.time() - self.loop.time()
        self._attempt_done: Optional[asyncio.Future] = None
        self._stopping = False
        self.first_up: asyncio.Future = self.loop.create_future()
        self._stopped = asyncio.Event()
        self._sock500 = self._sock4500 = None
        self._family = socket.AF_INET
        self.tun = self.dataplane = self.netconfig = self.host = None
        self.children: Optional[ChildRegistry] = None
        # For in-process users (the NetworkManager plugin): NM applies DNS itself, and may
        # tune ike.settings.Settings fields (e.g. retransmission) set on every attempt.
        self.manage_dns = True
        self.session_overrides: dict = {}
        self.esp_limits = None  # client.esp.SaLimits for the data plane (test hooks)
        self.failure: Optional[Failure] = None  # why the tunnel stopped for good, if not on request
        self.came_up = False  # during the current attempt
        self.heard_from_gateway = False  # during the current attempt
        self._nat_t_sessions: set = set()  # sessions whose IKE uses the NAT-T socket
        self.settings = None  # ike.settings.Settings of the current attempt
        self.events = SessionEvents(self)
        self.recovery = RecoveryDriver(self, pump=self._pump)  # HA failovers (issue 16)
        self.leaks = None  # client.killswitch.LeakGuard: kill switch, blocked families

    @property
    def session(self):
        """The IkeSession that carries the tunnel now (None before the first attempt)."""
        return self.sessions.current

    @property
    def fatal_error(self) -> str:
        return self.failure.message if self.failure else ""

    @property
    def stopping(self) -> bool:
        return self._stopping

    def attempt_running(self) -> bool:
        return self._attempt_done is not None and not self._attempt_done.done()

    # --- set-up and tear-down ---

    def open(self) -> None:
        from client.dns import restore_file
        from client.netconfig import NetworkConfig

        run = control.ensure_run_dir()
        self.netconfig = NetworkConfig(run / f"{self.profile.name}.routes.json")
        # dataplane = auto: the kernel's ESP if it can install an SA (probed once), else ours.
        kernel_unavailable = None
        if self.profile.dataplane in ("kernel", "auto"):
            kernel_unavailable = self.netconfig.probe_kernel_esp()
            if kernel_unavailable and self.profile.dataplane == "kernel":
                raise FatalError(f"dataplane = kernel: {kernel_unavailable}")
        # A previous run that was killed left its routes journal and resolv.conf backup.
        cleaned = self.netconfig.clean_stale()
        cleaned |= restore_file(run / f"{self.profile.name}.resolv.conf.orig")
        if cleaned:
            self.progress.say("cleaned up what a previous run of this tunnel left behind")
        # One address family for IKE and ESP: the first gateway's (the data plane has one socket).
        self._family = gateway_family(self.profile.gateway, self.profile.port)
        self._sock500 = udp_socket(500, self._family)
        self._sock4500 = udp_socket(NAT_T_PORT, self._family)
        kernel_unavailable = self._open_dataplane(kernel_unavailable)
        self.status.interface = self.tun.name
        from client.killswitch import LeakGuard  # before anything is sent: the kill switch

        self.leaks = LeakGuard(self.profile, self.tun.name, self.progress.say)
        try:
            if self.leaks.open(self.profile.gateways):
                self.progress.say("cleared the firewall table a previous run left")
        except OSError as error:
            raise FatalError(f"kill switch: {error}") from None
        self.status.kill_switch = self.leaks.guard is not None
        self.status.dataplane = self.dataplane.kind
        if self.profile.dataplane == "auto":
            self.progress.say(f"data plane: {self.status.dataplane}"
                              + (f" ({kernel_unavailable})" if kernel_unavailable else " (kernel IPsec)"))
        self.children = ChildRegistry(self.loop, self.dataplane.remove_child_sa)
        self.host = HostConfig(self.profile, self.tun, self.netconfig, self.progress, run,
                               manage_dns=self.manage_dns)
        # The interface's MTU and "up" wait for the first CHILD_SA: meanwhile the netlink agent
        # (client/netlink_agent.py) imports pyroute2 on another core while we contact the gateway.
        self.dataplane.start(self.loop)
        self.loop.add_reader(self._sock500.fileno(), self._on_sock500_readable)
        from client.roaming import Roaming

        self.roaming = Roaming(self)  # network changes, sleep (issue 15): from the first pin on
        self.host.pin_gateway = self.roaming.pin

    def _open_dataplane(self, kernel_unavailable: Optional[str]) -> Optional[str]:
        """The kernel's data plane if wanted and available, else the userspace one over TUN.
        Returns why the kernel's is not used (None if it is)."""
        from client.dataplane import UserspaceDataPlane
        from client.tun import TunDevice

        if self.profile.dataplane != "userspace" and kernel_unavailable is None:
            from client import kernel_dataplane

            try:
                self.tun, self.dataplane, stale = kernel_dataplane.open_kernel(
                    self.profile.name, self._sock4500, self._sock500, on_ike_packet=self._on_ike_4500,
                    on_event=self._on_dataplane_event, limits=self.esp_limits)
                if stale:
                    self.progress.say(f"removed {stale} IPsec SAs/policies a previous run left in the kernel")
                return None
            except OSError as error:
                if self.profile.dataplane == "kernel":
                    raise FatalError(f"dataplane = kernel: {error}") from None
                kernel_unavailable = str(error)
        try:
            self.tun = TunDevice.create("cygnet%d")
        except PermissionError:
            raise FatalError("cannot create a TUN device: run cygnet as root (or give it CAP_NET_ADMIN)") from None
        except FileNotFoundError:
            raise FatalError("cannot create a TUN device: /dev/net/tun is missing (modprobe tun)") from None
        self.dataplane = UserspaceDataPlane(self.tun, self._sock4500, on_ike_packet=self._on_ike_4500,
                                            on_event=self._on_dataplane_event, limits=self.esp_limits)
        return kernel_unavailable

    def close(self) -> None:
        if getattr(self, "roaming", None) is not None:
            self.roaming.close()
        if self.children is not None:
            self.children.close()
        if self._timer:
            self._timer.cancel()
        self.events.close()
        self.recovery.close()
        if self.host is not None:
            self.host.restore_dns()
        if self.dataplane is not None:
            self.dataplane.close()
        if self._sock500 is not None:
            self.loop.remove_reader(self._sock500.fileno())
            self._sock500.close()
        if self._sock4500 is not None:
            self._sock4500.close()
        if self.netconfig is not None:
            self.netconfig.revert()
            self.netconfig.close()
        if self.tun is not None:
            self.tun.close()
        if self.leaks is not None:  # last: traffic stays blocked during the teardown
            # lifted only when the user stopped the tunnel: not after a failure or a crash
            self.leaks.close(failed=bool(self.fatal_error) or not self._stopping)

    # --- the connection loop ---

    async def run(self) -> None:
        """Connect, stay connected, until stop() or a fatal error.

        Before the tunnel has ever come up, one failed attempt per gateway ends the run (the
        user is waiting for `cygnet up`: say why at once). Once it has been up, a lost tunnel
        is re-established for as long as it takes: at the same gateway after BACKOFF_FIRST
        seconds, then at the next one in the list after each failed attempt, the wait doubling
        up to BACKOFF_MAX, and starting again from BACKOFF_FIRST after every attempt that came up.
        """
        backoff = BACKOFF_FIRST
        gateways = list(self.profile.gateways)
        index = 0
        failures_before_up = 0
        ever_up = False
        while not self._stopping:
            self.came_up = False
            result = await self._attempt_at(gateways[index % len(gateways)])
            if self._stopping:
                break
            if isinstance(result, Redirect):
                gateways.insert(index + 1, result.gateway)
                index += 1
                continue
            host = gateways[index % len(gateways)]
            if not self.came_up and self.roaming.next_address(host):
                self.progress.say(f"{result}; trying the next address of {host}")
                continue
            if not self.came_up:
                index += 1  # a lost tunnel is retried at the same gateway first
            elif self.roaming.take_peer_dead() and not self.roaming.next_address(host):
                index += 1  # ... unless it stopped answering: its next address, or the next gateway
            self.status.last_error, self.status.last_error_kind = result.message, result.kind.value
            if self.came_up:
                ever_up = True
                backoff = BACKOFF_FIRST
            elif not ever_up:
                failures_before_up += 1
                if failures_before_up >= len(gateways):
                    self.fail(Failure(result.kind, f"could not connect to {self.status.gateway}: {result}"))
                    break
            self.status.state = "reconnecting"
            if self.came_up and self.roaming.retry_at_once():  # network change, resume
                self.decided(f"{result}; reconnecting now")
                continue
            self.decided(f"{result}; reconnecting in {backoff:.0f} s")
            try:
                await asyncio.wait_for(self._stopped.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, BACKOFF_MAX)  # for the next failure of this series

    async def _attempt_at(self, host: str) -> Union[Failure, Redirect]:
        try:
            return await self._attempt(host)
        except FatalError as error:  # e.g. a key that cannot be loaded: no retry helps
            self.fail(error.failure)
            return error.failure
        except LookupFailed as error:
            return Failure(FailureKind.LOOKUP_FAILED, str(error))
        except (ConnectionError, OSError) as error:
            return Failure(FailureKind.GATEWAY_UNREACHABLE, str(error))

    async def _attempt(self, host: str) -> Union[Failure, Redirect]:
        from ike.session import IkeSession

        try:  # an address needs no lookup, nor the executor's thread (start-up time matters)
            remote = str(ipaddress.ip_address(host))
        except ValueError:
            remote = self.leaks.resolved.get(host) if self.leaks else None  # (kill switch)
            remote = remote or await self.loop.run_in_executor(  # each of its addresses in turn
                None, self.roaming.resolve, host, self.profile.port, self._family)
        if (":" in remote) != (self._family == socket.AF_INET6):
            return Failure(FailureKind.LOCAL_CONFIGURATION,
                           f"gateway {host} is at {remote}, but this tunnel talks "
                           f"IPv{6 if self._family == socket.AF_INET6 else 4} "
                           f"(the family of its first gateway)")
        if self.leaks is not None:
            self.leaks.allow_gateway(remote)
        if self.roaming.pinned is not None and remote != self.roaming.pinned:
            self.roaming.pin(remote)  # a full tunnel would swallow our IKE to a new gateway
        local = local_address_towards(remote, self.profile.port)
        self.gateway_address = remote
        self.status.gateway = host if host == remote else f"{host} ({remote})"
        self.progress.say(f"contacting {self.status.gateway}…")
        settings = session_settings(self.profile, self.secret, remote, local, self._sock500.getsockname()[1])
        settings.gateway_name = host  # with no remote_id, the gateway must prove this name
        for name, value in self.session_overrides.items():
            setattr(settings, name, value)
        who = settings.auth.eap_identity if settings.auth.method == "eap" else settings.local_id
        self.progress.say(f"authenticating as {who}")
        self.status.local_id = who
        self._clock_offset = time.time() - self.loop.time()
        self.settings = settings
        self.heard_from_gateway = False
        self._nat_t_sessions.clear()
        self.sessions.start(IkeSession(settings, self.now()))
        self._attempt_done = self.loop.create_future()
        self.session.connect(self.now())
        self._pump()
        return await self._attempt_done

    def now(self) -> float:
        """The sessions' clock."""
        return self.loop.time() + self._clock_offset

    def stop(self) -> None:
        """Delete the IKE_SA politely, then let run() return."""
        if self._stopping:
            return
        self._stopping = True
        self._stopped.set()
        if self.netconfig is not None:
            self.netconfig.get_ready()  # the teardown's netlink agent starts during the DELETE
        if self.session is not None and self._attempt_done is not None and not self._attempt_done.done():
            self.session.close()
            if self.sessions.reauthenticating is not None:
                self.sessions.reauthenticating.close()
            self._pump()
            # Give the DELETE a moment to be answered; the session ends the attempt itself.
            self.loop.call_later(3.0, self.end_attempt, CLOSED)
        elif self._attempt_done is not None and not self._attempt_done.done():
            self.end_attempt(CLOSED)

    def end_attempt(self, result: Union[Failure, Redirect]) -> None:
        if self._attempt_done is not None and not self._attempt_done.done():
            self._attempt_done.set_result(result)

    # --- I/O: sockets, timers, the pump ---

    def _on_sock500_readable(self) -> None:
        for _ in range(16):
            try:
                data, addr = self._sock500.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # ICMP errors reported on the socket
            self._deliver(data, addr)
        self._pump()

    def _on_ike_4500(self, message: bytes, addr) -> None:
        if self.session is not None:
            self._deliver(message, addr)
            self._pump()

    def _deliver(self, data: bytes, addr) -> None:
        session = self.sessions.for_datagram(data)
        if session is None:
            return
        if session is self.session:
            self.heard_from_gateway = True
        session.receive_datagram(data, addr, self.now())

    def _send(self, session, data: bytes, addr) -> None:
        """IKE leaves by its session's socket: the IKE socket while the session talks to the
        gateway's configured endpoint; the NAT-T socket, shared with the data plane (non-ESP
        marker, RFC 3948 §2.2), from when the session floated there (RFC 7296 §2.23: it sends
        to another endpoint than the configured one: port 4500, a NAT's port, a MOBIKE
        address) on, or from the start when the configured port is the NAT-T port itself."""
        configured = (session.settings.remote_address, session.settings.remote_port)
        if session not in self._nat_t_sessions and (
                tuple(addr[:2]) != configured or session.settings.remote_port == NAT_T_PORT):
            self._nat_t_sessions.add(session)
        if session in self._nat_t_sessions:
            self.dataplane.set_peer(addr)
            self.dataplane.send_ike(data, addr)
        else:
            self._sock500.sendto(data, addr)

    def _on_dataplane_event(self, event) -> None:
        """SaLimitReached: a soft limit of a current SA (not a retired one in its grace
        period) asks for a rekey."""
        if getattr(event, "severity", "") == "soft" and self.session is not None \
                and self.children.is_current(event.spi_in):
            self.decided(f"rekeying CHILD_SA {event.child_id}: {event.direction}bound SA "
                         f"{event.spi_in.hex()}_i reached its {event.what} limit"
                         if event.what != "sequence-reset" else
                         f"rekeying CHILD_SA {event.child_id}: the gateway restarted its ESP "
                         f"sequence numbers on {event.spi_in.hex()}_i (a cluster takeover?)")
            self.session.rekey_child(event.child_id)
            self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        for session in self.sessions.all():
            session.handle_timer(self.now())  # early is harmless: each checks its deadlines
        self._pump()

    def _pump(self) -> None:
        """Send what the sessions want sent, handle their events, re-arm the timer."""
        if self.session is None:
            return
        now = self.now()
        pumped: list = []
        # a session started while handling events (a reauthentication) is pumped too
        while (session := next((s for s in self.sessions.all() if s not in pumped), None)) is not None:
            pumped.append(session)
            for data, addr in session.datagrams_to_send(now):
                try:
                    self._send(session, data, addr)
                except OSError as error:
                    log.info("sending to %s failed: %s", addr, error)
            while (event := session.next_event()) is not None:
                try:
                    self.events.dispatch(event, session)
                except FatalError as error:
                    self.fail(error.failure)
                except OSError as error:
                    self.fail(Failure(FailureKind.LOCAL_CONFIGURATION,
                                       f"applying {type(event).__name__} failed: {error}"))
        self._nat_t_sessions.intersection_update(self.sessions.all())  # forget ended ones
        if self._timer:
            self._timer.cancel()
            self._timer = None
        deadlines = [d for d in (s.get_timer() for s in self.sessions.all()) if d is not None]
        if deadlines:
            self._timer = self.loop.call_at(max(min(deadlines), now) - self._clock_offset,
                                            self._on_timer)

    def decided(self, text: str) -> None:
        """A recovery decision: the user sees it, the log keeps it (issue 16)."""
        log.info("%s", text)
        self.progress.say(text)

    def fail(self, failure: Failure) -> None:
        self.observer.failed(self, failure)
        self.failure = failure
        self.status.last_error_kind = failure.kind.value
        if not self.first_up.done():
            self.first_up.set_result(False)
        self._stopping = True
        self._stopped.set()
        self.end_attempt(failure)

    # --- the status model and the control socket ---

    def snapshot(self) -> dict:
        """The status model (client/status.py) as `cygnet status --json` shows it."""
        counters = self.dataplane.counters() if self.dataplane else {}
        children = self.children.entries() if self.children else []
        deadlines = (None, None)
        if self.session is not None and self.status.state == "up":
            deadlines = self.session.ike_sa_deadlines()
        return snapshot(self.status, children, counters, deadlines, self.now())

    async def handle_control(self, request: dict) -> dict:
        command = request.get("command")
        if command == "status":
            return {"ok": True, "status": self.snapshot()}
        if command == "down":
            self.stop()
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {command!r}"}
