"""Profile -> ike.settings.Settings for one attempt at one gateway address.

What the profile says, and the defaults strongSwan's Android app and NM plugin use where it
says nothing (the system's CA bundle, IDi from the EAP user name or the certificate's
subject). Test-only knobs from the environment are not here: see client/testing_hooks.py.
"""

from __future__ import annotations

import os

from client.failure import FailureKind, FatalError
from connection_schema.certificates import subject_identity
from client.profile import Profile

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's ca-certificates


def session_settings(profile: Profile, secret, remote: str, local: str, local_port: int):
    """ike.settings.Settings for one attempt at one gateway address."""
    from ike.mobike import DPD_POLICY as DPD_RETRANSMISSION
    from ike.settings import Settings

    auth, certificate = _auth_settings(profile, secret)
    kwargs = {}
    if profile.ike:
        kwargs["ike_proposals"] = profile.ike
    if profile.esp:
        kwargs["esp_proposals"] = profile.esp
    return Settings(
        remote_address=remote, remote_port=profile.port, local_address=local, local_port=local_port,
        local_id=_local_identity(profile, auth, certificate, local), remote_id=profile.remote_id,
        auth=auth, remote_ts=tuple(profile.remote_ts),
        request_ip4="ipv4" in profile.virtual_ip, request_ip6="ipv6" in profile.virtual_ip,
        request_dns4=profile.dns and "ipv4" in profile.virtual_ip,
        request_dns6=profile.dns and "ipv6" in profile.virtual_ip,
        request_domains=profile.dns,
        force_encapsulation=profile.encap, dpd_delay=float(profile.dpd),
        dpd_retransmission=DPD_RETRANSMISSION,  # a dead gateway in seconds (ike/mobike.py)
        reauth_time=float(profile.reauth), **kwargs)


def _auth_settings(profile: Profile, secret):
    """(ike.settings.AuthSettings, our certificate or None)."""
    from client.credentials import CredentialError, is_pkcs12, load_credential
    from ike import certificates
    from ike.settings import AuthSettings

    auth = AuthSettings(check_revocation=True)  # client/revocation.py; "relaxed" by default
    rounds = profile.auth_rounds
    if profile.ca is not None:
        auth.trust_anchors = tuple(certificates.load_trust_anchors(profile.ca))
    certificate = private_key = None
    intermediates: list = []
    from client.smartcard import KeyElsewhereError, held_credential

    try:  # a token's or ssh-agent's key (client/smartcard.py): the PIN / socket is the secret
        held = held_credential(profile, secret)
    except KeyElsewhereError as error:
        raise FatalError(str(error), FailureKind.CERTIFICATE_UNAVAILABLE) from None
    if held is not None:
        certificate, private_key, intermediates = held
    elif profile.cert is not None or is_pkcs12(profile.key):
        try:  # encrypted PEM and PKCS#12 keys too (client/credentials.py)
            # certificate-only methods have no other secret: NetworkManager passes the key's
            # passphrase as it (its `password` secret for method=key/cert)
            passphrase = secret if profile.auth in ("pubkey", "eap-tls") else None
            certificate, private_key, intermediates = load_credential(profile, passphrase)
        except CredentialError as error:
            raise FatalError(str(error), FailureKind.CERTIFICATE_UNAVAILABLE) from None
    if rounds[0] == "psk":
        auth.method = "psk"
        auth.psk = secret.reveal()
    elif rounds[0] == "pubkey":
        auth.method = "pubkey"
        auth.private_key, auth.certificate = private_key, certificate
        auth.intermediates = tuple(intermediates)
        auth.eap_after_certificate = len(rounds) > 1  # RFC 4739: certificate, then EAP
    else:
        auth.method = "eap"
    if not auth.trust_anchors and auth.method != "psk":
        auth.trust_anchors = _system_trust_anchors(profile)
    if profile.eap_method:
        _eap_settings(profile, secret, auth, certificate, private_key, intermediates)
    return auth, certificate


def _system_trust_anchors(profile: Profile) -> tuple:
    """No `ca`: trust the system's CA bundle, as strongSwan's Android app does by default."""
    from ike import certificates

    if not os.path.exists(SYSTEM_CA_BUNDLE):
        raise FatalError(f"profile '{profile.name}': no 'ca' given and no system CA bundle at "
                         f"{SYSTEM_CA_BUNDLE}: set 'ca' to the CA that issued the gateway's certificate",
                         FailureKind.CERTIFICATE_UNAVAILABLE)
    return tuple(certificates.load_certificates(SYSTEM_CA_BUNDLE))


def _eap_settings(profile: Profile, secret, auth, certificate, private_key, intermediates) -> None:
    # Loaded now, not when the gateway's first EAP request arrives mid-handshake (as charon
    # loads its EAP plugins at start-up).
    import ike.eap  # noqa: F401

    auth.eap_method = profile.eap_allowed
    auth.eap_only = getattr(profile, "eap_only", False)  # RFC 5998 (ike/eap_only.py)
    auth.eap_outer_identity = getattr(profile, "eap_anonymous_identity", None)
    auth.eap_identity = profile.eap_identity or profile.local_id
    if secret is not None:
        auth.eap_password = secret.reveal().decode("utf-8")
    if {"peap", "ttls"} & set(profile.eap_allowed):
        from ike.eap_tunnel import TunnelConfig

        auth.eap_tunnel = TunnelConfig(
            trust_anchors=auth.trust_anchors, ttls_inner=profile.ttls_inner,
            inner_methods=tuple(m for m in profile.eap_methods if m in ("mschapv2", "gtc", "md5")),
            server_identity=profile.eap_server_id or profile.remote_id or profile.gateway)
    if "tls" in profile.eap_allowed:
        from ike.eap import TlsClientConfig

        auth.eap_tls = TlsClientConfig(
            certificate=certificate, private_key=private_key, trust_anchors=auth.trust_anchors,
            server_identity=profile.eap_server_id or profile.remote_id or profile.gateway,
            intermediates=tuple(intermediates))


def _local_identity(profile: Profile, auth, certificate, local: str) -> str:
    """IDi as in strongSwan's Android app and NM plugin: the EAP user name for EAP, the
    certificate's subject for certificates, else our address."""
    if profile.local_id:
        return profile.local_id
    if auth.method == "eap" and auth.eap_identity:
        return auth.eap_identity
    if certificate is not None:
        return subject_identity(certificate)
    return local
