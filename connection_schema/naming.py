"""Names several packages must agree on, defined once: where secrets live in the keyring and
what the plugin calls the profile of a NetworkManager connection."""

from __future__ import annotations

# The Secret Service entry of a password or PSK: service "cygnet", user = the profile's name.
KEYRING_SERVICE = "cygnet"


def nm_profile_name(uuid: str) -> str:
    """The profile name (and keyring user) of a NetworkManager connection: nm-<uuid>. The plugin
    names the profile it builds so; the tray and the auth dialog store and look up the password
    under it (as in `keyring set cygnet nm-UUID`)."""
    return f"nm-{uuid}"


def keyring_user(uuid: str) -> str:
    """The keyring user of a NetworkManager connection's password."""
    return nm_profile_name(uuid)
