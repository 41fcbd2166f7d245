"""Keeping a tunnel through network changes, sleep and resume (issue 15), for the engine.

`Roaming(tunnel)` watches the network (client/netwatch.py) once the tunnel is open, and:
- pins the gateway's host route on the path the gateway would take without the tunnel
  (`pin()`, also before contacting a new gateway: the next of the list, a REDIRECT target),
  and re-pins it when that path changes;
- on a path change, with a MOBIKE gateway: UPDATE_SA_ADDRESSES from the new address (the
  session, ike/mobike.py); the userspace data plane needs no change (its socket is unbound,
  the kernel picks the new source from the re-pinned route). Where the SAs would have to
  change (the kernel plane's XFRM states hold the old address; NAT appearing or going needs
  UDP encapsulation switched), and without MOBIKE: a fast reconnect instead (a new IKE_SA at
  once; TUN, routes and DNS stay);
- after a resume: one liveness check with a short retransmission budget, and an immediate
  reconnect if the gateway forgot us.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Optional

from client import netwatch

log = logging.getLogger("cygnet")

RETRY_AT_ONCE_WINDOW = 15.0  # seconds after a resume in which a lost tunnel reconnects at once
LOGIND_DELAY = 1.0  # seconds after the tunnel came up
NEWEST_SA_RECHECK = 0.3  # seconds after a MOBIKE update: a CHILD_SA rekey may follow it


class Roaming:
    def __init__(self, tunnel):
        self.tunnel = tunnel
        self.pinned: Optional[str] = None  # the gateway address whose host route we hold
        self.path: Optional[netwatch.GatewayPath] = None
        self.moves = 0
        self.moved_at: Optional[float] = None  # loop time of the last path change
        self._watch: Optional[netwatch.NetlinkWatch] = None
        self._sleep: Optional[netwatch.SuspendWatch] = None
        self._retry_until = 0.0
        self._logind_start = None
        self.peer_dead = False  # the last tunnel was lost to DeadPeerDetected
        self._address_index: dict[str, int] = {}  # host name -> which of its addresses now
        self._addresses: dict[str, list[str]] = {}

    # --- life cycle ---

    def start(self) -> None:
        """Watch from the first pin on (the tunnel is up): nothing of this costs start-up time."""
        loop = self.tunnel.loop
        try:
            # the netlink agent (pyroute2, for the path and the re-pin) forks and loads while
            # the change settles
            self._watch = netwatch.NetlinkWatch(loop, self.on_network_change, self._ignore,
                                                on_wake=self.tunnel.netconfig.get_ready)
        except OSError as error:
            log.warning("not watching the network (%s): the tunnel will not follow changes", error)
        self._sleep = netwatch.SuspendWatch(loop, self.on_resume)
        # dbus-fast's import (~0.1 s) must not hold up the first packets through the tunnel
        self._logind_start = loop.call_later(LOGIND_DELAY, self._sleep.start_logind)

    def close(self) -> None:
        if self._logind_start is not None:
            self._logind_start.cancel()
        if self._watch is not None:
            self._watch.close()
        if self._sleep is not None:
            self._sleep.close()

    # --- the gateway's host route ---

    def _tun_index(self) -> Optional[int]:
        tun = self.tunnel.tun
        try:
            return socket.if_nametoindex(tun.name) if tun is not None else None
        except OSError:
            return None

    def _ours(self, route: dict) -> bool:
        """A route this tunnel added (its TUN routes, the gateway's host route)."""
        if route.get("RTA_OIF") is not None and route.get("RTA_OIF") == self._tun_index():
            return True
        for spec in self.tunnel.netconfig.journal.routes:
            if (spec.get("dst") == route.get("RTA_DST") and spec.get("dst_len") == route.get("dst_len")
                    and spec.get("oif") == route.get("RTA_OIF")
                    and spec.get("priority", 0) == (route.get("RTA_PRIORITY") or 0)):
                return True
        return False

    def find_path(self, address: str) -> Optional[netwatch.GatewayPath]:
        return netwatch.gateway_path(self.tunnel.netconfig.ipr, ipaddress.ip_address(address),
                                     self._ours)

    def pin(self, address: str, path: Optional[netwatch.GatewayPath] = None) -> None:
        """Hold `address` on the path it takes outside the tunnel (dropping an older pin)."""
        netconfig = self.tunnel.netconfig
        if self._sleep is None:
            self.start()
        path = path or self.find_path(address)
        if self.pinned is not None:
            netconfig.unpin_gateway(ipaddress.ip_address(self.pinned))
        if path is None:  # no route outside the tunnel's: the kernel's current one
            netconfig.pin_gateway(ipaddress.ip_address(address))
            self.pinned, self.path = address, None
            return
        netconfig.pin_gateway(ipaddress.ip_address(address),
                              {"oif": path.oif, "gateway": path.nexthop})
        self.pinned, self.path = address, path

    # --- network changes ---

    def _ignore(self, change: netwatch.Change) -> bool:
        if change.ifindex is not None and change.ifindex == self._tun_index():
            return True
        if change.kind in (netwatch.RTM_NEWROUTE, netwatch.RTM_DELROUTE):
            if change.table != netwatch.MAIN_TABLE:
                return True  # the local table follows address changes, seen anyway
            if self.pinned is not None and change.destination == self.pinned:
                return True  # our own host route
        return False

    def on_network_change(self) -> None:
        tunnel = self.tunnel
        gateway = self.pinned or tunnel.gateway_address
        if not gateway or tunnel.netconfig is None or tunnel.stopping:
            return
        try:
            path = self.find_path(gateway)
            if path == self.path:
                return
            if path is None:
                tunnel.progress.say(f"no route to the gateway {gateway}: waiting for the network")
                return
            self.pin(gateway, path)
        except OSError as error:
            log.warning("re-pinning the gateway's route failed: %s", error)
            return
        finally:
            tunnel.netconfig.release()
        self.moves += 1
        self.moved_at = tunnel.loop.time()
        ifname = _ifname(path.oif)
        session = tunnel.session
        if tunnel.status.state != "up" or session is None:
            tunnel.progress.say(f"network changed: the gateway is reached via {ifname} "
                                f"from {path.source}")
            return
        if session.mobike and tunnel.status.dataplane == "userspace":
            tunnel.progress.say(f"network changed: now via {ifname} from {path.source}; "
                                f"moving the IKE_SA (MOBIKE)")
            session.update_addresses(path.source, tunnel.now())
            tunnel._pump()
        else:  # the kernel plane's SAs hold the old address: not moved yet, so reconnect
            why = "the gateway has no MOBIKE" if not session.mobike else "kernel SAs are not moved"
            tunnel.progress.say(f"network changed: now via {ifname} from {path.source}; "
                                f"{why}: reconnecting at once")
            self.reconnect_now("the network changed")

    def on_addresses_updated(self, event) -> None:
        """The gateway answered our UPDATE_SA_ADDRESSES (ike.events.AddressesUpdated)."""
        tunnel = self.tunnel
        if event.refused:
            tunnel.progress.say(f"{event.refused}: reconnecting")
            return self.reconnect_now(event.refused)
        if event.nat_detected != tunnel.status.nat:
            # NAT appeared or went: ESP must switch UDP encapsulation on or off, which the data
            # planes cannot do to installed SAs yet. A new IKE_SA detects it afresh.
            tunnel.progress.say("NAT " + ("appeared" if event.nat_detected else "went away")
                                + " on the new path: reconnecting")
            return self.reconnect_now("NAT changed on the new path")
        tunnel.dataplane.set_peer((event.remote_addr[0], 4500))
        # strongSwan with kernel-libipsec cannot move its SAs: it rekeys every CHILD_SA right
        # after our update and no longer takes ESP on the old ones. Its DELETE of the old SA
        # (our usual cue to switch) came up to 4 s late in 2 of 20 runs: send on the newest SA
        # at once (and again shortly, for a rekey that follows the answer).
        self._send_on_newest_sas()
        tunnel.loop.call_later(NEWEST_SA_RECHECK, self._send_on_newest_sas)
        if event.nat_detected:
            tunnel.events._schedule_keepalive()
        tunnel.progress.say(f"the gateway follows us to {event.local_address}"
                            + (" (behind NAT)" if event.nat_detected else ""))

    def _send_on_newest_sas(self) -> None:
        tunnel = self.tunnel
        newest: dict = {}
        for entry in tunnel.children.entries():
            best = newest.get(entry.child_id)
            if best is None or entry.installed_at > best.installed_at:
                newest[entry.child_id] = entry
        for entry in newest.values():
            try:
                tunnel.dataplane.activate_outbound(entry.spi_in)
            except (KeyError, OSError):
                pass  # gone meanwhile

    def reconnect_now(self, reason: str) -> None:
        """A new IKE_SA at once; the old one gets a DELETE, best effort."""
        tunnel = self.tunnel
        session = tunnel.session
        self._retry_until = tunnel.loop.time() + RETRY_AT_ONCE_WINDOW
        if session is not None:
            session.close()
            tunnel._pump()
        from client.failure import Failure, FailureKind

        # TUN, routes, DNS stay; NM is not told
        tunnel.events._tunnel_lost(Failure(FailureKind.TUNNEL_LOST, reason), report=False)

    def take_peer_dead(self) -> bool:
        """Whether the lost tunnel's gateway stopped answering (then: the next gateway of the
        list, without back-off); clears the flag."""
        dead, self.peer_dead = self.peer_dead, False
        if dead:
            self._retry_until = self.tunnel.loop.time() + RETRY_AT_ONCE_WINDOW
        return dead

    def retry_at_once(self) -> bool:
        """Whether run() should reconnect without its back-off (a path change, a resume)."""
        return self.tunnel.loop.time() < self._retry_until

    # --- every address of a host name ---

    def resolve(self, host: str, port: int, family: int) -> str:
        """The address of `host` to try now (blocking: run it in an executor). A name's
        addresses of the tunnel's family are tried in turn (`next_address()`); the lookup is
        repeated when the turn comes back to the first."""
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        index = self._address_index.get(host, 0)
        if index == 0 or host not in self._addresses:
            try:
                infos = socket.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
            except socket.gaierror as error:
                raise ConnectionError(f"cannot resolve gateway {host}: {error.strerror}") from None
            self._addresses[host] = list(dict.fromkeys(info[4][0] for info in infos))
            index = self._address_index[host] = 0
        return self._addresses[host][index]

    def next_address(self, host: str) -> bool:
        """Move to the next address of `host`; False (and back to the first) if none is left."""
        index = self._address_index.get(host, 0) + 1
        if index < len(self._addresses.get(host, ())):
            self._address_index[host] = index
            return True
        self._address_index[host] = 0
        return False

    # --- sleep ---

    def on_resume(self, slept: float) -> None:
        tunnel = self.tunnel
        self._retry_until = tunnel.loop.time() + RETRY_AT_ONCE_WINDOW
        tunnel.progress.say("resumed" + (f" after {slept:.0f} s asleep" if slept else "")
                            + ": checking that the gateway still knows us")
        self.on_network_change()  # the network may differ after a sleep
        session = tunnel.session
        if session is not None and tunnel.status.state == "up":
            session.check_liveness(tunnel.now())
            tunnel._pump()


def _ifname(index: int) -> str:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"interface {index}"
