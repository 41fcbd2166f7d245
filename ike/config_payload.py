"""Configuration payload: our CFG_REQUEST and the gateway's CFG_REPLY (RFC 7296 §3.15).

The client asks for a virtual address and DNS servers by sending empty attributes
(§3.15.1 allows zero-length values in a request); the gateway fills them in.
"""

from __future__ import annotations

import ipaddress

from .constants import CfgType, ConfigAttr
from .events import ConfigReceived
from .payloads import CP, ConfigAttribute


def build_request(settings) -> CP:
    """CP(CFG_REQUEST) with one empty attribute per item the settings ask for."""
    wanted = [
        (settings.request_ip4, ConfigAttr.INTERNAL_IP4_ADDRESS),
        (settings.request_ip6, ConfigAttr.INTERNAL_IP6_ADDRESS),
        (settings.request_dns4, ConfigAttr.INTERNAL_IP4_DNS),
        (settings.request_dns6, ConfigAttr.INTERNAL_IP6_DNS),
        (settings.request_domains, ConfigAttr.INTERNAL_DNS_DOMAIN),
    ]
    attributes = [ConfigAttribute(attr, _requested_value(settings, attr)) for on, attr in wanted
                  if on]
    return CP(CfgType.REQUEST, attributes)


def _requested_value(settings, attr) -> bytes:
    """Empty (anything will do), or the address we ask to keep (§3.15.1; IPv6 with its prefix
    length, §3.15.1 INTERNAL_IP6_ADDRESS)."""
    for interface in getattr(settings, "requested_addresses", ()):
        if attr == ConfigAttr.INTERNAL_IP4_ADDRESS and interface.version == 4:
            return interface.ip.packed
        if attr == ConfigAttr.INTERNAL_IP6_ADDRESS and interface.version == 6:
            return interface.ip.packed + bytes([interface.network.prefixlen])
    return b""


def parse_reply(cp: CP) -> ConfigReceived:
    """Turn CFG_REPLY attributes into a ConfigReceived event.

    Malformed values (wrong lengths) are skipped rather than fatal: a gateway quirk in one
    attribute must not cost the user the whole tunnel.
    """
    ip4: list[ipaddress.IPv4Address] = []
    netmask_prefix = 32
    addresses: list = []
    dns: list = []
    domains: list[str] = []
    other: list[tuple[int, bytes]] = []
    for attribute in cp.attributes:
        kind, value = int(attribute.type), bytes(attribute.value)
        if kind == ConfigAttr.INTERNAL_IP4_ADDRESS and len(value) == 4:
            ip4.append(ipaddress.IPv4Address(value))
        elif kind == ConfigAttr.INTERNAL_IP4_NETMASK and len(value) == 4:
            try:
                netmask_prefix = ipaddress.IPv4Network(
                    f"0.0.0.0/{ipaddress.IPv4Address(value)}").prefixlen
            except ValueError:
                pass
        elif kind == ConfigAttr.INTERNAL_IP6_ADDRESS and len(value) == 17:
            # 16 address bytes then the prefix length (strongSwan sends 64 even for a /120 pool)
            prefix = min(value[16], 128)
            addresses.append(ipaddress.IPv6Interface((ipaddress.IPv6Address(value[:16]), prefix)))
        elif kind == ConfigAttr.INTERNAL_IP4_DNS and len(value) == 4:
            dns.append(ipaddress.IPv4Address(value))
        elif kind == ConfigAttr.INTERNAL_IP6_DNS and len(value) == 16:
            dns.append(ipaddress.IPv6Address(value))
        elif kind == ConfigAttr.INTERNAL_DNS_DOMAIN and value:
            domains.append(value.decode("ascii", "replace"))
        elif kind in (ConfigAttr.INTERNAL_IP4_ADDRESS, ConfigAttr.INTERNAL_IP6_ADDRESS,
                      ConfigAttr.INTERNAL_IP4_DNS, ConfigAttr.INTERNAL_IP6_DNS,
                      ConfigAttr.INTERNAL_IP4_NETMASK, ConfigAttr.INTERNAL_DNS_DOMAIN):
            continue  # malformed known attribute: skip
        else:
            other.append((kind, value))
    v4 = [ipaddress.IPv4Interface((a, netmask_prefix)) for a in ip4]
    return ConfigReceived(addresses=tuple(v4 + addresses), dns_servers=tuple(dns),
                          domains=tuple(domains), other=tuple(other))


def build_reply(request: CP, ip4=None, ip6=None, dns=(), domains=(), extra=()) -> CP:
    """CFG_REPLY answering `request` (test responder; strongSwan answers only what was asked
    for, except extra attributes such as INTERNAL_IP4_SUBNET)."""
    asked = {int(a.type) for a in request.attributes}
    attributes = []
    if ip4 is not None and ConfigAttr.INTERNAL_IP4_ADDRESS in asked:
        attributes.append(ConfigAttribute(ConfigAttr.INTERNAL_IP4_ADDRESS,
                                          ipaddress.IPv4Address(ip4).packed))
    if ip6 is not None and ConfigAttr.INTERNAL_IP6_ADDRESS in asked:
        attributes.append(ConfigAttribute(ConfigAttr.INTERNAL_IP6_ADDRESS,
                                          ipaddress.IPv6Address(ip6).packed + bytes([64])))
    for server in dns:
        server = ipaddress.ip_address(server)
        kind = ConfigAttr.INTERNAL_IP4_DNS if server.version == 4 else ConfigAttr.INTERNAL_IP6_DNS
        if kind in asked:
            attributes.append(ConfigAttribute(kind, server.packed))
    if ConfigAttr.INTERNAL_DNS_DOMAIN in asked:
        attributes.extend(ConfigAttribute(ConfigAttr.INTERNAL_DNS_DOMAIN, d.encode())
                          for d in domains)
    attributes.extend(ConfigAttribute(kind, value) for kind, value in extra)
    return CP(CfgType.REPLY, attributes)
