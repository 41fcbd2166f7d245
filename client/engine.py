"""The connection engine: drives the sans-I/O IkeSession over real sockets and applies what it
reports to the system (TUN device, addresses, routes, DNS, the ESP data plane).

The engine is the only place where time, sockets and the kernel meet the protocol:

    UDP 500  ─┐                          ┌─ ConfigReceived    → addresses on the TUN, DNS
    UDP 4500 ─┼─ IkeSession (ike/) ──────┼─ ChildSaEstablished → data plane + routes
    timers  ──┘   datagrams_to_send()    └─ IkeSaDeleted…      → reconnect with back-off

Reconnecting keeps the TUN device, its addresses and routes: while the tunnel is down,
packets for the tunnel are dropped by the data plane (no SA covers them) instead of leaking
out of the physical interface.
"""
from __future__ import annotations

from client.no_system_openssl import import_without_system_openssl

import_without_system_openssl("asyncio")  # first: its ssl would load the system's OpenSSL too
import asyncio
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from client import control
from client.profile import Profile

log = logging.getLogger("cygnet")

BACKOFF_FIRST = 1.0  # seconds; doubled per failed attempt up to BACKOFF_MAX (as strongSwan's
BACKOFF_MAX = 120.0  # Android app does)
NAT_KEEPALIVE_INTERVAL = 20.0  # strongSwan's charon.keep_alive default
# A rekeyed CHILD_SA still decrypts for this long after its DELETE, for packets the gateway
# sent on it just before switching (strongSwan's charon.delete_rekeyed_delay).
REKEYED_SA_GRACE = 5.0
DEFAULT_MTU = 1400  # libipsec's and the Android app's default: room for ESP-in-UDP headers
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's ca-certificates
TEST_HOOKS_VARIABLE = "CYGNET_TEST_HOOKS"


class FatalError(Exception):
    """A problem retrying cannot fix (wrong credentials, no common proposal, bad setup)."""


class TunnelObserver:
    """Hooks for whoever runs a Tunnel in-process (the NetworkManager plugin); the CLI uses
    none. Each is called on the event loop; the default does nothing."""

    def config_received(self, tunnel: "Tunnel", config) -> None:
        """ike.events.ConfigReceived, after addresses and DNS were applied."""

    def tunnel_up(self, tunnel: "Tunnel") -> None:
        """The first CHILD_SA of an IKE_SA is installed: traffic flows."""

    def tunnel_lost(self, tunnel: "Tunnel", reason: str) -> None:
        """The IKE_SA is gone; the tunnel will reconnect unless it is stopping."""

    def failed(self, tunnel: "Tunnel", message: str) -> None:
        """A fatal error: the tunnel stops."""


# ------------------------------------------------------------------------------ what the user sees


class Progress:
    """Progress lines for the user ("contacting …", "tunnel up"); also written to a pipe
    when `cygnet up --daemon` waits in the foreground for the tunnel, and to its log file
    (with the time) once it has detached."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.timestamps = False

    def say(self, text: str) -> None:
        if self.timestamps:
            text = time.strftime("%Y-%m-%d %H:%M:%S ") + text
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):
            pass  # the terminal or the --daemon parent is gone: keep running


def daemon_log_path(name: str) -> Path:
    """Where a detached `cygnet up --daemon` writes its progress lines and warnings."""
    return control.run_dir() / f"{name}.log"


@dataclass
class TunnelStatus:
    """What `cygnet status` shows; no secrets."""

    name: str
    state: str = "connecting"
    gateway: str = ""
    local_id: str = ""
    remote_id: str = ""
    interface: str = ""
    dataplane: str = ""  # "kernel" (XFRM) or "userspace" (TUN + Python ESP)
    virtual_ips: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    ike_proposal: str = ""
    ike_spi_i: str = ""
    ike_spi_r: str = ""
    nat: bool = False
    children: dict = field(default_factory=dict)  # spi_in hex -> details
    up_since: Optional[float] = None
    reconnects: int = 0  # how often the tunnel came back up after it was lost
    ike_rekeys: int = 0
    child_rekeys: int = 0
    reauths: int = 0  # make-before-break reauthentications (RFC 4478 / swanctl reauth_time)
    last_error: str = ""
    kill_switch: bool = False  # client/killswitch.py
    blocked: list[str] = field(default_factory=list)  # families dropped outside the tunnel
    dns_mode: str = ""  # client/dns.py: how DNS follows the tunnel


# ------------------------------------------------------------------------------ settings


def _local_address_towards(remote: str, port: int) -> str:
    """Our source address for `remote` (for NAT detection, RFC 7296 §2.23)."""
    family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((remote, port))
        return probe.getsockname()[0]


def resolve_gateway(host: str, port: int) -> str:
    """The first address of a gateway name (addresses pass through)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise ConnectionError(f"cannot resolve gateway {host}: {error.strerror}") from None
    return infos[0][4][0]


