"""Gateway certificate revocation (RFC 5280 §6.3 CRLs, RFC 6960 OCSP) with strongSwan's
strict / ifuri / relaxed policies: real certificates, CRLs and OCSP responses made with
cryptography's builders; `fetch` serves them from a dict (the interop tests use real HTTP)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client.revocation import FetchError, check_chain, crl_uris, ocsp_uris

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
CRL_URL, OCSP_URL = "http://10.1.0.80/ca.crl", "http://10.1.0.80:8080/"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer_name, issuer_key, *, ca=False, eku=None, crl=True, aia=True):
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if crl and not ca:
        b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(CRL_URL)], None, None, None)]), critical=False)
    if aia and not ca:
        b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP,
            x509.UniformResourceIdentifier(OCSP_URL))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class Pki:
    def __init__(self, **gateway_kwargs):
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("Test CA", self.ca_key, _name("Test CA"), self.ca_key, ca=True)
        self.gw_key = ec.generate_private_key(ec.SECP256R1())
        self.gw = _cert("gw.test", self.gw_key, self.ca.subject, self.ca_key, **gateway_kwargs)
        self.chain = [self.gw, self.ca]
        self.served: dict = {}
        self.nonces: list = []

    def fetch(self, url, body):
        if body is not None:
            request = ocsp.load_der_ocsp_request(body)
            self.nonces.append(request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce)
        answer = self.served.get(url)
        if answer is None:
            raise FetchError(f"{url}: connection refused")
        return answer(request) if callable(answer) else answer

    def crl(self, revoked=(), next_update=NOW + dt.timedelta(days=1), key=None):
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.ca.subject)
             .last_update(min(NOW, next_update) - dt.timedelta(days=2)).next_update(next_update))
        for serial in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(NOW - dt.timedelta(hours=2))
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                .build())
        self.served[CRL_URL] = b.sign(key or self.ca_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER)

    def ocsp(self, status, *, signer=None, signer_key=None, nonce="echo"):
        def answer(request):
            b = ocsp.OCSPResponseBuilder().add_response(
                cert=self.gw, issuer=self.ca, algorithm=hashes.SHA1(), cert_status=status,
                this_update=NOW - dt.timedelta(minutes=1), next_update=NOW + dt.timedelta(hours=1),
                revocation_time=NOW - dt.timedelta(hours=3) if status == ocsp.OCSPCertStatus.REVOKED else None,
                revocation_reason=x509.ReasonFlags.superseded if status == ocsp.OCSPCertStatus.REVOKED else None)
            cert = signer or self.ca
            b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
            if signer is not None:
                b = b.certificates([signer])
            if nonce == "echo":
                b = b.add_extension(request.extensions.get_extension_for_class(x509.OCSPNonce).value,
                                    critical=False)
            elif nonce is not None:
                b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
            return b.sign(signer_key or self.ca_key, hashes.SHA256()).public_bytes(
                serialization.Encoding.DER)
        self.served[OCSP_URL] = answer

    def check(self, policy="relaxed"):
        return check_chain(self.chain, policy, NOW.timestamp(), self.fetch)


GOOD, REVOKED, UNKNOWN = (ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED,
                          ocsp.OCSPCertStatus.UNKNOWN)


def test_uris_are_read_from_the_certificate():
    pki = Pki()
    assert crl_uris(pki.gw) == [CRL_URL] and ocsp_uris(pki.gw) == [OCSP_URL]


def test_ocsp_good_from_the_ca_itself_passes_even_strict():
    pki = Pki()
    pki.ocsp(GOOD)
    assert pki.check("strict") is None
    assert len(pki.nonces) == 1 and len(pki.nonces[0]) == 16


def test_ocsp_revoked_fails_with_certificate_date_and_reason_under_any_policy():
    pki = Pki()
    pki.ocsp(REVOKED)
    for policy in ("relaxed", "ifuri", "strict"):
        failure = pki.check(policy)
        assert failure.startswith("the gateway's certificate 'CN=gw.test' (serial ")
        assert "was revoked on 2026-12-04 09:00:00 UTC (reason: superseded)" in failure
        assert f"says the OCSP responder at {OCSP_URL}" in failure


def test_delegated_responder_needs_ocsp_signing_from_the_ca():
    pki = Pki()
    key = ec.generate_private_key(ec.SECP256R1())
    delegated = _cert("OCSP responder", key, pki.ca.subject, pki.ca_key,
                      eku=[ExtendedKeyUsageOID.OCSP_SIGNING], crl=False, aia=False)
    pki.ocsp(REVOKED, signer=delegated, signer_key=key)
    assert "was revoked" in pki.check()
    # the same without id-kp-OCSPSigning: not an authorised responder, so no answer
    plain = _cert("Just a server", key, pki.ca.subject, pki.ca_key,
                  eku=[ExtendedKeyUsageOID.SERVER_AUTH], crl=False, aia=False)
    pki.ocsp(REVOKED, signer=plain, signer_key=key)
    assert pki.check("relaxed") is None
    failure = pki.check("ifuri")
    assert "signed neither by the CA nor by a responder it authorised" in failure
    # a responder with the right usage from another CA
    other_key = ec.generate_private_key(ec.SECP256R1())
    foreign = _cert("OCSP responder", key, _name("Other CA"), other_key,
                    eku=[ExtendedKeyUsageOID.OCSP_SIGNING], crl=False, aia=False)
    pki.ocsp(REVOKED, signer=foreign, signer_key=key)
    assert "authorised" in pki.check("strict")


def test_a_response_with_another_nonce_is_not_believed():
    pki = Pki()
    pki.ocsp(REVOKED, nonce=b"0123456789abcdef")
    assert "another request's nonce" in pki.check("ifuri")
    pki.ocsp(GOOD, nonce=None)  # RFC 5019 responders send none: accepted if current
    assert pki.check("strict") is None


def test_unknown_from_ocsp_falls_back_to_the_crl():
    pki = Pki()
    pki.ocsp(UNKNOWN)
    pki.crl(revoked=[pki.gw.serial_number])
    failure = pki.check()
    assert "revoked on 2026-12-04 10:00:00 UTC (reason: key_compromise)" in failure
    assert f"says the CRL at {CRL_URL}" in failure
    pki.crl(revoked=[pki.gw.serial_number + 1])
    assert pki.check("strict") is None


def test_crl_must_be_signed_by_the_issuer_and_current():
    pki = Pki(aia=False)
    pki.crl(revoked=[pki.gw.serial_number], key=ec.generate_private_key(ec.SECP256R1()))
    assert pki.check("relaxed") is None
    assert "not signed by the certificate's issuer" in pki.check("ifuri")
    pki.crl(next_update=NOW - dt.timedelta(days=1))
    assert "the CRL is stale" in pki.check("strict")


@pytest.mark.parametrize("policy, fails", [("relaxed", False), ("ifuri", True), ("strict", True)])
def test_servers_down(policy, fails):
    pki = Pki()
    failure = pki.check(policy)
    assert (failure is not None) == fails
    if fails:
        assert f"(revocation = {policy})" in failure and "connection refused" in failure


@pytest.mark.parametrize("policy, fails", [("relaxed", False), ("ifuri", False), ("strict", True)])
def test_no_uri_in_the_certificate(policy, fails):
    pki = Pki(crl=False, aia=False)
    failure = pki.check(policy)
    assert (failure is not None) == fails
    if fails:
        assert "names no CRL or OCSP server" in failure


# A CRL whose version field says 65 (the fuzzer's find): cryptography raises InvalidVersion,
# which is no ValueError, so it escaped crl_status's handling.
_CRL_WITH_A_BAD_VERSION = bytes.fromhex(
    "3081a93052020141300a06082a8648ce3d040302300d310b300906035504030c024341170d32363132303430"
    "30303030305a170d3236313230353030303030305a30143012020102170d3236313230343030303030305a30"
    "0a06082a8648ce3d040302034700304402201e3859c46b53cdbfdebb132dbd2eec5040dcef8aba4afffafbae"
    "1f07a95953f802206daadeac1956a7a3d12751a4baf9c8e0a0c4746044a5f6b45c4919edba7ffc31"
)


def test_a_crl_with_an_invalid_version_is_no_answer_not_an_exception():
    from client.revocation import NO_ANSWER, crl_status

    pki = Pki()
    status = crl_status(_CRL_WITH_A_BAD_VERSION, pki.gw, pki.ca, 0.0, "test")
    assert status.state == NO_ANSWER and "cannot be parsed" in status.detail
