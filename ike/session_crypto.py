"""The session's calls into the crypto, proposal, auth and EAP modules, in one place.

IkeSession speaks in terms of "the chosen proposal", "its KE group", "sign these octets";
this module maps that onto ike/proposals.py, ike/keys.py, ike/protection.py, ike/auth.py,
ike/certificates.py and ike/eap.py, so the state machine does not depend on their details.
"""

from __future__ import annotations

import functools

from . import auth as _auth
from . import certificates as _certificates
from . import keys as _keys
from . import proposals as _proposals
from .constants import IdType
from .keyexchange import KeyExchangeError, make_key_exchange
from .payloads import Proposal
from .protection import FragmentReassembler, SkProtector
from .transforms import IntegrityError, TransformError, make_prf

ProposalError = _proposals.ProposalError
CRYPTO_ERRORS = (IntegrityError, KeyExchangeError, TransformError, ProposalError)


class AuthError(Exception):
    """The gateway failed to prove its identity; the message is for the user."""


# ------------------------------------------------------------------ proposals

# Every IkeSession parses its settings' proposal strings, and a client offers the same ones
# each time (a load generator: thousands of sessions): parse each text once. The proposals are
# frozen dataclasses; each caller gets its own list.

def parse_ike(text) -> list:
    return list(_parse_ike_cached(text if isinstance(text, str) else tuple(text)))


def parse_esp(text) -> list:
    return list(_parse_esp_cached(text if isinstance(text, str) else tuple(text)))


@functools.lru_cache(maxsize=32)
def _parse_ike_cached(text) -> tuple:
    return tuple(_proposals.parse_ike_proposals(text))


@functools.lru_cache(maxsize=32)
def _parse_esp_cached(text) -> tuple:
    return tuple(_proposals.parse_esp_proposals(text))


def ike_proposal_payloads(offered, spi: bytes = b"") -> list[Proposal]:
    return [p.to_payload(number, spi) for number, p in enumerate(offered, start=1)]


def esp_proposal_payloads(offered, spi: bytes, with_ke: bool = False) -> list[Proposal]:
    """ESP proposals; IKE_AUTH and rekeys without PFS carry no KE transforms (§1.2)."""
    return [p.to_payload(number, spi, with_ke=with_ke)
            for number, p in enumerate(offered, start=1)]


def ike_ke_groups(offered) -> list[int]:
    """Every KE group we offer, in order of preference."""
    groups: list[int] = []
    for proposal in offered:
        groups.extend(g for g in proposal.ke_groups if g not in groups)
    return groups


def ike_offers_additional_ke(offered) -> bool:
    return any(p.additional_ke for p in offered)


def without_additional_ke(proposals) -> list:
    """The proposals minus RFC 9370 ADDKE transforms: rekeys do not run IKE_FOLLOWUP_KE."""
    from dataclasses import replace
    result = []
    for proposal in proposals:
        stripped = replace(proposal, additional_ke=())
        if stripped not in result:
            result.append(stripped)
    return result


def ike_chosen_group(chosen) -> int:
    return chosen.ke_group


def ike_chosen_additional_groups(chosen) -> list[int]:
    """RFC 9370: the ADDKE1..7 methods chosen, in order, NONE skipped."""
    return list(chosen.additional_ke_groups)


def esp_pfs_group(proposal) -> int:
    return proposal.ke_group or 0


def esp_offered_pfs_group(offered) -> int:
    """The PFS group for our CREATE_CHILD_SA: the first one our ESP proposals name."""
    return next((p.ke_group for p in offered if p.ke_group), 0)


def choose_ike(offered, sa):
    return _proposals.choose_ike(offered, sa)


def choose_esp(offered, sa, with_ke: bool):
    return _proposals.choose_esp(offered, sa, with_ke=with_ke)


def select_ike(offered, sa, preferred_ke=None):
    """Responder side (a gateway-initiated IKE rekey): Selection(proposal, number, spi)."""
    return _proposals.select_ike(offered, sa, preferred_ke)


def select_esp(offered, sa, with_ke: bool = True):
    return _proposals.select_esp(offered, sa, with_ke)


def select_esp_for_peer_ke(offered, sa, group: int):
    """Responder side of a CREATE_CHILD_SA that carries a KE payload: accept PFS in the
    gateway's group even if our proposals name none (a client has no reason to refuse extra
    forward secrecy, and strongSwan gateways rekey with PFS when configured so)."""
    from dataclasses import replace

    from .constants import KeId
    from .keyexchange import SUPPORTED_KE
    if group not in SUPPORTED_KE:
        return _proposals.select_esp(offered, sa, True)
    widened = [replace(p, ke_groups=(group, *[g for g in p.ke_groups if g != group],
                                     KeId.NONE)) for p in offered]
    return _proposals.select_esp(widened, sa, True)


def describe(proposal) -> str:
    return str(proposal)


# ------------------------------------------------------------------ keys

def make_ke(group: int):
    return make_key_exchange(group)


