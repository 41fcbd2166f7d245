"""Small socket helpers the engine, the kernel data plane and the NM plugin share."""

from __future__ import annotations

import ipaddress
import socket

IKE_PORT = 500
NAT_T_PORT = 4500  # RFC 3948: IKE behind the non-ESP marker, and ESP-in-UDP


def local_address_towards(remote: str, port: int = IKE_PORT) -> str:
    """Our source address for `remote` (for NAT detection, RFC 7296 §2.23, and as the
    identity of a tunnel without a virtual IP). A UDP connect sends nothing."""
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
        raise LookupFailed(f"cannot resolve gateway {host}: {error.strerror}") from None
    return infos[0][4][0]


class LookupFailed(ConnectionError):
    """A gateway name that does not resolve (FailureKind.LOOKUP_FAILED)."""


def gateway_family(host: str, port: int) -> int:
    """AF_INET6 if `host` is (or resolves first to) an IPv6 address, else AF_INET."""
    try:
        return socket.AF_INET6 if ":" in resolve_gateway(host, port) else socket.AF_INET
    except ConnectionError:
        return socket.AF_INET  # the first attempt reports why the name does not resolve


def udp_socket(port: int, family: int = socket.AF_INET) -> socket.socket:
    """A non-blocking UDP socket on `port` if free (IKE's well-known ports), else on any port."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    anywhere = "::" if family == socket.AF_INET6 else "0.0.0.0"
    try:
        sock.bind((anywhere, port))
    except OSError:
        sock.bind((anywhere, 0))
    return sock
