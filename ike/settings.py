"""Configuration of one IkeSession (one connection to one gateway).

Defaults follow strongSwan 5.9 (charon / swanctl) so that a Cygnet client and a strongSwan
client behave alike against the same gateway. Secrets are repr=False.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .proposals import DEFAULT_ESP, DEFAULT_IKE
from .retransmission import RetransmissionPolicy

ALL_IPV4 = ipaddress.ip_network("0.0.0.0/0")
ALL_IPV6 = ipaddress.ip_network("::/0")



@dataclass
class AuthSettings:
    """How we authenticate ourselves. method: "psk", "pubkey" or "eap".

    The gateway always proves itself with a certificate for "pubkey" and "eap" (the usual
    remote-access setup) and with the PSK for "psk".
    """

    method: str = "psk"
    psk: bytes = field(default=b"", repr=False)
    # pubkey: our key and certificate (cryptography objects)
    private_key: Any = field(default=None, repr=False)
    certificate: Any = None
    intermediates: tuple = ()  # CA certificates between ours and the root, sent as CERT payloads
    # eap: method name(s) for ike/eap.py ("md5", "mschapv2", "tls", "gtc", "peap", "ttls"; a
    # tuple: the server chooses among them); identity defaults to local_id
    eap_method: Any = "mschapv2"
    eap_identity: Optional[str] = None
    eap_password: str = field(default="", repr=False)
    eap_tls: Any = field(default=None, repr=False)  # passed through to EapClient(tls=...)
    eap_tunnel: Any = None  # PEAP/TTLS: passed through to EapClient(tunnel=...)
    # method "pubkey" followed by a second, EAP round (RFC 4739, strongSwan's
    # "pubkey" + "eap" rounds): the certificate proves the machine, EAP the user
    eap_after_certificate: bool = False
    # gateway certificate validation (pubkey and eap)
    trust_anchors: tuple = ()
    send_certreq: bool = True
    # the EAP-Identity response instead of eap_identity (PEAP/TTLS/TLS: an anonymous one)
    eap_outer_identity: Optional[str] = None
    # RFC 5998: ask the gateway to authenticate by a mutual EAP method alone (ike/eap_only.py)
    eap_only: bool = False
    # wait for the owner's revocation verdict on the gateway's chain (ike/revocation_gate.py)
    check_revocation: bool = False


@dataclass
class Settings:
    """Everything an IkeSession needs to reach and authenticate to one gateway."""

    remote_address: str  # gateway IP address (the engine resolves names first)
    local_address: str = "0.0.0.0"  # our source address, for NAT detection (RFC 7296 §2.23)
    remote_port: int = 500
    local_port: int = 500
    local_id: str = ""  # IDi, e.g. "carol@example.org"; empty: our address
    remote_id: Optional[str] = None  # expected gateway identity; sent as IDr when set
    send_remote_id: bool = True
    # The name or address the user dialled. With no remote_id the gateway must prove it (a
    # subjectAltName of its certificate; its IDr with a PSK); remote_id "%any" accepts anyone.
    gateway_name: str = ""
    auth: AuthSettings = field(default_factory=AuthSettings)

    # strongSwan syntax, proposals separated by commas (ike/proposals.py)
    ike_proposals: str = DEFAULT_IKE
    esp_proposals: str = DEFAULT_ESP

    # CHILD_SA traffic selectors: a virtual-IP client proposes everything locally and lets
    # the gateway narrow both sides (RFC 7296 §2.9).
    local_ts: tuple = (ALL_IPV4, ALL_IPV6)
    remote_ts: tuple = (ALL_IPV4, ALL_IPV6)

    # CP(CFG_REQUEST) attributes (RFC 7296 §3.15, RFC 8598)
    request_ip4: bool = True
    request_ip6: bool = False
    request_dns4: bool = True
    request_dns6: bool = False
    request_domains: bool = True

    initial_contact: bool = True
    force_encapsulation: bool = False  # float to 4500 and use ESP-in-UDP even without NAT
    fragmentation: bool = True  # offer RFC 7383 IKE fragmentation
    mobike: bool = True  # offer MOBIKE (RFC 4555): move the IKE_SA when our address changes
    fragment_size: int = 1280  # largest IKE datagram we send (strongSwan: charon.fragment_size)

    retransmission: RetransmissionPolicy = field(default_factory=RetransmissionPolicy)
    dpd_delay: float = 30.0  # idle seconds before a liveness check; 0 disables
    # The liveness check's own retransmissions (None: `retransmission`'s; a shorter one finds
    # a dead gateway sooner, see ike/mobike.py)
    dpd_retransmission: Optional[RetransmissionPolicy] = None

    # Lifetimes, seconds (swanctl defaults): rekey at rekey_time - random(0, rand_time),
    # hard expiry at life_time (default rekey_time * 1.1)
    ike_rekey_time: float = 14400.0
    ike_rand_time: float = 1440.0
    child_rekey_time: float = 3600.0
    child_rand_time: float = 360.0
    child_life_time: float = 3960.0
    # Periodic reauthentication (swanctl's reauth_time): 0 is off, as in swanctl. Once
    # reauth_time - random(0, reauth_rand_time) has passed the session reports
    # ReauthenticationRequested; the gateway's AUTH_LIFETIME (RFC 4478) is honoured either way.
    # reauth_rand_time None: 10 % of reauth_time (swanctl's rand_time default).
    reauth_time: float = 0.0
    reauth_rand_time: Optional[float] = None

    # Deterministic tests inject their own source of randomness.
    random_bytes: Callable[[int], bytes] = field(default=os.urandom, repr=False)

    @property
    def remote_addr(self) -> tuple[str, int]:
        return (self.remote_address, self.remote_port)