def make_prf_for(proposal):
    return make_prf(proposal.prf_id)


def derive_ike_keys(proposal, shared, ni, nr, spi_i, spi_r, old_sk_d=None, old_prf=None):
    old_prf_id = getattr(old_prf, "prf_id", old_prf)
    return _keys.derive_ike_sa_keys(proposal, shared, ni, nr, spi_i, spi_r,
                                    old_sk_d=old_sk_d, old_prf=old_prf_id)


def update_keys(proposal, keys, shared, ni, nr, spi_i, spi_r):
    return _keys.update_for_additional_ke(proposal, keys, shared, ni, nr, spi_i, spi_r)


def child_keymat(esp_proposal, ike_proposal, sk_d, ni, nr, shared=b""):
    return _keys.derive_child_sa_keymat(esp_proposal, ike_proposal.prf_id, sk_d, ni, nr, shared)


def make_protector(proposal, keys, is_initiator: bool, random_bytes=None):
    if random_bytes is None:
        return SkProtector(proposal, keys, is_initiator)
    return SkProtector(proposal, keys, is_initiator, random_bytes=random_bytes)


def make_reassembler(protector):
    return FragmentReassembler(protector)


# ------------------------------------------------------------------ authentication

def identity(text: str) -> tuple:
    return _certificates.identity_from_string(text)


def format_identity(id_payload) -> str:
    return _certificates.format_identity(id_payload.id_type, id_payload.data)


def identity_matches(expected: str, id_payload) -> bool:
    if id_payload is None:
        return False
    want_type, want_data = identity(expected)
    if int(want_type) == int(id_payload.id_type) and want_data == bytes(id_payload.data):
        return True
    if int(want_type) == IdType.DER_ASN1_DN == int(id_payload.id_type):
        return _certificates.dns_equal(want_data, bytes(id_payload.data))
    return False


def signed_octets(message, nonce, prf, sk_p, id_payload) -> bytes:
    return _auth.signed_octets(message, nonce, prf, sk_p, id_payload)


def psk_auth(prf, secret: bytes, octets: bytes) -> bytes:
    try:
        return _auth.psk_auth_data(prf, secret, octets)
    except _auth.AuthenticationError as exc:
        raise AuthError(str(exc)) from None


def sign(private_key, octets: bytes, peer_hash_algorithms) -> tuple:
    try:
        return _auth.Signer(private_key).sign(octets, peer_hash_algorithms or None)
    except (_auth.AuthenticationError, TypeError) as exc:
        raise AuthError(str(exc)) from None


def cert_der(certificate) -> bytes:
    if isinstance(certificate, (bytes, bytearray)):
        return bytes(certificate)
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.DER)


def certreq_data(trust_anchors) -> bytes:
    return _certificates.certreq_hashes(trust_anchors)


def load_certificates(cert_payloads) -> tuple:
    """The first CERT is the end-entity certificate (§3.6), the rest may help the chain."""
    from cryptography import x509  # imported here: PSK and EAP never need it (start-up time)

    try:
        certs = [x509.load_der_x509_certificate(bytes(p.data)) for p in cert_payloads]
    except ValueError:
        raise AuthError("the gateway sent a certificate that cannot be parsed") from None
    return certs[0], certs[1:]


def validate_certificate(cert, intermediates, trust_anchors, expected_identity, now) -> list:
    try:
        return _certificates.validate_certificate(cert, intermediates, trust_anchors,
                                                  expected_identity, now)
    except _certificates.CertificateError as exc:
        raise AuthError(str(exc)) from None
    except ValueError as exc:  # an unparsable expected identity
        raise AuthError(f"gateway identity: {exc}") from None


def der_chain(chain) -> tuple:
    from cryptography.hazmat.primitives.serialization import Encoding

    return tuple(c.public_bytes(Encoding.DER) for c in chain)


def verify_signature(auth_payload, octets: bytes, certificate) -> None:
    try:
        _auth.verify_auth(auth_payload, octets, certificate)
    except _auth.AuthenticationError as exc:
        raise AuthError(str(exc)) from None


# ------------------------------------------------------------------ EAP

def make_eap_client(auth_settings, local_id: str, now: float, random_bytes):
    from . import eap as _eap  # imported late: EAP-TLS pulls in pyOpenSSL
    identity_text = auth_settings.eap_identity or local_id
    return _eap.EapClient(auth_settings.eap_method, identity_text,
                          password=auth_settings.eap_password, tls=auth_settings.eap_tls,
                          now=now, random_bytes=random_bytes,
                          tunnel=getattr(auth_settings, "eap_tunnel", None),
                          outer_identity=getattr(auth_settings, "eap_outer_identity", None))


def eap_failed(client) -> bool:
    return bool(getattr(client, "failure_reason", None))


def eap_failure_reason(client) -> str:
    return client.failure_reason or "EAP authentication failed"


def eap_msk(client) -> bytes:
    return client.msk or b""
