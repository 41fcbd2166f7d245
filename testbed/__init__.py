"""Cygnet's strongSwan testbed: network namespaces, a real charon gateway, a LAN behind it.

See README.md in this directory. Everything here needs root, iproute2, nftables and
strongSwan 5.9.8's charon/swanctl/pki; `missing_requirements()` says what is absent.
"""

from __future__ import annotations

import os

from .charon import Charon, CharonSettings
from .gateway import (DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS, EAP_IDENTITIES,
                      PSK_IDENTITY, Gateway, GatewayOptions, gateway_config)
from .netns import CommandError, Namespace, sweep_stale_namespaces
from .pki import DOMAIN, GATEWAY_NAME, P12_PASSWORD, Credential, Pki
from .strongswan_client import METHODS, ClientOptions, StrongswanClient
from .testbed import Testbed
from .wait import wait_for
from . import requirements, topology

__all__ = [
    "Charon", "CharonSettings", "ClientOptions", "CommandError", "Credential",
    "DEFAULT_ESP_PROPOSALS", "DEFAULT_IKE_PROPOSALS", "DOMAIN", "EAP_IDENTITIES",
    "GATEWAY_NAME", "Gateway", "GatewayOptions", "METHODS", "Namespace", "P12_PASSWORD",
    "PSK_IDENTITY", "Pki", "StrongswanClient", "Testbed", "gateway_config",
    "missing_plugins", "missing_requirements", "requirements", "sweep_stale_namespaces",
    "topology", "wait_for",
]

_REQUIRED_PROGRAMS = ("ip", "nft", "unshare", "swanctl", "pki")


def missing_requirements() -> list[str]:
    """Why the testbed cannot run here (empty list: it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not root (network namespaces need root)")
    from .charon import CHARON
    reasons += requirements.missing_programs(CHARON, *_REQUIRED_PROGRAMS)
    return reasons


def missing_plugins() -> list[str]:
    """One line per strongSwan plugin the testbed loads (charon, swanctl, pki) that is not
    installed, naming its Debian package. Not a reason to skip: a machine with charon but without
    these plugins is a broken install, and tests fail on it (Charon.start checks too)."""
    from .charon import CHARON_PLUGINS, SWANCTL_PLUGINS
    from .pki import PKI_PLUGINS
    names = dict.fromkeys(f"{CHARON_PLUGINS} {SWANCTL_PLUGINS} {PKI_PLUGINS}".split())
    return requirements.missing_plugins(list(names))
