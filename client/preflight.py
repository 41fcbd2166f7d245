"""Everything a profile names, checked before `cygnet up` sets anything up.

A bad certificate, key, CA folder or secret must be one clear line before the netlink agent,
the TUN device, a socket or a DNS lookup exists (issue 13 §3), not a traceback halfway through
the start. What is checked here is read again by the engine at each attempt; this only makes
sure that reading will work.
"""
from __future__ import annotations

from client.profile import Profile
from client.secrets import SecretError, get_secret
from ike.files import FileRefused, read_bounded


class PreflightError(Exception):
    """One line naming the profile, the file and the problem."""


class _WouldPrompt(Exception):
    pass


def _no_prompt(_text: str) -> str:
    raise _WouldPrompt


def check_profile(profile: Profile) -> None:
    """Raise PreflightError if a certificate, key, CA or secret the profile names is unusable."""
    from client.credentials import CredentialError, is_pkcs12, load_credential
    from ike.certificates import CertificateError, load_certificates, load_trust_anchors

    where = f"profile '{profile.name}'"
    try:
        if profile.ca is not None:
            load_trust_anchors(profile.ca)
        if profile.cert is not None:
            load_certificates(profile.cert)
        if profile.key is not None:
            # The README promises mode 0600 for the private key, as for psk_file.
            read_bounded(profile.key, "private key file", private=True)
        if profile.key is not None and (profile.cert is not None or is_pkcs12(profile.key)):
            # As the engine will load them (encrypted keys: passphrase file, keyring, or
            # typed now on a terminal). No `key`: it is on a token or in ssh-agent.
            from client.credentials import ask_key_passphrase

            ask_key_passphrase(profile)
            certificate, key, _ = load_credential(profile)
            if not _same_public_key(key, certificate):
                raise CertificateError(f"private key {profile.key} does not belong to certificate "
                                       f"{profile.cert or profile.key}")
    except FileRefused as error:
        raise PreflightError(f"{where}: {error}") from None
    except (CertificateError, CredentialError) as error:
        raise PreflightError(f"{where}: {error}") from None
    _check_identities(profile, where)
    if profile.auth == "psk" or profile.needs_password:
        _check_secret(profile, where)


# An ID payload's length field allows ~64 KB, but no real identity comes near this.
MAX_IDENTITY_BYTES = 4096


def _check_identities(profile: Profile, where: str) -> None:
    """local_id / remote_id as IKE will encode them (a DN, an address, a name)."""
    from ike.certificates import identity_from_string

    for key in ("local_id", "remote_id"):
        text = getattr(profile, key)
        if text is None:
            continue
        try:
            _, data = identity_from_string(text)
        except ValueError as error:
            raise PreflightError(f"{where}: key '{key}': {error}") from None
        if len(data) > MAX_IDENTITY_BYTES:
            raise PreflightError(f"{where}: key '{key}' is too long ({len(data)} bytes; "
                                 f"at most {MAX_IDENTITY_BYTES})")
    eap_identity = profile.eap_identity
    if eap_identity is not None and len(eap_identity.encode("utf-8", "surrogatepass")) > MAX_IDENTITY_BYTES:
        raise PreflightError(f"{where}: key 'eap_identity' is too long (at most {MAX_IDENTITY_BYTES} bytes)")


def _check_secret(profile: Profile, where: str) -> None:
    """The secret file's mode and contents, or that some source exists. The keyring is left to
    the engine (asking it loads D-Bus backends), and so is a prompt on a terminal."""
    if profile.keyring and (profile.psk_file or profile.password_file) is None:
        return
    try:
        get_secret(profile, ask=_no_prompt)
    except _WouldPrompt:
        return
    except SecretError as error:
        raise PreflightError(str(error)) from None


def _same_public_key(key, certificate) -> bool:
    from cryptography.hazmat.primitives import serialization

    form = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*form) == certificate.public_key().public_bytes(*form)
