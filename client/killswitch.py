"""Leak protection with nftables: the kill switch and blocked address families.

Each tunnel that needs it gets one table of its own, ``inet cygnet-NAME``, with an output and a
forward chain. For every *guarded* address family, a packet may leave only
- into the tunnel interface, or over loopback;
- as IKE (UDP to the profile's port, 500 and 4500) or ESP (IP protocol 50) to a gateway
  address in the table's sets (the engine adds addresses learned from REDIRECT and gateway
  lists before it contacts them);
- as DHCP / DHCPv6 to a server, or as neighbour discovery, router solicitation and MLD (the
  uplink keeps its lease and its neighbours);
- to the local networks, only with ``allow_lan``;
everything else of that family is dropped before it reaches a network device.

The kill switch guards both families from ``cygnet up`` until ``cygnet down``: the table is
made before the engine sends anything, stays while the tunnel reconnects, and stays after the
engine failed for good or was killed (it is kernel state, not the engine's) until the next
``cygnet up`` replaces it or ``cygnet down`` removes it. Without the kill switch, a family the
tunnel does not carry is guarded once the first CHILD_SA is up (``block_ipv4``/``block_ipv6``,
on by default for a full tunnel), and the table goes with the engine.

Why the ``nft`` tool with JSON (``nft -j -f -``): JSON is nftables' documented machine
interface (libnftables-json(5)) and needs only the nftables package the testbed already uses.
The Python binding (``import nftables``) wraps the same JSON through ctypes, but Debian ships
it only for the system's Python (python3-nftables), not on PyPI, so a virtualenv cannot
import it without reaching into /usr/lib/python3/dist-packages; pyroute2's nftables support
is partial and undocumented. One ``nft`` run applies a whole table as one transaction
(add, delete, add: the kernel never sees a half-made table or a gap between old and new).
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass, field

TABLE_PREFIX = "cygnet-"
# Every Cygnet tunnel's interface (TUN "cygnetN", XFRM "cygxNNNN"): traffic into another
# tunnel is no leak, so several tunnels with a kill switch do not block each other.
TUNNEL_INTERFACES = ("cygnet*", "cygx*")
NFT = "nft"
IKE_PORTS = (500, 4500)
# Beyond the local networks, allow_lan lets out what local discovery uses.
LAN_EXTRA = ("224.0.0.0/4", "255.255.255.255/32", "fe80::/10", "ff00::/8")
ICMPV6_LINK = ("nd-router-solicit", "nd-neighbor-solicit", "nd-neighbor-advert",
               "mld-listener-report", "mld2-listener-report")
FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}


class FirewallError(OSError):
    """nft refused or is missing; the message says which."""


def table_name(tunnel: str) -> str:
    return TABLE_PREFIX + tunnel


@dataclass
class Guard:
    """What one table lets out. `families`: 4 and/or 6, the families guarded."""

    families: frozenset
    interface: str
    gateways: set = field(default_factory=set)  # ip_address objects
    ports: tuple = IKE_PORTS
    lan: tuple = ()  # ip_network objects; empty unless allow_lan


def _match(left, right, op="==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, name: str) -> dict:
    return {"payload": {"protocol": protocol, "field": name}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _prefixes(networks) -> dict:
    return {"set": [{"prefix": {"addr": str(n.network_address), "len": n.prefixlen}}
                    for n in networks]}


def _rules(guard: Guard, chain: str) -> list[list]:
    """The expressions of each rule of `chain` ("output" or "forward"), in order."""
    accept = {"accept": None}
    rules = []
    if chain == "output":
        rules.append([_match(_meta("oifname"), "lo"), accept])
    for name in dict.fromkeys((guard.interface, *TUNNEL_INTERFACES)):
        rules.append([_match(_meta("oifname"), name), accept])
    if chain == "output":
        for ip, gw_set in (("ip", "@gw4"), ("ip6", "@gw6")):
            rules.append([_match(_payload(ip, "daddr"), gw_set),
                          _match(_payload("udp", "dport"), {"set": sorted(set(guard.ports))}), accept])
            rules.append([_match(_payload(ip, "daddr"), gw_set),
                          _match(_meta("l4proto"), "esp"), accept])
        rules.append([_match(_meta("nfproto"), "ipv4"), _match(_payload("udp", "sport"), 68),
                      _match(_payload("udp", "dport"), 67), accept])
        rules.append([_match(_meta("nfproto"), "ipv6"), _match(_payload("udp", "sport"), 546),
                      _match(_payload("udp", "dport"), 547), accept])
        rules.append([_match(_meta("nfproto"), "ipv6"),
                      _match(_payload("icmpv6", "type"), {"set": list(ICMPV6_LINK)}), accept])
    for version, ip in ((4, "ip"), (6, "ip6")):
        lan = [n for n in guard.lan if n.version == version]
        if lan:
            rules.append([_match(_payload(ip, "daddr"), _prefixes(lan)), accept])
    for version in sorted(guard.families):
        rules.append([_match(_meta("nfproto"), f"ipv{version}"), {"drop": None}])
    return rules


def ruleset(table: str, guard: Guard) -> dict:
    """The JSON batch that replaces `table` with `guard`'s table in one transaction."""
    t = {"family": "inet", "table": table}
    commands: list = [
        {"add": {"table": {"family": "inet", "name": table}}},  # so that the delete finds one
        {"delete": {"table": {"family": "inet", "name": table}}},
        {"add": {"table": {"family": "inet", "name": table}}},
        {"add": {"set": {**t, "name": "gw4", "type": "ipv4_addr"}}},
        {"add": {"set": {**t, "name": "gw6", "type": "ipv6_addr"}}},
    ]
    for name, version in (("gw4", 4), ("gw6", 6)):
        elements = sorted(str(a) for a in guard.gateways if a.version == version)
        if elements:
            commands.append({"add": {"element": {**t, "name": name, "elem": elements}}})
    for chain in ("output", "forward"):
        commands.append({"add": {"chain": {**t, "name": chain, "type": "filter", "hook": chain,
                                           "prio": 0, "policy": "accept"}}})
        for expr in _rules(guard, chain):
            commands.append({"add": {"rule": {**t, "chain": chain, "expr": expr}}})
    return {"nftables": commands}


