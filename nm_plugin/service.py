"""cygnet-nm-service: the NetworkManager VPN plugin, a thin D-Bus adapter over client.engine.

NetworkManager starts one process per VPN activation (the `program=` of the .name file,
with `--bus-name org.freedesktop.NetworkManager.cygnet.Connection_N` because the .name file
says supports-multiple-connections=true), waits for it on the system bus and calls
org.freedesktop.NetworkManager.VPN.Plugin at /org/freedesktop/NetworkManager/VPN/Plugin:

    NeedSecrets(connection) -> "vpn" while the password is missing (NM then asks an agent)
    Connect(connection)     -> vpn.data becomes a Profile (nm_plugin/vpn_data.py), the
                               engine's Tunnel runs it; state STARTING
    tunnel up               -> signals Config, Ip4Config, Ip6Config; state STARTED
    Disconnect()            -> DELETE to the gateway, TUN removed; state STOPPED; exit
    failure at any time     -> signal Failure(login | connect | bad IP config), STOPPED, exit;
                               the code comes from the Failure's kind (NM_FAILURE), and the
                               kind's token goes to the tray in Cygnet's Failed(u, s, s)
    tunnel lost, and the connection is vpn.persistent=yes
                            -> STARTING while the engine reconnects (TUN and routes kept),
                               then Config/Ip4Config/Ip6Config again and STARTED

The state machine and timers copy libnm's NMVpnServicePlugin, which every C plugin
(charon-nm included) is built on, so NetworkManager sees the same behaviour.

Several connections at once each have their own process, TUN device, virtual IP and routes.
Two that tunnel the same network do not take each other's route (client/netconfig.py): the
one connected first keeps the traffic, the other's route waits behind it with a higher metric
(the log says so) and carries the traffic once the first goes down.
To start a VPN by itself, make it a secondary of the base connection (connection.secondaries):
NetworkManager 1.42 ignores connection.autoconnect on VPN connections.
"""

from client.no_system_openssl import import_without_system_openssl

# First: asyncio's ssl and dbus-fast's hashlib would load the system's OpenSSL too.
import_without_system_openssl("asyncio", "hashlib")

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from typing import Optional

from dbus_fast import BusType, DBusError, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method
from dbus_fast.service import signal as dbus_signal

from client.engine import Tunnel, TunnelObserver
from client.failure import Failure, FailureKind, FatalError
from client.sockets import local_address_towards
from client.status import Progress, esp_algorithms
from nm_plugin.vpn_data import (Activation, VpnDataError, activation_from_connection, ipv4_u32,
                                is_persistent, needed_secret)

log = logging.getLogger("cygnet.nm")

DEFAULT_BUS_NAME = "org.freedesktop.NetworkManager.cygnet"
PLUGIN_PATH = "/org/freedesktop/NetworkManager/VPN/Plugin"
CYGNET_INTERFACE = "org.freedesktop.NetworkManager.cygnet.Plugin"
PLUGIN_INTERFACE = "org.freedesktop.NetworkManager.VPN.Plugin"
ERROR = "org.freedesktop.NetworkManager.VPN.Error"

# NMVpnServiceState
STATE_INIT, STATE_SHUTDOWN, STATE_STARTING, STATE_STARTED, STATE_STOPPING, STATE_STOPPED = 1, 2, 3, 4, 5, 6
# NMVpnPluginFailure
FAILURE_LOGIN, FAILURE_CONNECT, FAILURE_BAD_IP_CONFIG = 0, 1, 2
# client.failure.FailureKind -> NMVpnPluginFailure. NM shows a login failure as "Invalid
# secrets" (and may ask again); every failure of the gateway's or our own authentication is
# one, as charon-nm reports them.
NM_FAILURE = {
    FailureKind.AUTHENTICATION: FAILURE_LOGIN,
    FailureKind.IDENTITY_MISMATCH: FAILURE_LOGIN,
    FailureKind.PASSWORD_MISSING: FAILURE_LOGIN,
    FailureKind.IP_CONFIGURATION: FAILURE_BAD_IP_CONFIG,
}  # everything else: FAILURE_CONNECT