def session_settings(profile: Profile, secret, remote: str, local: str, local_port: int):
    """ike.settings.Settings for one attempt at one gateway address."""
    from client.credentials import CredentialError, is_pkcs12, load_credential
    from ike import certificates
    from ike.settings import AuthSettings, Settings

    auth = AuthSettings()
    rounds = profile.auth_rounds
    if profile.ca is not None:
        auth.trust_anchors = tuple(certificates.load_trust_anchors(profile.ca))
    certificate = private_key = None
    intermediates: list = []
    if profile.cert is not None or is_pkcs12(profile.key):
        try:  # encrypted PEM and PKCS#12 keys too (client/credentials.py)
            # certificate-only methods have no other secret: NetworkManager passes the key's
            # passphrase as it (its `password` secret for method=key/cert)
            passphrase = secret if profile.auth in ("pubkey", "eap-tls") else None
            certificate, private_key, intermediates = load_credential(profile, passphrase)
        except CredentialError as error:
            raise FatalError(str(error)) from None
    if rounds[0] == "psk":
        auth.method = "psk"
        auth.psk = secret.reveal()
    elif rounds[0] == "pubkey":
        auth.method = "pubkey"
        auth.private_key, auth.certificate = private_key, certificate
        auth.intermediates = tuple(intermediates)
        auth.eap_after_certificate = len(rounds) > 1  # RFC 4739: certificate, then EAP
    else:
        auth.method = "eap"
    if not auth.trust_anchors and auth.method != "psk":
        # No `ca`: trust the system's CA bundle, as strongSwan's Android app does by default.
        if not os.path.exists(SYSTEM_CA_BUNDLE):
            raise FatalError(f"profile '{profile.name}': no 'ca' given and no system CA bundle at "
                             f"{SYSTEM_CA_BUNDLE}: set 'ca' to the CA that issued the gateway's certificate")
        auth.trust_anchors = tuple(certificates.load_certificates(SYSTEM_CA_BUNDLE))
    if profile.eap_method:
        # Loaded now, not when the gateway's first EAP request arrives mid-handshake (as charon
        # loads its EAP plugins at start-up).
        import ike.eap  # noqa: F401

        auth.eap_method = profile.eap_allowed
        auth.eap_identity = profile.eap_identity or profile.local_id
        if secret is not None:
            auth.eap_password = secret.reveal().decode("utf-8")
        if {"peap", "ttls"} & set(profile.eap_allowed):
            from ike.eap_tunnel import TunnelConfig

            auth.eap_tunnel = TunnelConfig(
                trust_anchors=auth.trust_anchors, ttls_inner=profile.ttls_inner,
                inner_methods=tuple(m for m in profile.eap_methods if m in ("mschapv2", "gtc", "md5")),
                server_identity=profile.eap_server_id or profile.remote_id or profile.gateway)
        if "tls" in profile.eap_allowed:
            from ike.eap import TlsClientConfig

            auth.eap_tls = TlsClientConfig(
                certificate=certificate, private_key=private_key, trust_anchors=auth.trust_anchors,
                server_identity=profile.eap_server_id or profile.remote_id or profile.gateway,
                intermediates=tuple(intermediates))
    kwargs = {}
    if profile.ike:
        kwargs["ike_proposals"] = profile.ike
    if profile.esp:
        kwargs["esp_proposals"] = profile.esp
    # IDi defaults as in strongSwan's Android app and NM plugin: the EAP user name for EAP,
    # the certificate's subject for certificates, else our address.
    if profile.local_id:
        local_id = profile.local_id
    elif auth.method == "eap" and auth.eap_identity:
        local_id = auth.eap_identity
    elif certificate is not None:
        # The subject in encoding order, as strongSwan writes it ("C=CH, O=…, CN=…"):
        # rfc4514_string() reverses the RDNs, and that DN is not the certificate's.
        local_id = ", ".join(rdn.rfc4514_string() for rdn in certificate.subject.rdns)
    else:
        local_id = local
    return Settings(
        remote_address=remote, remote_port=profile.port, local_address=local, local_port=local_port,
        local_id=local_id, remote_id=profile.remote_id, auth=auth,
        remote_ts=tuple(profile.remote_ts),
        request_ip4="ipv4" in profile.virtual_ip, request_ip6="ipv6" in profile.virtual_ip,
        request_dns4=profile.dns and "ipv4" in profile.virtual_ip,
        request_dns6=profile.dns and "ipv6" in profile.virtual_ip,
        request_domains=profile.dns,
        force_encapsulation=profile.encap, dpd_delay=float(profile.dpd),
        reauth_time=float(profile.reauth), **kwargs)


