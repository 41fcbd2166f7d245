"""Traffic selectors <-> ipaddress networks, and narrowing (RFC 7296 §2.9, §3.13).

A TS payload holds address *ranges*; the rest of Cygnet thinks in networks. A range that is
not a single CIDR block becomes several networks (ipaddress.summarize_address_range).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from .payloads import TrafficSelector

ALL_PORTS = (0, 65535)


def _address(value) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A TS address field may be packed bytes or an ipaddress object."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    return ipaddress.ip_address(bytes(value) if not isinstance(value, str) else value)


def selector_networks(selector: TrafficSelector) -> list:
    """The CIDR networks covering one selector's address range (protocol/ports ignored)."""
    start = _address(selector.start_addr)
    end = _address(selector.end_addr)
    if start.version != end.version or int(end) < int(start):
        return []
    return list(ipaddress.summarize_address_range(start, end))


def networks_of(selectors: Iterable[TrafficSelector]) -> tuple:
    """All networks covered by a TS payload's selectors, in order."""
    networks: list = []
    for selector in selectors:
        networks.extend(selector_networks(selector))
    return tuple(networks)


def selectors_for(networks: Iterable) -> list[TrafficSelector]:
    """One any-protocol, any-port selector per network."""
    return [TrafficSelector.from_network(ipaddress.ip_network(n)) for n in networks]


def _contains(outer: TrafficSelector, inner: TrafficSelector) -> bool:
    if outer.ts_type != inner.ts_type:
        return False
    if outer.ip_protocol not in (0, inner.ip_protocol):
        return False
    if not (outer.start_port <= inner.start_port and inner.end_port <= outer.end_port):
        return False
    return (int(_address(outer.start_addr)) <= int(_address(inner.start_addr))
            and int(_address(inner.end_addr)) <= int(_address(outer.end_addr)))


def is_narrowing_of(proposed: Iterable[TrafficSelector],
                    returned: Iterable[TrafficSelector]) -> bool:
    """True if every returned selector lies inside one we proposed (§2.9: the responder may
    only narrow). An empty answer is not a valid narrowing."""
    proposed = list(proposed)
    returned = list(returned)
    return bool(returned) and all(any(_contains(p, r) for p in proposed) for r in returned)


def narrow(proposed: Iterable[TrafficSelector],
           allowed: Iterable[TrafficSelector]) -> list[TrafficSelector]:
    """Responder side of §2.9: the intersections of what was proposed with what policy allows
    (used by the test responder)."""
    result = []
    for p in proposed:
        for a in allowed:
            if p.ts_type != a.ts_type:
                continue
            if p.ip_protocol and a.ip_protocol and p.ip_protocol != a.ip_protocol:
                continue
            start = max(int(_address(p.start_addr)), int(_address(a.start_addr)))
            end = min(int(_address(p.end_addr)), int(_address(a.end_addr)))
            low_port = max(p.start_port, a.start_port)
            high_port = min(p.end_port, a.end_port)
            if start > end or low_port > high_port:
                continue
            version = _address(p.start_addr).version
            make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            for network in ipaddress.summarize_address_range(make(start), make(end)):
                result.append(TrafficSelector.from_network(
                    network, protocol=p.ip_protocol or a.ip_protocol,
                    ports=(low_port, high_port)))
    return result