def _nft_program() -> str:
    """`nft` from PATH, else from the sbin directories (a plugin started by NetworkManager
    may get a PATH without them)."""
    import os

    if os.sep in NFT:
        return NFT
    for directory in (*os.get_exec_path(), "/usr/sbin", "/sbin"):
        candidate = os.path.join(directory, NFT)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return NFT


def _nft(batch: dict | None, *args: str) -> str:
    argv = [_nft_program(), "-j", *args] + (["-f", "-"] if batch is not None else [])
    try:
        done = subprocess.run(argv, input=json.dumps(batch) if batch is not None else None,
                              capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise FirewallError("the nft command is missing (install nftables)") from None
    except subprocess.TimeoutExpired:
        raise FirewallError("nft did not answer within 10 s") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
        raise FirewallError(f"nftables refused the rules: {first}")
    return done.stdout


def apply(table: str, guard: Guard) -> None:
    _nft(ruleset(table, guard))


def add_gateway(table: str, address) -> None:
    name = "gw4" if address.version == 4 else "gw6"
    _nft({"nftables": [{"add": {"element": {"family": "inet", "table": table, "name": name,
                                            "elem": [str(address)]}}}]})


def gateways_of(table: str) -> set:
    """The gateway addresses `table` lets IKE/ESP reach."""
    found = set()
    for name in ("gw4", "gw6"):
        try:
            listing = json.loads(_nft(None, "list", "set", "inet", table, name))
        except (FirewallError, ValueError):
            continue
        for item in listing.get("nftables", []):
            for element in item.get("set", {}).get("elem", []):
                if isinstance(element, str):
                    found.add(ipaddress.ip_address(element))
    return found


def share_gateways(table: str, addresses) -> None:
    """Let the other Cygnet tables (other tunnels' kill switches) pass IKE/ESP to `addresses`
    too: otherwise the first tunnel's block would keep a second one from its gateway."""
    addresses = list(addresses)
    for other in tables():
        if other != table and addresses:
            try:
                _nft({"nftables": [
                    {"add": {"element": {"family": "inet", "table": other,
                                         "name": "gw4" if a.version == 4 else "gw6",
                                         "elem": [str(a)]}}} for a in addresses]})
            except FirewallError:
                continue  # that table went meanwhile


def tables() -> list[str]:
    """Names of Cygnet's tables in this network namespace."""
    listing = json.loads(_nft(None, "list", "tables") or '{"nftables": []}')
    return [item["table"]["name"] for item in listing.get("nftables", [])
            if "table" in item and item["table"].get("family") == "inet"
            and item["table"]["name"].startswith(TABLE_PREFIX)]


def remove(table: str) -> bool:
    """Delete `table`; False if there was none."""
    if table not in tables():
        return False
    _nft({"nftables": [{"delete": {"table": {"family": "inet", "name": table}}}]})
    return True


def leftovers(name: str | None, running: list[str]) -> list[str]:
    """Tunnel names whose table outlived their engine (a failed or killed run), optionally
    only `name`'s."""
    names = [t[len(TABLE_PREFIX):] for t in tables()]
    return [n for n in names if n not in running and (name is None or n == name)]


def local_networks(exclude: str = "") -> tuple:
    """The networks of this namespace's addresses (not loopback's nor `exclude`'s), for
    allow_lan, plus link-local, multicast and broadcast."""
    try:
        done = subprocess.run(["ip", "-j", "address", "show"], capture_output=True, text=True,
                              timeout=10, check=True)
        links = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        links = []
    networks = []
    for link in links:
        if link.get("ifname") in ("lo", exclude):
            continue
        for info in link.get("addr_info", []):
            try:
                networks.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network)
            except (KeyError, ValueError):
                continue
    networks += [ipaddress.ip_network(n) for n in LAN_EXTRA]
    return tuple(dict.fromkeys(networks))


