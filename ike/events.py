"""Events an IkeSession reports to its owner (the asyncio engine in client/).

Every event is a frozen dataclass named in the past tense: it states something that has
already happened to the IKE_SA or one of its CHILD_SAs. Fields carrying key material are
declared ``field(repr=False)`` so that logging an event never leaks a key.

Order guarantees the engine and data plane rely on:
- establishment: IkeSaEstablished, then ConfigReceived (if the gateway sent a CP reply), then
  ChildSaEstablished for the first CHILD_SA;
- make-before-break (RFC 7296 §2.8): rekeying a CHILD_SA yields ChildSaEstablished(new SPIs,
  same child_id), then ChildSaRekeyed(old -> new), and later ChildSaDeleted(old SPIs) once the
  old SA is gone;
- reauthentication (RFC 4478): ReauthenticationRequested changes nothing by itself; the
  IKE_SA and its CHILD_SAs stay up until the owner closes the session (after bringing up a
  new one alongside) or the deadline passes and the gateway deletes it;
- the end: every session ends with exactly one IkeSaDeleted, preceded by the more specific
  cause if there is one (AuthenticationFailed, ProposalMismatch, Redirected,
  DeadPeerDetected) and by ChildSaDeleted for each CHILD_SA still installed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Interface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]


@dataclass(frozen=True)
class Event:
    """Base class of every session event."""


@dataclass(frozen=True)
class IkeSaEstablished(Event):
    """IKE_AUTH completed: both sides are authenticated."""

    spi_i: bytes
    spi_r: bytes
    peer_identity: str
    remote_addr: tuple[str, int]  # where IKE messages now go (port 4500 after a NAT float)
    nat_detected: bool  # NAT seen by NAT-D (or faked by the peer, or forced locally)
    proposal: str  # the chosen IKE proposal, strongSwan syntax, for logs


@dataclass(frozen=True)
class ChildSaEstablished(Event):
    """A CHILD_SA is installed on the gateway; install its mirror image locally."""

    child_id: int  # stable local handle across rekeys (like strongSwan's reqid)
    spi_in: bytes  # 4 bytes, chosen by us: the gateway sends ESP with this SPI
    spi_out: bytes  # 4 bytes, chosen by the gateway: we send ESP with this SPI
    encr_id: int
    encr_key_bits: int
    integ_id: int | None  # None for AEAD ciphers
    esn: bool
    encr_key_in: bytes = field(repr=False)
    integ_key_in: bytes = field(repr=False)
    encr_key_out: bytes = field(repr=False)
    integ_key_out: bytes = field(repr=False)
    local_ts: tuple[Network, ...] = ()
    remote_ts: tuple[Network, ...] = ()
    lifetime_soft: float = 0.0  # seconds until we rekey
    lifetime_hard: float = 0.0  # seconds until the SA must no longer be used
    udp_encapsulation: bool = False  # ESP-in-UDP on port 4500 (RFC 3948)


@dataclass(frozen=True)
class ConfigReceived(Event):
    """The gateway's CP(CFG_REPLY): virtual addresses, DNS and anything else it sent."""

    addresses: tuple[Interface, ...]  # with prefix: 10.1.0.2/32, fd00::2/64
    dns_servers: tuple[Address, ...]
    domains: tuple[str, ...]  # INTERNAL_DNS_DOMAIN (RFC 8598)
    other: tuple[tuple[int, bytes], ...] = ()  # remaining attributes by number


@dataclass(frozen=True)
class ChildSaRekeyed(Event):
    """Outbound traffic of child_id now uses the new SA; the old one still decrypts."""

    child_id: int
    old_spi_in: bytes
    old_spi_out: bytes
    new_spi_in: bytes
    new_spi_out: bytes


@dataclass(frozen=True)
class ChildSaDeleted(Event):
    """A CHILD_SA is gone on both sides: remove it from the data plane."""

    child_id: int
    spi_in: bytes
    spi_out: bytes
    reason: str


