"""Names shared by the CLI, the NetworkManager plugin, its auth dialog and the tray."""

from __future__ import annotations

# The keyring (Secret Service) collection entry: service "cygnet", user = profile name.
KEYRING_SERVICE = "cygnet"


def nm_profile_name(uuid: str) -> str:
    """The profile name the plugin gives a NetworkManager connection; also the keyring user
    under which the tray, the auth dialog and `keyring set cygnet nm-UUID` keep its password."""
    return f"nm-{uuid}" if uuid else "nm-connection"


def keyring_user(uuid: str) -> str:
    """The keyring user name of a NetworkManager connection's password."""
    return f"nm-{uuid}"
