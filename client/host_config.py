"""What a tunnel puts on this machine besides the SAs: the interface's MTU and link state,
the pinned route to the gateway, the virtual IPs, the routes into the tunnel and DNS.

Reconnecting keeps all of it: while the tunnel is down, packets for the tunnel are dropped by
the data plane (no SA covers them) instead of leaking out of the physical interface.
"""

from __future__ import annotations

import ipaddress

DEFAULT_MTU = 1400  # libipsec's and the Android app's default: room for ESP-in-UDP headers


class HostConfig:
    def __init__(self, profile, tun, netconfig, progress, run_dir, manage_dns: bool = True):
        self.profile = profile
        self.tun = tun
        self.netconfig = netconfig
        self.progress = progress
        self.run_dir = run_dir
        self.manage_dns = manage_dns  # the NM plugin applies DNS itself (Ip4Config/Ip6Config)
        self.addresses: list = []     # virtual IPs on the interface
        self._routed: set = set()
        self._gateway_pinned = False
        self._link_configured = False  # MTU and up: done with the first CHILD_SA
        self._dns = None
        self.pin_gateway = lambda address: netconfig.pin_gateway(ipaddress.ip_address(address))

    def child_installed(self, child, gateway_address: str) -> None:
        """A CHILD_SA is in the data plane: the link comes up, the gateway's route is pinned,
        the child's remote networks are routed into the tunnel (once each)."""
        if not self._link_configured:
            self.tun.configure(mtu=self.profile.mtu or DEFAULT_MTU, ipr=self.netconfig.ipr)
            self._link_configured = True
        if not self._gateway_pinned:
            self.pin_gateway(gateway_address)  # the engine's Roaming (client/roaming.py)
            self._gateway_pinned = True
        families = {n.version for n in child.local_ts}
        for network in child.remote_ts:
            if network.version in families and network not in self._routed:
                self._route(network)
                self._routed.add(network)

    def _route(self, network) -> None:
        source = next((str(a.ip) for a in self.addresses if a.version == network.version), None)
        for route in self.netconfig.route_through(self.tun.name, network, source):
            if route.shadowed_by:  # e.g. a second tunnel to the same network
                self.progress.say(
                    f"{route.destination} is already routed through {', '.join(route.shadowed_by)}:"
                    f" that route keeps the traffic; this tunnel's (metric {route.metric})"
                    f" takes over when it goes")

    def lease_changes(self, config) -> None:
        """Before a reauthentication's configuration is applied: routes carry the old address
        as their source (and the kernel drops them with it), so a new lease routes again."""
        if set(config.addresses) != set(self.addresses):
            self._routed.clear()

    def apply(self, config, status) -> None:
        """ike.events.ConfigReceived: addresses on the interface, DNS; status updated."""
        from client.dns import DnsConfig

        wanted = list(config.addresses)
        for address in list(self.addresses):
            if address not in wanted:
                self.netconfig.remove_address(self.tun.name, address)
                self.addresses.remove(address)
                # Routes carried it as their source, and the kernel dropped them with it:
                # the next CHILD_SA (another gateway's lease after a failover) adds them again.
                self._routed = {n for n in self._routed if n.version != address.version}
        for address in wanted:
            if address not in self.addresses:
                self.netconfig.add_address(self.tun.name, address)
                self.addresses.append(address)
        status.virtual_ips = [str(a.ip) for a in self.addresses]
        status.dns = [str(s) for s in config.dns_servers]
        status.domains = list(config.domains)
        line = "virtual IP " + (", ".join(status.virtual_ips) or "none")
        if self.manage_dns and self.profile.dns and (config.dns_servers or config.domains):
            if self._dns is None:
                self._dns = DnsConfig(self.profile.name, self.tun.name, self.run_dir)
                self._dns.full_tunnel = any(n.prefixlen == 0 for n in self.profile.remote_ts)
            self._dns.apply(list(config.dns_servers), list(config.domains))
            status.dns_mode = self._dns.mode
            line += ", DNS " + " ".join(status.dns)
            if config.domains:
                line += " (search " + " ".join(config.domains) + ")"
        self.progress.say(line)

    def restore_dns(self) -> None:
        if self._dns is not None:
            self._dns.restore()
            self._dns = None