CONNECT_TIMEOUT = 60.0  # libnm: no config within 60 s after Connect → disconnect
QUIT_TIMEOUT = 180.0    # libnm: an idle plugin (never connected) quits after 180 s
UNITY_BANNER = 28672    # Cisco Unity MODE_CFG attribute some gateways send as a login banner


class LogStream:
    """A text stream for the engine's Progress lines: each line goes to the log (stderr,
    which NetworkManager's own log collects)."""

    def __init__(self):
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line.strip():
                log.info("%s", line)
        return len(text)

    def flush(self) -> None:
        pass


class CygnetDetails(ServiceInterface):
    """org.freedesktop.NetworkManager.cygnet.Plugin, beside the VPN.Plugin interface on the same
    object: NetworkManager's Failure(u) has three codes, so a wrong password and an untrusted
    gateway certificate look alike. Failed(u, s, s) carries NM's code, the message in plain
    words and the failure's kind (a client.failure.FailureKind value), for the tray."""

    def __init__(self):
        super().__init__(CYGNET_INTERFACE)

    @dbus_signal()
    def Failed(self, reason, message, kind) -> "uss":
        return [reason, message, kind]


class VpnPlugin(ServiceInterface, TunnelObserver):
    """org.freedesktop.NetworkManager.VPN.Plugin for one activation."""

    def __init__(self, on_exit, details: Optional[CygnetDetails] = None):
        super().__init__(PLUGIN_INTERFACE)
        self.details = details or CygnetDetails()
        self._state = STATE_INIT
        self._on_exit = on_exit  # called once the plugin is done (stopped after a connection)
        self.loop = asyncio.get_running_loop()
        self.tunnel: Optional[Tunnel] = None
        self.activation: Optional[Activation] = None
        self._runner: Optional[asyncio.Task] = None
        self._config = None  # the last ike.events.ConfigReceived
        self._connect_timer: Optional[asyncio.TimerHandle] = None
        self._quit_timer: Optional[asyncio.TimerHandle] = None
        self._failed = False
        self._persistent = False  # vpn.persistent: we reconnect by ourselves after an outage
        self._was_up = False
        self._schedule_quit()

    # ------------------------------------------------------------------ D-Bus: properties

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> "u":
        return self._state

    # ------------------------------------------------------------------ D-Bus: signals

    @dbus_signal()
    def StateChanged(self, state) -> "u":
        return state

    @dbus_signal()
    def Config(self, config) -> "a{sv}":
        return config

    @dbus_signal()
    def Ip4Config(self, config) -> "a{sv}":
        return config

    @dbus_signal()
    def Ip6Config(self, config) -> "a{sv}":
        return config

    @dbus_signal()
    def LoginBanner(self, banner) -> "s":
        return banner

    @dbus_signal()
    def Failure(self, reason) -> "u":
        return reason

    @dbus_signal()
    def SecretsRequired(self, message, secrets) -> "sas":
        return [message, secrets]

    # ------------------------------------------------------------------ D-Bus: methods

    @method()
    def Connect(self, connection: "a{sa{sv}}"):
        self._connect(connection)

    @method()
    def ConnectInteractive(self, connection: "a{sa{sv}}", details: "a{sv}"):
        # Cygnet gets every secret before connecting; NM falls back to Connect() on this error.
        raise DBusError(f"{ERROR}.InteractiveNotSupported", "Plugin does not implement ConnectInteractive()")

    @method()
    def NeedSecrets(self, settings: "a{sa{sv}}") -> "s":
        needed = needed_secret(settings)
        if needed:
            self._schedule_quit()  # do not quit while NM asks the user
        log.info("NeedSecrets: %s", f"'{needed}' (password missing)" if needed else "none")
        return needed

    @method()
    def NewSecrets(self, connection: "a{sa{sv}}"):
        if self._state != STATE_STARTING:
            raise DBusError(f"{ERROR}.WrongState",
                            f"Could not accept new secrets: wrong plugin state {self._state}")
        raise DBusError(f"{ERROR}.InteractiveNotSupported",
                        "Could not accept new secrets: plugin cannot process interactive secrets")

    @method()
    def Disconnect(self):
        if self._state == STATE_STOPPING:
            raise DBusError(f"{ERROR}.StoppingInProgress", "Could not process the request because the "
                            "VPN connection is already being stopped.")
        if self._state == STATE_STOPPED:
            raise DBusError(f"{ERROR}.AlreadyStopped", "Could not process the request because no VPN "
                            "connection was active.")
        log.info("Disconnect requested by NetworkManager")
        self._disconnect()

    # Helper processes of other plugins report their results through these; libnm re-emits
    # them as signals, and so do we.
    @method()
    def SetConfig(self, config: "a{sv}"):
        self.Config(config)

    @method()
    def SetIp4Config(self, config: "a{sv}"):
        self.Ip4Config(config)
        self._set_state(STATE_STARTED)

    @method()
    def SetIp6Config(self, config: "a{sv}"):
        self.Ip6Config(config)
        self._set_state(STATE_STARTED)

    @method()
    def SetFailure(self, reason: "s"):
        log.warning("failure reported: %s", reason)
        self._fail(Failure(FailureKind.IP_CONFIGURATION, reason))

    # ------------------------------------------------------------------ state

    def _set_state(self, state: int) -> None:
        if state == self._state:
            return
        self._state = state
        log.info("state %s", {1: "init", 2: "shutdown", 3: "starting", 4: "started",
                              5: "stopping", 6: "stopped"}.get(state, state))
        try:
            self.StateChanged(state)
            self.emit_properties_changed({"State": state})
        except OSError as error:  # the bus went away (NM or the bus shutting down): go on
            log.warning("cannot signal the new state: %s", error)
        if state != STATE_STARTING and self._connect_timer:
            self._connect_timer.cancel()
            self._connect_timer = None
        if state == STATE_STOPPED:
            self.loop.call_soon(self._on_exit)

    def _schedule_quit(self) -> None:
        if self._quit_timer:
            self._quit_timer.cancel()
        self._quit_timer = self.loop.call_later(QUIT_TIMEOUT, self._idle_quit)

    def _idle_quit(self) -> None:
        if self._state in (STATE_INIT, STATE_STOPPED):
            log.info("no connection requested for %.0f s: quitting", QUIT_TIMEOUT)
            self._on_exit()

    # ------------------------------------------------------------------ connecting

    def _connect(self, connection: dict) -> None:
        if self._state not in (STATE_INIT, STATE_STOPPED):
            raise DBusError(f"{ERROR}.WrongState", f"Could not start connection: wrong plugin state {self._state}")
        try:
            self.activation = activation_from_connection(connection)
        except VpnDataError as error:
            log.error("cannot connect: %s", error)
            self._stop_soon()
            raise DBusError(f"{ERROR}.BadArguments", str(error)) from None
        profile = self.activation.profile
        from ike.proposals import proposal_warnings

        for warning in proposal_warnings(profile.ike, profile.esp):  # legacy algorithms named
            log.warning("%s", warning)
        self._persistent = is_persistent(connection)
        log.info("connecting '%s' to %s (%s)", self.activation.connection_id,
                 ", ".join(profile.gateways), profile.auth)
        try:
            self.tunnel = Tunnel(profile, self.activation.secret, Progress(LogStream()), observer=self)
            self.tunnel.manage_dns = False  # NetworkManager applies DNS from Ip4Config/Ip6Config
            self.tunnel.session_overrides = dict(self.activation.session_overrides)
            self.tunnel.open()
        except (FatalError, OSError) as error:
            log.error("cannot start the tunnel: %s", error)
            self._close_tunnel()
            self._stop_soon()
            raise DBusError(f"{ERROR}.LaunchFailed", str(error)) from None
        if self._quit_timer:
            self._quit_timer.cancel()
            self._quit_timer = None
        self._set_state(STATE_STARTING)
        self._connect_timer = self.loop.call_later(CONNECT_TIMEOUT, self._connect_timeout)
        self._runner = self.loop.create_task(self._run())

    def _stop_soon(self) -> None:
        # As libnm: the error reply to Connect goes out before StateChanged(STOPPED).
        self.loop.call_soon(self._set_state, STATE_STOPPED)

    async def _run(self) -> None:
        try:
            await self.tunnel.run()
        except Exception as error:  # a bug or an unexpected setup problem: NM must hear of it
            log.exception("tunnel failed")
            if not self._failed and self._state in (STATE_STARTING, STATE_STARTED):
                self._failed = True
                self.Failure(FAILURE_CONNECT)
                log.error("connection failed: %s", error)
        finally:
            self._close_tunnel()
            if self._state in (STATE_STARTING, STATE_STARTED):
                self._set_state(STATE_STOPPING)
            self._set_state(STATE_STOPPED)

    def _close_tunnel(self) -> None:
        if self.tunnel is not None:
            try:
                self.tunnel.close()
            except Exception:
                log.exception("closing the tunnel")
            self.tunnel = None

    def _connect_timeout(self) -> None:
        self._connect_timer = None
        last = self.tunnel.status.last_error if self.tunnel else ""
        self._fail(Failure(FailureKind.GATEWAY_UNREACHABLE, f"no tunnel after {CONNECT_TIMEOUT:.0f} s"
                           + (f" (last error: {last})" if last else "")))

    def _disconnect(self) -> None:
        """STARTING/STARTED → STOPPING: the tunnel deletes its SAs; _run() ends → STOPPED."""
        if self._state == STATE_INIT:
            self._set_state(STATE_STOPPED)
            return
        self._set_state(STATE_STOPPING)
        if self.tunnel is not None:
            self.tunnel.stop()
        if self._runner is None:
            self._set_state(STATE_STOPPED)

    def _fail(self, failure: Failure) -> None:
        if self._failed or self._state not in (STATE_STARTING, STATE_STARTED):
            return
        self._failed = True
        reason = NM_FAILURE.get(failure.kind, FAILURE_CONNECT)
        log.error("connection failed: %s", failure.message)
        if self.tunnel is not None and self.tunnel.failure is None:
            self.tunnel.failure = failure  # a failure, not a disconnect: a kill switch stays
        # before Failure: the tray reads it on the state change
        self.details.Failed(reason, failure.message, failure.kind.value)
        self.Failure(reason)
        self._disconnect()

    # ------------------------------------------------------------------ TunnelObserver

    def config_received(self, tunnel: Tunnel, config) -> None:
        self._config = config

    def tunnel_up(self, tunnel: Tunnel) -> None:
        if self._state != STATE_STARTING:
            return
        try:
            config, ip4, ip6 = self._nm_configs(tunnel)
        except Exception as error:
            log.exception("building the IP configuration")
            self._fail(Failure(FailureKind.IP_CONFIGURATION, str(error)))
            return
        if "banner" in config:
            self.LoginBanner(config["banner"].value)
        self.Config(config)
        if self._was_up:
            self._nudge(ip4, ip6)
        if ip4 is not None:
            self.Ip4Config(ip4)
        if ip6 is not None:
            self.Ip6Config(ip6)
        log.info("tunnel up on %s: %s", tunnel.tun.name, ", ".join(tunnel.status.virtual_ips) or "no virtual IP")
        self._was_up = True
        self._set_state(STATE_STARTED)

    def _nudge(self, ip4, ip6) -> None:
        """After a reconnect (vpn.persistent), which usually brings the same configuration back.

        NetworkManager >= 1.36 returns a VPN to "activated" only after it has committed an IP
        configuration that changed: an identical one leaves it "connecting" until some unrelated
        commit (nm-vpn-connection.c waits for a POST_COMMIT that nothing schedules). One IP
        configuration that differs, sent just before the real one, forces that commit: one more
        route, to our own virtual IP, which the local table answers anyway."""
        if ip4 is not None:
            own = [ip4["address"].value, 32, 0, 0]
            self.Ip4Config({**ip4, "routes": Variant("aau", [*ip4["routes"].value, own])})
        elif ip6 is not None:
            own = [ip6["address"].value, 128, bytes(16), 0]
            self.Ip6Config({**ip6, "routes": Variant("a(ayuayu)", [*ip6["routes"].value, own])})

    # The two below are called from inside the engine's event handling: act once it is done.

    def tunnel_lost(self, tunnel: Tunnel, failure: Failure) -> None:
        if self._persistent and self._was_up:
            # vpn.persistent (and we told NM "can-persist"): let the engine reconnect with
            # back-off, keeping the TUN device and its routes so nothing leaks meanwhile.
            # NM shows the VPN as connecting (STARTED → STARTING) until the next Config.
            if self._state == STATE_STARTED:
                log.warning("tunnel lost: %s; reconnecting (vpn.persistent)", failure.message)
                self.loop.call_soon(self._set_state, STATE_STARTING)
            return
        # Otherwise report the loss and stop: NetworkManager decides what comes next.
        self.loop.call_soon(self._fail, Failure(failure.kind, f"tunnel lost: {failure.message}"))

    def failed(self, tunnel: Tunnel, failure: Failure) -> None:
        self.loop.call_soon(self._fail, failure)

    # ------------------------------------------------------------------ NM's encodings

    def _nm_configs(self, tunnel: Tunnel):
        """(Config, Ip4Config or None, Ip6Config or None) as a{sv} dicts of Variants."""
        config = self._config
        activation = self.activation
        status = tunnel.snapshot()  # the status model `cygnet status` shows too
        addresses = list(config.addresses) if config else []
        v4 = next((a for a in addresses if a.version == 4), None)
        v6 = next((a for a in addresses if a.version == 6), None)
        if v4 is None and v6 is None:
            # No virtual IP (virtual=no): as charon-nm, report our own address on the path.
            local = ipaddress.ip_interface(local_address_towards(tunnel.gateway_address))
            v4, v6 = (local, None) if local.version == 4 else (None, local)
        use_dns = activation.profile.dns and config is not None
        servers = list(config.dns_servers) if use_dns else []
        domains = (list(config.domains) if use_dns else []) + list(activation.extra_domains)
        remote = set()
        for child in status["children"]:
            remote.update(ipaddress.ip_network(n) for n in child["remote_ts"])

        gateway = ipaddress.ip_address(tunnel.gateway_address)
        result = {
            "gateway": Variant("u", ipv4_u32(gateway)) if gateway.version == 4
            else Variant("ay", gateway.packed),
            "tundev": Variant("s", tunnel.tun.name),
            "mtu": Variant("u", activation.profile.mtu or _tun_mtu(tunnel)),
            "has-ip4": Variant("b", v4 is not None),
            "has-ip6": Variant("b", v6 is not None),
            # We keep a vpn.persistent=yes connection up ourselves (see tunnel_lost); NM then
            # also keeps it when the base device goes down for a while.
            "can-persist": Variant("b", True),
        }
        # What was negotiated, in strongSwan's syntax, for the tray's status window (NM passes
        # keys it does not know through to listeners of the plugin's Config signal).
        if status["ike_proposal"]:
            result["cygnet-ike"] = Variant("s", status["ike_proposal"])
        esp = esp_algorithms(status["children"])
        if esp:
            result["cygnet-esp"] = Variant("s", ", ".join(esp))
        if tunnel.leaks is not None and tunnel.leaks.summary():  # client/killswitch.py
            result["cygnet-leaks"] = Variant("s", tunnel.leaks.summary())
        banner = _banner(config)
        if banner:
            result["banner"] = Variant("s", banner)

        ip4 = _ip4_config(v4, servers, domains, remote) if v4 is not None else None
        ip6 = _ip6_config(v6, servers, domains, remote) if v6 is not None else None
        return result, ip4, ip6


