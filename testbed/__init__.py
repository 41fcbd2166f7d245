"""Cygnet's strongSwan testbed: network namespaces, a real charon gateway, a LAN behind it.

See README.md in this directory. Everything here needs root, iproute2, nftables and
strongSwan 5.9.8's charon/swanctl/pki; `missing_requirements()` says what is absent.
"""

from __future__ import annotations

import os
import shutil

from .charon import Charon, CharonSettings
from .gateway import (DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS, EAP_IDENTITIES,
                      PSK_IDENTITY, Gateway, GatewayOptions, gateway_config)
from .netns import CommandError, Namespace, sweep_stale_namespaces
from .pki import DOMAIN, GATEWAY_NAME, P12_PASSWORD, Credential, Pki
from .strongswan_client import METHODS, ClientOptions, StrongswanClient
from .testbed import Testbed
from .wait import wait_for
from . import topology

__all__ = [
    "Charon", "CharonSettings", "ClientOptions", "CommandError", "Credential",
    "DEFAULT_ESP_PROPOSALS", "DEFAULT_IKE_PROPOSALS", "DOMAIN", "EAP_IDENTITIES",
    "GATEWAY_NAME", "Gateway", "GatewayOptions", "METHODS", "Namespace", "P12_PASSWORD",
    "PSK_IDENTITY", "Pki", "StrongswanClient", "Testbed", "gateway_config",
    "missing_requirements", "sweep_stale_namespaces", "topology", "wait_for",
]

_REQUIRED_PROGRAMS = ("ip", "nft", "unshare", "swanctl", "pki")


def missing_requirements() -> list[str]:
    """Why the testbed cannot run here (empty list: it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not root (network namespaces need root)")
    from .charon import CHARON
    if not os.access(CHARON, os.X_OK):
        reasons.append(f"strongSwan charon missing at {CHARON}")
    for program in _REQUIRED_PROGRAMS:
        if shutil.which(program) is None:
            reasons.append(f"program {program!r} not found")
    return reasons
