"""Names shared by the CLI, the NetworkManager plugin, its auth dialog and the tray."""

from __future__ import annotations

# The keyring (Secret Service) entry: service "cygnet", user = the profile name.
KEYRING_SERVICE = "cygnet"


def keyring_user(uuid: str) -> str:
    """The keyring user of a NetworkManager connection's password, nm-UUID (as in
    `keyring set cygnet nm-UUID`); also the name of the profile the plugin builds from it."""
    return f"nm-{uuid}"


def nm_profile_name(uuid: str) -> str:
    """The profile name the plugin gives a NetworkManager connection."""
    return keyring_user(uuid) if uuid else "nm-connection"