def _ip4_config(v4, servers, domains, remote) -> dict:
    nets = sorted((n for n in remote if n.version == 4), key=str)
    return {
        "address": Variant("u", ipv4_u32(v4.ip)),
        "prefix": Variant("u", v4.network.prefixlen),
        "dns": Variant("au", [ipv4_u32(s) for s in servers if s.version == 4]),
        "domains": Variant("as", domains),
        "routes": Variant("aau", [[ipv4_u32(n.network_address), n.prefixlen, 0, 0]
                                  for n in nets if n.prefixlen]),
        "never-default": Variant("b", not any(n.prefixlen == 0 for n in nets)),
    }


def _ip6_config(v6, servers, domains, remote) -> dict:
    nets = sorted((n for n in remote if n.version == 6), key=str)
    return {
        "address": Variant("ay", v6.ip.packed),
        "prefix": Variant("u", v6.network.prefixlen),
        "dns": Variant("aay", [s.packed for s in servers if s.version == 6]),
        "domains": Variant("as", domains),
        "routes": Variant("a(ayuayu)", [[n.network_address.packed, n.prefixlen, bytes(16), 0]
                                        for n in nets if n.prefixlen]),
        "never-default": Variant("b", not any(n.prefixlen == 0 for n in nets)),
    }


def _banner(config) -> str:
    for number, value in (config.other if config else ()):
        if number == UNITY_BANNER:
            return value.decode("utf-8", "replace")
    return ""