def test_hooks(environ=os.environ) -> tuple[dict, object]:
    """Test-only knobs, not settings: JSON in $CYGNET_TEST_HOOKS -> (session overrides,
    ESP volume limits or None).

    The interop tests use them to make what takes strongSwan's defaults minutes or hours
    happen in seconds: giving up on a dead gateway (retransmissions end after 165 s), and
    rekeying that we initiate (lifetimes, or the data plane's byte/packet limits). Keys:
    retransmit_tries / retransmit_timeout / retransmit_base, ike_rekey_time, ike_rand_time,
    child_rekey_time, child_rand_time, child_life_time (seconds), esp_soft_bytes,
    esp_hard_bytes, esp_soft_packets, esp_hard_packets. Unknown keys are refused, so a typo
    cannot silently test the defaults.
    """
    text = environ.get(TEST_HOOKS_VARIABLE)
    if not text:
        return {}, None
    from client.esp import SaLimits
    from ike.retransmission import RetransmissionPolicy

    try:
        hooks = json.loads(text)
        if not isinstance(hooks, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise FatalError(f"{TEST_HOOKS_VARIABLE}: {error}") from None
    lifetimes = ("ike_rekey_time", "ike_rand_time", "child_rekey_time", "child_rand_time",
                 "child_life_time")
    retransmit = {"retransmit_tries": "tries", "retransmit_timeout": "timeout",
                  "retransmit_base": "base"}
    limits = {"esp_soft_bytes": "soft_bytes", "esp_hard_bytes": "hard_bytes",
              "esp_soft_packets": "soft_packets", "esp_hard_packets": "hard_packets"}
    unknown = set(hooks) - set(lifetimes) - set(retransmit) - set(limits)
    if unknown:
        raise FatalError(f"{TEST_HOOKS_VARIABLE}: unknown keys {', '.join(sorted(unknown))}")
    overrides = {name: float(hooks[name]) for name in lifetimes if name in hooks}
    policy = {field: hooks[key] for key, field in retransmit.items() if key in hooks}
    if policy:
        overrides["retransmission"] = RetransmissionPolicy(**policy)
    sa_limits = {field: int(hooks[key]) for key, field in limits.items() if key in hooks}
    return overrides, (SaLimits(**sa_limits) if sa_limits else None)


# ------------------------------------------------------------------------------ the tunnel


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
        self.session = None
        self.gateway_address = ""
        self._timer: Optional[asyncio.TimerHandle] = None
        # The session's clock: monotonic (the loop's) shifted to wall-clock seconds, because
        # the same `now` checks certificate validity. Re-sampled per attempt.
        self._clock_offset = time.time() - self.loop.time()
        self._keepalive: Optional[asyncio.TimerHandle] = None
        self._attempt_done: Optional[asyncio.Future] = None
        self._stopping = False
        self._first_up: asyncio.Future = self.loop.create_future()
        self._stopped = asyncio.Event()
        self._addresses: list = []
        self._routed: set = set()
        self._gateway_pinned = False
        self._link_configured = False  # MTU and up: done with the first CHILD_SA (see open())
        self._dns = None
        self._sock500 = self._sock4500 = None
        self._family = socket.AF_INET
        self.tun = self.dataplane = self.netconfig = None
        # For in-process users (the NetworkManager plugin): NM applies DNS itself, and may
        # tune ike.settings.Settings fields (e.g. retransmission) set on every attempt.
        self.manage_dns = True
        self.session_overrides: dict = {}
        self.esp_limits = None  # client.esp.SaLimits for the data plane (test hooks)
        self.fatal_error = ""  # why the tunnel stopped for good, if it did not stop on request
        self._came_up = False  # during the current attempt
        self._grace_timers: list = []  # removals of rekeyed CHILD_SAs, see REKEYED_SA_GRACE
        # Make-before-break reauthentication (RFC 7296 §2.8.3): a second IkeSession on the same
        # sockets comes up next to `session`; once its CHILD_SA is installed it becomes
        # `session`, and the old one retires (DELETE of its IKE_SA) in `_retiring`.
        self._settings = None  # ike.settings.Settings of the current attempt
        self._reauth_session = None
        self._reauth_events: dict = {}  # its IkeSaEstablished / ConfigReceived until the switch
        self._retiring = None
        self._config = None  # the ConfigReceived applied last
        self.leaks = None  # client.killswitch.LeakGuard: kill switch, blocked families

    # --- set-up and tear-down ---

    def open(self) -> None:
        from client.dataplane import UserspaceDataPlane
        from client.dns import restore_file
        from client.netconfig import NetworkConfig
        from client.tun import TunDevice

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
        self._family = _gateway_family(self.profile.gateway, self.profile.port)
        self._sock500 = _udp_socket(500, self._family)
        self._sock4500 = _udp_socket(4500, self._family)
        if self.profile.dataplane != "userspace" and kernel_unavailable is None:
            from client import kernel_dataplane

            try:
                self.tun, self.dataplane, stale = kernel_dataplane.open_kernel(
                    self.profile.name, self._sock4500, self._sock500, on_ike_packet=self._on_ike_4500,
                    on_event=self._on_dataplane_event, limits=self.esp_limits)
                if stale:
                    self.progress.say(f"removed {stale} IPsec SAs/policies a previous run left in the kernel")
            except OSError as error:
                if self.profile.dataplane == "kernel":
                    raise FatalError(f"dataplane = kernel: {error}") from None
                kernel_unavailable = str(error)
        if self.dataplane is None:
            try:
                self.tun = TunDevice.create("cygnet%d")
            except PermissionError:
                raise FatalError("cannot create a TUN device: run cygnet as root (or give it CAP_NET_ADMIN)") from None
            except FileNotFoundError:
                raise FatalError("cannot create a TUN device: /dev/net/tun is missing (modprobe tun)") from None
            self.dataplane = UserspaceDataPlane(self.tun, self._sock4500, on_ike_packet=self._on_ike_4500,
                                                on_event=self._on_dataplane_event, limits=self.esp_limits)
        self.status.interface = self.tun.name
        from client.killswitch import LeakGuard  # before anything is sent: the kill switch

        self.leaks = LeakGuard(self.profile, self.tun.name, self.progress.say)
        try:
            if self.leaks.open(self.profile.gateways):
                self.progress.say("cleared the firewall table a previous run left")
        except OSError as error:
            raise FatalError(f"kill switch: {error}") from None
        self.status.kill_switch = self.leaks.guard is not None
        self.status.dataplane = "userspace" if isinstance(self.dataplane, UserspaceDataPlane) else "kernel"
        if self.profile.dataplane == "auto":
            self.progress.say(f"data plane: {self.status.dataplane}"
                              + (f" ({kernel_unavailable})" if kernel_unavailable else " (kernel IPsec)"))
        # The interface's MTU and "up" wait for the first CHILD_SA: meanwhile the netlink agent
        # (client/netlink_agent.py) imports pyroute2 on another core while we contact the gateway.
        self.dataplane.start(self.loop)
        self.loop.add_reader(self._sock500.fileno(), self._on_sock500_readable)

    def close(self) -> None:
        for handle in self._grace_timers:
            handle.cancel()
        if self._timer:
            self._timer.cancel()
        if self._keepalive:
            self._keepalive.cancel()
        if self._dns is not None:
            self._dns.restore()
            self._dns = None
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
            host = gateways[index % len(gateways)]
            self._came_up = False
            try:
                reason = await self._attempt(host)
            except (ConnectionError, OSError) as error:
                reason = str(error)
            if self._stopping:
                break
            if isinstance(reason, Redirect):
                gateways.insert(index + 1, reason.gateway)
                index += 1
                continue
            if not self._came_up:
                index += 1  # a lost tunnel is retried at the same gateway first
            self.status.last_error = reason
            if self._came_up:
                ever_up = True
                backoff = BACKOFF_FIRST
            elif not ever_up:
                failures_before_up += 1
                if failures_before_up >= len(gateways):
                    self._fail(f"could not connect to {self.status.gateway}: {reason}")
                    break
            self.status.state = "reconnecting"
            self.progress.say(f"{reason}; reconnecting in {backoff:.0f} s")
            try:
                await asyncio.wait_for(self._stopped.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, BACKOFF_MAX)  # for the next failure of this series

    async def _attempt(self, host: str):
        from ike.session import IkeSession

        try:  # an address needs no lookup, nor the executor's thread (start-up time matters)
            remote = str(ipaddress.ip_address(host))
        except ValueError:
            remote = self.leaks.resolved.get(host) if self.leaks else None  # (kill switch)
            remote = remote or await self.loop.run_in_executor(None, resolve_gateway, host, self.profile.port)
        if (":" in remote) != (self._family == socket.AF_INET6):
            raise ConnectionError(f"gateway {host} is at {remote}, but this tunnel talks "
                                  f"IPv{6 if self._family == socket.AF_INET6 else 4} "
                                  f"(the family of its first gateway)")
        if self.leaks is not None:
            self.leaks.allow_gateway(remote)
        local = _local_address_towards(remote, self.profile.port)
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
        self._settings = settings
        self._reauth_session = self._retiring = None
        self.session = IkeSession(settings, self._now())
        self._attempt_done = self.loop.create_future()
        self.session.connect(self._now())
        self._pump()
        return await self._attempt_done

    def _now(self) -> float:
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
            if self._reauth_session is not None:
                self._reauth_session.close()
            self._pump()
            # Give the DELETE a moment to be answered; the session ends the attempt itself.
            self.loop.call_later(3.0, self._end_attempt, "closed")
        elif self._attempt_done is not None and not self._attempt_done.done():
            self._end_attempt("closed")

    def _end_attempt(self, reason) -> None:
        if self._attempt_done is not None and not self._attempt_done.done():
            self._attempt_done.set_result(reason)

    # --- I/O glue ---

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

    def _sessions(self) -> list:
        """The current session, and during a reauthentication the new and the retiring one."""
        return [s for s in (self.session, self._reauth_session, self._retiring) if s is not None]

    def _deliver(self, data: bytes, addr) -> None:
        sessions = self._sessions()
        if len(sessions) > 1:  # pick the session by the IKE SPIs
            sessions = [s for s in sessions if s.owns(data)] or sessions[:1]
        if sessions:
            sessions[0].receive_datagram(data, addr, self._now())

    def _on_dataplane_event(self, event) -> None:
        if getattr(event, "severity", "") == "soft" and self.session is not None \
                and event.spi_in.hex() in self.status.children:  # not a retired SA in its grace
            self.session.rekey_child(event.child_id)
            self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        for session in self._sessions():
            session.handle_timer(self._now())  # early is harmless: each checks its deadlines
        self._pump()

    def _pump(self) -> None:
        """Send what the sessions want sent, handle their events, re-arm the timer."""
        if self.session is None:
            return
        now = self._now()
        pumped: list = []
        # a session started while handling events (a reauthentication) is pumped too
        while (session := next((s for s in self._sessions() if s not in pumped), None)) is not None:
            pumped.append(session)
            for data, addr in session.datagrams_to_send(now):
                try:
                    if addr[1] == 4500:
                        self.dataplane.set_peer(addr)
                        self.dataplane.send_ike(data, addr)
                    else:
                        self._sock500.sendto(data, addr)
                except OSError as error:
                    log.info("sending to %s failed: %s", addr, error)
            while (event := session.next_event()) is not None:
                try:
                    self._dispatch(event, session)
                except FatalError as error:
                    self._fail(str(error))
                except OSError as error:
                    self._fail(f"applying {type(event).__name__} failed: {error}")
        if self._timer:
            self._timer.cancel()
            self._timer = None
        deadlines = [d for d in (s.get_timer() for s in self._sessions()) if d is not None]
        if deadlines:
            self._timer = self.loop.call_at(max(min(deadlines), now) - self._clock_offset,
                                            self._on_timer)

    def _fail(self, message: str) -> None:
        self.observer.failed(self, message)
        self.fatal_error = message
        if not self._first_up.done():
            self._first_up.set_result(False)
        self._stopping = True
        self._stopped.set()
        self._end_attempt(message)

    # --- events ---

    def _dispatch(self, event, session) -> None:
        if session is self.session:
            self._handle(event)
        elif session is self._reauth_session:
            self._handle_reauth(event)
        elif session is self._retiring:
            self._handle_retiring(event)

    def _handle(self, event) -> None:
        from ike import events as ev

        log.debug("event %s", event)
        if isinstance(event, ev.ReauthenticationRequested):
            self._start_reauthentication(event)
        elif isinstance(event, ev.IkeSaEstablished):
            self.status.remote_id = event.peer_identity
            self.status.ike_spi_i, self.status.ike_spi_r = event.spi_i.hex(), event.spi_r.hex()
            self.status.ike_proposal = event.proposal
            self.status.nat = event.nat_detected
            if event.nat_detected:
                self._schedule_keepalive()
        elif isinstance(event, ev.ConfigReceived):
            self._config = event
            self._apply_config(event)
        elif isinstance(event, ev.ChildSaEstablished):
            self._install_child(event)
        elif isinstance(event, ev.ChildSaDeleted):
            self._remove_child(event)
        elif isinstance(event, ev.IkeSaRekeyed):
            self.status.ike_spi_i, self.status.ike_spi_r = event.new_spi_i.hex(), event.new_spi_r.hex()
            self.status.ike_rekeys += 1
        elif isinstance(event, ev.ChildSaRekeyed):
            self.status.child_rekeys += 1
        elif isinstance(event, ev.AuthenticationFailed):
            # The gateway only says "AUTHENTICATION_FAILED": name the identities we used, the
            # usual culprits besides the credentials.
            sent = f"we are {self.status.local_id or '?'}"
            if self.profile.remote_id:
                sent += f", asking for the gateway {self.profile.remote_id}"
            raise FatalError(f"authentication failed: {event.reason} ({sent})")
        elif isinstance(event, ev.ProposalMismatch):
            message = (f"no proposal chosen: the gateway accepted none of {', '.join(event.offered)} "
                       f"({event.reason})")
            if not event.authenticated:  # may be spoofed (RFC 7296 §2.21.1): retried, not fatal
                return self._tunnel_lost(message)
            raise FatalError(message)
        elif isinstance(event, ev.Redirected):
            self.progress.say(f"redirected to {event.gateway}")
            self._end_attempt(Redirect(event.gateway))
        elif isinstance(event, (ev.IkeSaDeleted, ev.DeadPeerDetected)):
            self._tunnel_lost(event.reason)

    # --- make-before-break reauthentication (RFC 4478, RFC 7296 §2.8.3) ---

    def _start_reauthentication(self, event) -> None:
        """A new IKE_SA and CHILD_SA from scratch next to the current ones, on the same
        sockets. Without INITIAL_CONTACT: it would make the gateway delete the current IKE_SA
        at once (RFC 7296 §2.4), which is the outage make-before-break avoids."""
        from dataclasses import replace

        from ike.session import IkeSession

        if self._reauth_session is not None or self._stopping:
            return  # one at a time
        why = "the gateway asks for it (AUTH_LIFETIME)" if event.requested_by_gateway \
            else "reauth_time"
        self.progress.say(f"reauthenticating: {why}")
        self._reauth_events = {}
        self._reauth_session = IkeSession(replace(self._settings, initial_contact=False),
                                          self._now())
        self._reauth_session.connect(self._now())

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
            self.progress.say(f"reauthentication failed: {getattr(event, 'reason', event)}")
            self._reauth_session = None

    def _switch_to_reauthenticated(self, child) -> None:
        """The new CHILD_SA is up on the gateway (it installs it before answering IKE_AUTH):
        install it, send on it from now on, then delete the old IKE_SA. The old CHILD_SAs keep
        decrypting for REKEYED_SA_GRACE, for what the gateway sent on them meanwhile."""
        from ike import events as ev

        old, self.session, self._reauth_session = self.session, self._reauth_session, None
        established = self._reauth_events.get(ev.IkeSaEstablished)
        config = self._reauth_events.get(ev.ConfigReceived)
        old_children = list(self.status.children.values())
        self.status.children.clear()  # the old CHILD_SAs are no longer the tunnel's
        for info in old_children:
            self._retire_child(bytes.fromhex(info["spi_in"]))
        if established is not None:
            self._handle(established)
        if config is not None and config != self._config:
            # A different lease or DNS: switch to it. Routes carry the old address as their
            # source (and the kernel drops them with it), so they are added again.
            if set(config.addresses) != set(self._addresses):
                self._routed.clear()
            self._handle(config)
        # Not a rekey (status.children is empty now): outbound switches at once. Both sessions
        # number their CHILD_SAs from 1, so the new one takes over the old one's child_id
        # (strongSwan keeps the reqid across a reauthentication too).
        self._install_child(child)
        self.status.reauths += 1
        self.progress.say(f"reauthenticated (IKE_SA {self.status.ike_spi_i}_i)")
        self._retiring = old  # one retiring before it whose DELETE is still unanswered is dropped
        old.close()

    def _retire_child(self, spi_in: bytes) -> None:
        now = self.loop.time()
        self._grace_timers = [h for h in self._grace_timers if h.when() > now]  # drop fired ones
        self._grace_timers.append(
            self.loop.call_later(REKEYED_SA_GRACE, self.dataplane.remove_child_sa, spi_in))

    def _handle_retiring(self, event) -> None:
        """The old IKE_SA after a reauthentication: its CHILD_SAs are already on their way
        out of the data plane (_retire_child); wait for the end of its DELETE."""
        from ike import events as ev

        log.debug("event (retiring IKE_SA) %s", event)
        if isinstance(event, ev.IkeSaDeleted):
            self._retiring = None

    def _apply_config(self, config) -> None:
        from client.dns import DnsConfig

        wanted = list(config.addresses)
        for address in self._addresses:
            if address not in wanted:
                self._remove_address(address)
        for address in wanted:
            if address not in self._addresses:
                self.netconfig.add_address(self.tun.name, address)
                self._addresses.append(address)
        self.status.virtual_ips = [str(a.ip) for a in self._addresses]
        self.status.dns = [str(s) for s in config.dns_servers]
        self.status.domains = list(config.domains)
        line = "virtual IP " + (", ".join(self.status.virtual_ips) or "none")
        if self.manage_dns and self.profile.dns and (config.dns_servers or config.domains):
            if self._dns is None:
                self._dns = DnsConfig(self.profile.name, self.tun.name, control.run_dir())
                self._dns.full_tunnel = any(n.prefixlen == 0 for n in self.profile.remote_ts)
            self._dns.apply(list(config.dns_servers), list(config.domains))
            self.status.dns_mode = self._dns.mode
            line += ", DNS " + " ".join(self.status.dns)
            if config.domains:
                line += " (search " + " ".join(config.domains) + ")"
        self.progress.say(line)
        self.observer.config_received(self, config)

    def _remove_address(self, address) -> None:
        self.netconfig.remove_address(self.tun.name, address)
        self._addresses.remove(address)

    def _remove_child(self, event) -> None:
        self.status.children.pop(event.spi_in.hex(), None)
        successor = next((info["spi_in"] for info in self.status.children.values()
                          if info["child_id"] == event.child_id), None)
        if successor is None:
            self.dataplane.remove_child_sa(event.spi_in)
            return
        # Rekeyed: send on the new SA from now on, keep decrypting the old one a little longer.
        self.dataplane.activate_outbound(bytes.fromhex(successor))
        now = self.loop.time()
        self._grace_timers = [h for h in self._grace_timers if h.when() > now]  # drop fired ones
        self._grace_timers.append(
            self.loop.call_later(REKEYED_SA_GRACE, self.dataplane.remove_child_sa, event.spi_in))

    def _install_child(self, child) -> None:
        from ike.constants import EncrId, IntegId

        self.dataplane.set_peer((self.gateway_address, 4500))
        # A rekey: the new SA decrypts at once, but we go on sending on the old one until it
        # is deleted. When the gateway rekeys, it installs the new SAs only once our response
        # arrives: packets we sent on the new SA before that were lost. The DELETE of the old
        # SA comes after that in both directions of a rekey.
        rekey = any(info["child_id"] == child.child_id for info in self.status.children.values())
        self.dataplane.install_child_sa(child, activate_outbound=not rekey)
        if not self._link_configured:
            self.tun.configure(mtu=self.profile.mtu or DEFAULT_MTU, ipr=self.netconfig.ipr)
            self._link_configured = True
        if not self._gateway_pinned:
            self.netconfig.pin_gateway(ipaddress.ip_address(self.gateway_address))
            self._gateway_pinned = True
        families = {n.version for n in child.local_ts}
        if self.leaks is not None:
            self.leaks.tunnel_up(families)
            self.status.blocked = self.leaks.blocked
        for network in child.remote_ts:
            if network.version in families and network not in self._routed:
                source = next((str(a.ip) for a in self._addresses if a.version == network.version), None)
                for route in self.netconfig.route_through(self.tun.name, network, source):
                    if route.shadowed_by:  # e.g. a second tunnel to the same network
                        self.progress.say(
                            f"{route.destination} is already routed through {', '.join(route.shadowed_by)}:"
                            f" that route keeps the traffic; this tunnel's (metric {route.metric})"
                            f" takes over when it goes")
                self._routed.add(network)
        encr = f"{EncrId(child.encr_id).name}-{child.encr_key_bits}"
        integ = IntegId(child.integ_id).name if child.integ_id else ""
        self.status.children[child.spi_in.hex()] = {
            "child_id": child.child_id, "spi_in": child.spi_in.hex(), "spi_out": child.spi_out.hex(),
            "encryption": encr, "integrity": integ, "esn": child.esn,
            "local_ts": [str(n) for n in child.local_ts], "remote_ts": [str(n) for n in child.remote_ts],
            "rekey_at": time.time() + child.lifetime_soft, "installed_at": time.time()}
        self.netconfig.release()  # set up: the netlink agent may go (a later change forks anew)
        if self.status.state != "up":
            if self._first_up.done():
                self.status.reconnects += 1
            self._came_up = True
            self.status.state = "up"
            self.status.up_since = time.time()
            self.progress.say(f"tunnel up ({self.tun.name}, ESP {encr}{'/' + integ if integ else ''})")
            self.observer.tunnel_up(self)
            if not self._first_up.done():
                self._first_up.set_result(True)

    def _tunnel_lost(self, reason: str) -> None:
        if self._attempt_done is None or self._attempt_done.done():
            return  # already reported (DeadPeerDetected comes before IkeSaDeleted)
        for spi_in in list(self.status.children):
            self.dataplane.remove_child_sa(bytes.fromhex(spi_in))
        self.status.children.clear()
        if self._reauth_session is not None:  # too late for make-before-break
            self._reauth_session.close()
            self._reauth_session = None
        self._retiring = None
        self.status.state = "down"
        self.status.up_since = None
        if self._keepalive:
            self._keepalive.cancel()
            self._keepalive = None
        self.observer.tunnel_lost(self, reason)
        if self._stopping:
            reason = "closed"
        elif self._came_up:
            reason = f"tunnel lost: {reason}"
        self._end_attempt(reason)

    def _schedule_keepalive(self) -> None:
        def send() -> None:
            try:
                self.dataplane.send_keepalive((self.gateway_address, 4500))
            except OSError:
                pass
            self._keepalive = self.loop.call_later(NAT_KEEPALIVE_INTERVAL, send)

        if self._keepalive is None:
            self._keepalive = self.loop.call_later(NAT_KEEPALIVE_INTERVAL, send)

    # --- control socket ---

    def snapshot(self) -> dict:
        data = dict(self.status.__dict__)
        counters = self.dataplane.counters() if self.dataplane else {}
        children = []
        for spi_hex, info in self.status.children.items():
            c = counters.get(bytes.fromhex(spi_hex))
            entry = dict(info)
            if c is not None:
                entry.update(bytes_in=c.bytes_in, packets_in=c.packets_in, bytes_out=c.bytes_out,
                             packets_out=c.packets_out, replay_drops=c.replay_drops,
                             auth_failures=c.auth_failures)
            entry["rekey_in"] = max(0, round(info["rekey_at"] - time.time()))
            children.append(entry)
        data["children"] = children
        data["uptime"] = round(time.time() - self.status.up_since) if self.status.up_since else 0
        rekey_at = reauth_at = None
        if self.session is not None and self.status.state == "up":
            rekey_at, reauth_at = self.session.ike_sa_deadlines()
        now = self._now()
        data["ike_rekey_in"] = None if rekey_at is None else max(0, round(rekey_at - now))
        data["reauth_in"] = None if reauth_at is None else max(0, round(reauth_at - now))
        return data

    async def handle_control(self, request: dict) -> dict:
        command = request.get("command")
        if command == "status":
            return {"ok": True, "status": self.snapshot()}
        if command == "down":
            self.stop()
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {command!r}"}


@dataclass(frozen=True)
class Redirect:
    gateway: str


def _gateway_family(host: str, port: int) -> int:
    """AF_INET6 if `host` is (or resolves first to) an IPv6 address, else AF_INET."""
    try:
        return socket.AF_INET6 if ":" in resolve_gateway(host, port) else socket.AF_INET
    except ConnectionError:
        return socket.AF_INET  # the first attempt reports why the name does not resolve


def _udp_socket(port: int, family: int = socket.AF_INET) -> socket.socket:
    """A UDP socket on `port` if free (IKE's well-known ports), else on any port."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    anywhere = "::" if family == socket.AF_INET6 else "0.0.0.0"
    try:
        sock.bind((anywhere, port))
    except OSError:
        sock.bind((anywhere, 0))
    return sock


# ------------------------------------------------------------------------------ entry points


async def _run(profile: Profile, secret, progress: Progress, on_up: Callable[[], None]) -> int:
    loop = asyncio.get_running_loop()
    tunnel = Tunnel(profile, secret, progress)
    try:
        tunnel.session_overrides, tunnel.esp_limits = test_hooks()
    except FatalError as error:
        progress.say(f"cygnet: {error}")
        return 1
    # SIGHUP too: a closed terminal must not kill a foreground tunnel without its cleanup.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, tunnel.stop)
    server = None
    try:
        tunnel.open()
        server = await control.serve(profile.name, tunnel.handle_control)
        runner = asyncio.ensure_future(tunnel.run())
        await asyncio.wait({runner, tunnel._first_up}, return_when=asyncio.FIRST_COMPLETED)
        came_up = tunnel._first_up.done() and tunnel._first_up.result()
        if came_up:
            on_up()
        await runner
        if tunnel.fatal_error:
            progress.say(f"cygnet: {tunnel.fatal_error}")
            return 1
        if came_up:
            progress.say("tunnel closed")
            return 0
        progress.say("cygnet: stopped before the tunnel came up")
        return 1
    except FatalError as error:
        progress.say(f"cygnet: {error}")
        return 1
    finally:
        # The control socket goes last: `cygnet down` waits for it, and the tunnel is closed
        # only once its routes and addresses are gone.
        try:
            tunnel.close()
        finally:
            if server is not None:
                server.close()
                try:
                    control.socket_path(profile.name).unlink()
                except FileNotFoundError:
                    pass


def _configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.environ.get("CYGNET_DEBUG"):  # Cygnet's own loggers only: pyroute2's dump netlink
        for name in ("cygnet", "ike", "client"):
            logging.getLogger(name).setLevel(logging.DEBUG)


def up(profile: Profile, daemon: bool = False) -> int:
    """`cygnet up`: bring the tunnel up and keep it up; 0 only if it came up."""
    from client.secrets import SecretError, get_secret

    _configure_logging()
    if control.is_alive(profile.name):
        print(f"cygnet: tunnel {profile.name} is already running (cygnet down {profile.name})", file=sys.stderr)
        return 1
    try:
        needs_secret = profile.auth == "psk" or profile.needs_password
        secret = get_secret(profile) if needs_secret else None  # before detaching: it may prompt
    except SecretError as error:
        print(f"cygnet: {error}", file=sys.stderr)
        return 1
    if not daemon:
        return asyncio.run(_run(profile, secret, Progress(), on_up=lambda: None))
    return _daemonize(profile, secret)


def _daemonize(profile: Profile, secret) -> int:
    """Run the tunnel in a detached child; the parent prints its progress and exits once the
    tunnel is up (0) or has failed (1)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        ok = False
        with os.fdopen(read_end) as lines:
            try:
                for line in lines:
                    if line.startswith("\0up"):
                        ok = True
                        break
                    print(line, end="", flush=True)
            except KeyboardInterrupt:
                # Ctrl-C while waiting: the user gives up on this tunnel, not just on waiting
                # (the child has its own session and did not get the SIGINT).
                os.kill(pid, signal.SIGTERM)
                for line in lines:  # until the child has cleaned up and closed the pipe
                    print(line, end="", flush=True)
                raise
        if ok:
            print(f"running in the background; log: {daemon_log_path(profile.name)}", flush=True)
        return 0 if ok else 1
    os.close(read_end)
    os.setsid()
    pipe = os.fdopen(write_end, "w")
    progress = Progress(pipe)

    def detached() -> None:
        progress.say("\0up")
        pipe.close()
        # From now on progress lines and warnings (the logging handler writes to fd 2) go to
        # the tunnel's log under the root-only run directory, readable by root alone.
        control.ensure_run_dir()
        log_fd = os.open(daemon_log_path(profile.name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(log_fd, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        progress.stream = sys.stdout
        progress.timestamps = True
        progress.say(f"detached (pid {os.getpid()}); the tunnel is up")

    code = asyncio.run(_run(profile, secret, progress, on_up=detached))
    os._exit(code)


def down(name: Optional[str] = None) -> int:
    """`cygnet down [NAME]`: close one tunnel (or the only one running)."""
    names = [name] if name else control.running_tunnels()
    if not names:
        print("cygnet: no tunnel is running", file=sys.stderr)
        return 1
    if len(names) > 1:
        print(f"cygnet: several tunnels run ({', '.join(names)}): name one", file=sys.stderr)
        return 2
    try:
        control.request(names[0], "down")
    except OSError:
        print(f"cygnet: tunnel {names[0]} is not running", file=sys.stderr)
        return 1
    deadline = time.monotonic() + 10
    while control.socket_path(names[0]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"tunnel {names[0]} closed")
    return 0


def status(as_json: bool = False) -> int:
    """`cygnet status [--json]`: what every running tunnel is doing."""
    reports = []
    for name in control.running_tunnels():
        try:
            reports.append(control.request(name, "status")["status"])
        except (OSError, KeyError, ValueError):
            continue
    if as_json:
        print(json.dumps(reports, indent=2))
        return 0
    if not reports:
        print("no tunnel is running")
        return 0
    for report in reports:
        print(format_status(report))
    return 0


def format_status(s: dict) -> str:
    lines = [f"{s['name']}: {s['state']}, gateway {s['gateway']}"]
    if s.get("remote_id"):
        lines.append(f"  identities  {s['local_id']} → {s['remote_id']}")
    lines.append(f"  interface   {s['interface']}  virtual IP {', '.join(s['virtual_ips']) or 'none'}")
    if s.get("dns"):
        lines.append(f"  DNS         {' '.join(s['dns'])}" + (f"  search {' '.join(s['domains'])}" if s.get("domains") else ""))
    if s.get("ike_proposal"):
        lines.append(f"  IKE_SA      {s['ike_spi_i']}_i {s['ike_spi_r']}_r  {s['ike_proposal']}"
                     f"{'  (NAT-T)' if s.get('nat') else ''}")
        deadlines = [f"{what} in {s[key]} s" for what, key in (("rekey", "ike_rekey_in"),
                                                                ("reauthentication", "reauth_in"))
                     if s.get(key) is not None]
        if deadlines:
            lines.append(f"              {', '.join(deadlines)}")
    if s.get("up_since"):
        lines.append(f"  up for      {s['uptime']} s, reconnects {s['reconnects']}, "
                     f"rekeyed IKE_SA {s['ike_rekeys']}x, CHILD_SA {s['child_rekeys']}x")
    for c in s.get("children", []):
        algo = c["encryption"] + (f"/{c['integrity']}" if c["integrity"] else "")
        lines.append(f"  CHILD_SA    {c['spi_in']}_i {c['spi_out']}_o  {algo}  rekey in {c['rekey_in']} s")
        lines.append(f"              {', '.join(c['local_ts'])} === {', '.join(c['remote_ts'])}")
        if "bytes_in" in c:
            lines.append(f"              in {c['bytes_in']} B / {c['packets_in']} pkts, "
                         f"out {c['bytes_out']} B / {c['packets_out']} pkts")
    guards = (["kill switch"] if s.get("kill_switch") else []) + \
        [f"{family} blocked" for family in s.get("blocked", []) if not s.get("kill_switch")]
    if guards or s.get("dns_mode"):
        lines.append(f"  leaks       {', '.join(guards) or 'no kill switch'}"
                     + (f"; DNS {s['dns_mode']}" if s.get("dns_mode") else ""))
    if s.get("last_error"):
        lines.append(f"  last error  {s['last_error']}")
    return "\n".join(lines)
