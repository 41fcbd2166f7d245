"""Checks of single values that every form shares. Each returns the checked value or raises
`ValueError` whose text is the problem alone (the caller names the key)."""

from __future__ import annotations

import ipaddress
import re

from .limits import Limit

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RULE = ("letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)")


def is_profile_name(text: str) -> bool:
    """Whether `text` can name a profile (and so its file and key-material folder)."""
    return isinstance(text, str) and bool(NAME_RE.match(text)) and "\n" not in text


def path_problem(error: Exception) -> str:
    """Why a path cannot even be looked at (~nosuchuser, a name too long, a NUL)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, ValueError):
        return "it holds a NUL character"
    return str(error)  # RuntimeError: "Could not determine home directory."
# A host name (RFC 1123 labels) or an address; checked loosely, the resolver has the last word.
_HOST_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")


def is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return len(text) <= 253 and bool(_HOST_RE.match(text))


def network(text: str):
    """A CIDR network with no host bits set."""
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"'{text}' is not a network in CIDR form (like 10.0.0.0/8 or fd00::/8)") from None
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        raise ValueError(f"'{text}' has host bits set (did you mean {loose}?)") from None


def in_range(value: int, limit: Limit) -> int:
    if not limit.allows(value):
        raise ValueError(limit.problem(value))
    return value


def proposals(kind: str, text: str) -> str:
    """`text` parsed as strongSwan IKE (kind "ike") or ESP ("esp") proposals, comma-separated.
    The ProposalError text names the bad token."""
    from ike.proposals import ProposalError, parse_esp_proposals, parse_ike_proposals  # lazy: --help

    parse = parse_ike_proposals if kind == "ike" else parse_esp_proposals
    try:
        parse(text)
    except ProposalError as error:
        raise ValueError(str(error)) from None
    return text
