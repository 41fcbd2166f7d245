"""REDIRECT notify data (RFC 5685 §4.2, §4.3).

  GW Ident Type (1 byte) | GW Ident Len (1 byte) | New Responder GW Identity | [Nonce Data]

In the IKE_SA_INIT response the initiator's nonce follows (so a forged REDIRECT cannot be
replayed against another exchange); in IKE_AUTH and INFORMATIONAL it is absent.
"""

from __future__ import annotations

import ipaddress

GW_IPV4 = 1
GW_IPV6 = 2
GW_FQDN = 3


class RedirectError(ValueError):
    pass


def encode_redirect(gateway: str, nonce: bytes = b"") -> bytes:
    try:
        address = ipaddress.ip_address(gateway)
        kind = GW_IPV4 if address.version == 4 else GW_IPV6
        ident = address.packed
    except ValueError:
        kind, ident = GW_FQDN, gateway.encode("ascii")
    return bytes([kind, len(ident)]) + ident + nonce


def decode_redirect(data: bytes) -> tuple[str, bytes]:
    """Return (gateway text, nonce data)."""
    if len(data) < 2 or len(data) < 2 + data[1]:
        raise RedirectError("REDIRECT notify too short")
    kind, length = data[0], data[1]
    ident, nonce = data[2:2 + length], data[2 + length:]
    if kind == GW_IPV4 and length == 4:
        return str(ipaddress.IPv4Address(ident)), nonce
    if kind == GW_IPV6 and length == 16:
        return str(ipaddress.IPv6Address(ident)), nonce
    if kind == GW_FQDN and length:
        try:
            return ident.decode("ascii"), nonce
        except UnicodeDecodeError:
            raise RedirectError("REDIRECT gateway name is not ASCII") from None
    raise RedirectError(f"REDIRECT gateway identity type {kind} length {length} is invalid")
