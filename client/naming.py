"""Names several packages must agree on, defined once: where secrets live in the keyring and
how an identity is written from a certificate. Standard library only (the tray loads it)."""

from __future__ import annotations

# The Secret Service entry of a password or PSK: service "cygnet", user = the profile's name.
KEYRING_SERVICE = "cygnet"


def nm_profile_name(uuid: str) -> str:
    """The profile name (and keyring user) of a NetworkManager connection: nm-<uuid>. The plugin
    names the profile it builds so; the tray and the auth dialog store and look up the password
    under it."""
    return f"nm-{uuid}"


def subject_identity(certificate) -> str:
    """A certificate's subject as an IKE identity, in encoding order as strongSwan writes it
    ("C=CH, O=strongSwan, CN=carol"): rfc4514_string() of the whole Name reverses the RDNs,
    and that DN is not the certificate's. Values keep RFC 4514 escapes, which
    ike.certificates.dn_from_string reads back."""
    return ", ".join(rdn.rfc4514_string() for rdn in certificate.subject.rdns)