@dataclass(frozen=True)
class IkeSaRekeyed(Event):
    """The IKE_SA was replaced by a new one (RFC 7296 §2.18); CHILD_SAs moved over."""

    old_spi_i: bytes
    old_spi_r: bytes
    new_spi_i: bytes
    new_spi_r: bytes


@dataclass(frozen=True)
class IkeSaDeleted(Event):
    """The IKE_SA is finished (closed, deleted by the gateway, or unreachable)."""

    reason: str


@dataclass(frozen=True)
class GatewayCertificateVerified(Event):
    """The gateway's AUTH and certificate chain verified (DER, end entity first, trust
    anchor last). With AuthSettings.check_revocation the session now waits for
    IkeSession.revocation_checked() (ike/revocation_gate.py)."""

    chain: tuple
    # whose: "gateway" (IKE AUTH) or "EAP server" (the TLS certificate of EAP-TLS/PEAP/TTLS,
    # often a RADIUS server's)
    role: str = "gateway"


@dataclass(frozen=True)
class AuthenticationFailed(Event):
    """Authentication failed in either direction; reason is meant for the user, cause says
    which direction (one of AUTH_REJECTED, AUTH_GATEWAY, AUTH_LOCAL) for owners that act on it."""

    reason: str
    cause: str = "rejected"


AUTH_REJECTED = "rejected"  # the gateway refused our credentials (AUTHENTICATION_FAILED, EAP-Failure)
AUTH_GATEWAY = "gateway"    # the gateway did not prove the identity we expect (IDr, certificate, AUTH)
AUTH_LOCAL = "local"        # we could not produce our own AUTH (unusable key or PSK)


@dataclass(frozen=True)
class ProposalMismatch(Event):
    """The gateway accepted none of our proposals (NO_PROPOSAL_CHOSEN)."""

    offered: tuple[str, ...]  # what we offered, strongSwan syntax
    reason: str
    # False for an IKE_SA_INIT refusal: unauthenticated, possibly spoofed (RFC 7296 §2.21.1),
    # so a hint to retry later rather than a verdict
    authenticated: bool = True


@dataclass(frozen=True)
class Redirected(Event):
    """The gateway redirected us elsewhere (RFC 5685); connect again to `gateway`."""

    gateway: str  # IPv4/IPv6 address text or an FQDN


@dataclass(frozen=True)
class PeerAddressesAdded(Event):
    """The gateway announced more addresses (ADDITIONAL_IP*_ADDRESS). Recorded only:
    we never move the IKE_SA to them (they may be HA node-local addresses)."""

    addresses: tuple[Address, ...]


@dataclass(frozen=True)
class AddressesUpdated(Event):
    """MOBIKE (RFC 4555 §3.5): the gateway answered our UPDATE_SA_ADDRESSES. Unless `refused`,
    it now sends IKE and ESP to `local_address`; `remote_addr` is where we send (port 4500
    once NAT appeared); `nat_detected` says whether ESP must be UDP-encapsulated on this path."""

    local_address: str
    remote_addr: tuple[str, int]
    nat_detected: bool
    refused: str = ""  # why the gateway refused the new address (then nothing moved)


@dataclass(frozen=True)
class DeadPeerDetected(Event):
    """The gateway stopped answering (retransmissions exhausted)."""

    reason: str = "gateway unreachable"


@dataclass(frozen=True)
class ReauthenticationRequested(Event):
    """Time to authenticate again (RFC 4478; RFC 7296 §2.8.3): the gateway's AUTH_LIFETIME is
    nearly over, or our own reauth_time came. The owner brings up a new IKE_SA alongside this
    one (make-before-break) and then closes this session; nothing changed here yet."""

    deadline: float  # session time (epoch seconds) after which this IKE_SA may be deleted
    requested_by_gateway: bool  # AUTH_LIFETIME from the gateway, else our reauth_time