def families_to_block(profile, carried: set[int]) -> frozenset:
    """The families to drop outside the tunnel when a CHILD_SA carries `carried`: those it
    does not carry, if block_ipvN says so; unset, on a full tunnel (a remote_ts of /0: the
    user wants everything in the tunnel) and not on a split one."""
    full = any(n.prefixlen == 0 for n in profile.remote_ts)
    wanted = set()
    for family, key in ((4, "block_ipv4"), (6, "block_ipv6")):
        choice = getattr(profile, key, None)
        if family not in carried and (choice or (choice is None and full)):
            wanted.add(family)
    return frozenset(wanted)


def _lookup(host: str, port: int) -> str | None:
    """The first address of `host` (an address passes through); None if it does not resolve."""
    import socket

    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0]
    except (socket.gaierror, IndexError):
        return None


class LeakGuard:
    """The engine's side: which families are guarded when, and the table that says so.

    open(addresses)       the kill switch goes on (before the engine sends anything)
    allow_gateway(addr)   before contacting a gateway address
    tunnel_up(families)   a CHILD_SA carries these families: guard the others if wanted
    close(failed)         the engine ends; the kill switch stays if it failed
    """

    def __init__(self, profile, interface: str, say=print):
        self.profile = profile
        self.table = table_name(profile.name)
        self.interface = interface
        self.say = say
        self.guard: Guard | None = None
        self.gateways: set = set()  # every gateway address contacted or about to be
        self.resolved: dict[str, str] = {}  # gateway name -> address, looked up before the block

    @property
    def kill_switch(self) -> bool:
        return bool(getattr(self.profile, "kill_switch", False))

    @property
    def blocked(self) -> list[str]:
        """"IPv4"/"IPv6" for each family guarded (for `cygnet status`)."""
        return [FAMILY_NAMES[f] for f in sorted(self.guard.families)] if self.guard else []

    def summary(self) -> str:
        """One line for the tray: what is guarded now."""
        if self.guard is None:
            return ""
        if self.kill_switch:
            return "kill switch on" + (" (local network allowed)" if self.guard.lan else "")
        return f"{' and '.join(self.blocked)} blocked outside the tunnel"

    def open(self, hosts) -> bool:
        """Clear what a previous run left; switch the kill switch on. True if a leftover
        table was cleared or replaced.

        With the kill switch, the gateways' names are looked up first (the block would stop
        the lookups) and `resolved` keeps the answers for the engine's attempts."""
        try:
            left = self.table in tables()
        except FirewallError:
            if self.kill_switch:
                raise
            return False  # no nftables here: nothing can have been left, nothing to guard yet
        if not self.kill_switch:
            if left:
                remove(self.table)
            return left
        lan = local_networks(exclude=self.interface) if getattr(self.profile, "allow_lan", False) else ()
        for host in hosts:
            address = _lookup(host, self.profile.port)
            if address is not None:
                self.resolved[host] = address
                self.gateways.add(ipaddress.ip_address(address))
        share_gateways(self.table, self.gateways)
        self._add_other_tunnels_gateways()
        self.guard = Guard(frozenset((4, 6)), self.interface, self.gateways,
                           tuple(sorted({*IKE_PORTS, self.profile.port})), lan)
        apply(self.table, self.guard)
        self.say("kill switch on: until `cygnet down`, traffic leaves only through the tunnel"
                 + (" or to the local network" if lan else ""))
        return left

    def _add_other_tunnels_gateways(self) -> None:
        """Our table lets the other tunnels reach their gateways (see share_gateways)."""
        for other in tables():
            if other != self.table:
                self.gateways |= gateways_of(other)

    def allow_gateway(self, address: str) -> None:
        address = ipaddress.ip_address(address)
        if address not in self.gateways:
            self.gateways.add(address)
            if self.guard is not None:
                add_gateway(self.table, address)
            try:
                share_gateways(self.table, [address])
            except FirewallError:
                pass  # no nftables: no other table to tell

    def tunnel_up(self, carried: set[int]) -> None:
        if self.kill_switch:
            return  # both families are guarded already
        families = families_to_block(self.profile, carried)
        if self.guard is not None and self.guard.families == families:
            return
        if not families:
            if self.guard is not None:
                remove(self.table)
                self.guard = None
            return
        try:
            self._add_other_tunnels_gateways()
        except FirewallError:
            pass  # reported by apply() below
        guard = Guard(families, self.interface, self.gateways,
                      tuple(sorted({*IKE_PORTS, self.profile.port})))
        try:
            apply(self.table, guard)
        except FirewallError as error:
            asked = [f for f in families if getattr(self.profile, f"block_ipv{f}", None)]
            if asked:
                raise
            # the automatic block of a full tunnel is worth a warning, not the tunnel
            self.say(f"cannot block {' and '.join(FAMILY_NAMES[f] for f in sorted(families))} "
                     f"outside the tunnel: {error}")
            return
        self.guard = guard
        self.say(f"blocked outside the tunnel: {', '.join(self.blocked)} (the tunnel does not carry it)")

    def close(self, failed: bool) -> None:
        if self.guard is None:
            return
        if failed and self.kill_switch:
            self.say(f"kill switch stays on: traffic is blocked until `cygnet down {self.profile.name}`")
            return
        try:
            remove(self.table)
        except FirewallError as error:
            self.say(f"cannot remove the firewall table {self.table}: {error}")
        self.guard = None