def _tun_mtu(tunnel: Tunnel) -> int:
    try:
        with open(f"/sys/class/net/{tunnel.tun.name}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError):
        from client.host_config import DEFAULT_MTU

        return DEFAULT_MTU


# ---------------------------------------------------------------------------------- main


async def serve(bus_name: str) -> int:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    done = asyncio.get_running_loop().create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(0)

    details = CygnetDetails()
    plugin = VpnPlugin(on_exit=finish, details=details)
    bus.export(PLUGIN_PATH, plugin)
    bus.export(PLUGIN_PATH, details)
    reply = await bus.request_name(bus_name)
    if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
        log.error("cannot own %s on the system bus (%s)", bus_name, reply.name)
        bus.disconnect()
        return 1
    log.info("serving %s", bus_name)

    def on_signal() -> None:
        # NetworkManager going away or an admin's kill: leave the gateway politely.
        if plugin._state in (STATE_STARTING, STATE_STARTED):
            plugin._disconnect()
        else:
            finish()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    code = await done
    await asyncio.sleep(0.1)  # let the last signals leave
    bus.disconnect()
    try:
        await bus.wait_for_disconnect()
    except Exception:  # the reader sees EOF of the socket we closed: nothing to report
        pass
    return code


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="cygnet-nm-service",
                                     description="Cygnet's NetworkManager VPN plugin (started by NetworkManager)")
    parser.add_argument("--bus-name", default=DEFAULT_BUS_NAME, help="D-Bus name to own")
    parser.add_argument("--debug", action="store_true", help="log the engine's details")
    args = parser.parse_args(argv)
    # stderr is NetworkManager's: our lines land in its log (journal), tagged with our name.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"cygnet-nm-service[{os.getpid()}]: %(levelname)s %(message)s")
    if args.debug or os.environ.get("CYGNET_DEBUG"):
        for name in ("cygnet", "ike", "client"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        return asyncio.run(serve(args.bus_name))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
