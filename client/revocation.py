"""Is the gateway's certificate revoked? CRLs and OCSP (RFC 5280 §6.3, RFC 6960), with
strongSwan's `revocation` policies (swanctl.conf remote.revocation):

    strict   the status must be known to be good: no answer, or no CRL/OCSP URI, fails
    ifuri    fails when the certificate names a CRL/OCSP URI but no valid answer came
    relaxed  (default) fails only on a `revoked` answer

A `revoked` answer always fails, naming the certificate, the date and the reason. As in
strongSwan, OCSP is asked first (every URI of the AIA extension), then the CRLs of the
distribution points. Every certificate of the chain below the trust anchor is checked.

An OCSP answer counts only if it is signed by the issuing CA itself or by a responder
certificate the CA issued for id-kp-OCSPSigning (RFC 6960 §4.2.2.2), is about our certificate
(CertID), is current, and echoes our nonce (§4.4.1) — a response without any nonce is
accepted if current (RFC 5019's pre-produced responses), one with another nonce is not.
A CRL counts only if the issuer signed it and it is current (nextUpdate not passed).

The checking is pure (bytes and `now` in); `http_fetch` is the only I/O, bounded in size and
time; the engine runs `check_chain` in a worker thread while the IKE session waits
(ike/revocation_gate.py).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (AuthorityInformationAccessOID, ExtendedKeyUsageOID,
                                   SignatureAlgorithmOID)

POLICIES = ("strict", "ifuri", "relaxed")
DEFAULT_POLICY = "relaxed"
FETCH_TIMEOUT = 5.0           # seconds per URI (connect and each read)
MAX_RESPONSE_BYTES = 1 << 20  # a CRL or OCSP answer larger than this is refused
CLOCK_SKEW = dt.timedelta(minutes=5)

# what an answer said about one certificate
GOOD, REVOKED, NO_ANSWER, NO_URI = "good", "revoked", "no answer", "no URI"

Fetch = Callable[[str, Optional[bytes]], bytes]  # (url, POST body or None) -> body


class FetchError(Exception):
    """The server could not be reached or answered with an error (plain words)."""


@dataclass(frozen=True)
class Status:
    state: str           # GOOD, REVOKED, NO_ANSWER, NO_URI
    detail: str = ""     # revoked: "on <date> (reason)"; no answer: why
    source: str = ""     # "the OCSP responder at URL" / "the CRL at URL"


def http_fetch(url: str, body: Optional[bytes] = None, timeout: float = FETCH_TIMEOUT,
               limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """GET url (or POST an OCSP request), at most `limit` bytes, `timeout` per step."""
    if not url.lower().startswith("http://"):
        # ldap: and https: distribution points are not fetched (strongSwan's curl would).
        raise FetchError(f"{url}: only http:// URIs are fetched")
    # Imported here: urllib.request pulls in http.client, email and ssl (~15 ms), and most
    # certificates name no URI, so most tunnels never fetch; the check sits inside IKE_AUTH.
    import urllib.error
    import urllib.request

    headers = {"User-Agent": "cygnet"}
    if body is not None:
        headers["Content-Type"] = "application/ocsp-request"
    request = urllib.request.Request(url, data=body, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from env
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as error:
        raise FetchError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"{url}: {reason}") from None
    if len(data) > limit:
        raise FetchError(f"{url}: the answer is larger than {limit} bytes")
    return data


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.timezone.utc)


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(cert: x509.Certificate) -> str:
    return f"'{cert.subject.rfc4514_string()}' (serial {cert.serial_number:x})"


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def ocsp_uris(cert: x509.Certificate) -> list[str]:
    aia = _extension(cert, x509.AuthorityInformationAccess) or []
    return [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def crl_uris(cert: x509.Certificate) -> list[str]:
    points = _extension(cert, x509.CRLDistributionPoints) or []
    return [name.value for point in points for name in (point.full_name or [])
            if isinstance(name, x509.UniformResourceIdentifier)]


def _verify_signature(public_key, signature: bytes, data: bytes, hash_algorithm,
                      signature_oid) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if signature_oid == SignatureAlgorithmOID.RSASSA_PSS:
                pad = padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO)
            else:
                pad = padding.PKCS1v15()
            public_key.verify(signature, data, pad, hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _reason(value) -> str:
    return f" (reason: {value.name})" if value is not None else ""


# ------------------------------------------------------------------------------ OCSP


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes) -> bytes:
    builder = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
               .add_extension(x509.OCSPNonce(nonce), critical=False))
    return builder.build().public_bytes(serialization.Encoding.DER)


def _responder_is(cert: x509.Certificate, response: ocsp.OCSPResponse) -> bool:
    """RFC 6960 §4.2.1 ResponderID: by name, or by KeyHash (SHA-1 of the subjectPublicKey
    bits, which is RFC 5280's key identifier method 1)."""
    if response.responder_name is not None:
        return cert.subject == response.responder_name
    key_hash = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return key_hash == response.responder_key_hash


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate,
                 now: dt.datetime) -> Optional[x509.Certificate]:
    """The certificate whose key must have signed the response: the CA, or a delegated
    responder the CA issued for OCSP signing (RFC 6960 §4.2.2.2); None if neither."""
    if _responder_is(issuer, response):
        return issuer
    for candidate in response.certificates:
        if not _responder_is(candidate, response):
            continue
        if candidate.issuer != issuer.subject:
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            continue
        usages = _extension(candidate, x509.ExtendedKeyUsage)
        if usages is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            continue
        if not (candidate.not_valid_before_utc - CLOCK_SKEW <= now
                <= candidate.not_valid_after_utc + CLOCK_SKEW):
            continue
        return candidate
    return None


def ocsp_status(der: bytes, cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes,
                now: float, source: str) -> Status:
    """What a DER OCSP response says about `cert`, if it may be believed."""
    try:  # cryptography parses lazily: a field may turn out malformed when first read
        return _ocsp_status(der, cert, issuer, nonce, now, source)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return Status(NO_ANSWER, "the OCSP response cannot be parsed", source)


def _ocsp_status(der: bytes, cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes,
                 now: float, source: str) -> Status:
    def no(why: str) -> Status:
        return Status(NO_ANSWER, why, source)

    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        return no("the OCSP response cannot be parsed")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return no(f"the OCSP responder answered {response.response_status.name}")
    moment = _utc(now)
    signer = _ocsp_signer(response, issuer, moment)
    if signer is None:
        return no("the OCSP response is signed neither by the CA nor by a responder it "
                  "authorised for OCSP signing")
    if not _verify_signature(signer.public_key(), response.signature,
                             response.tbs_response_bytes, response.signature_hash_algorithm,
                             response.signature_algorithm_oid):
        return no("the OCSP response's signature is invalid")
    try:
        their_nonce = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        their_nonce = None
    if their_nonce is not None and their_nonce != nonce:
        return no("the OCSP response carries another request's nonce (a replay?)")
    request = ocsp.load_der_ocsp_request(ocsp_request(cert, issuer, nonce))
    for single in response.responses:
        if (single.serial_number != cert.serial_number
                or single.issuer_key_hash != request.issuer_key_hash
                or single.issuer_name_hash != request.issuer_name_hash):
            continue
        if single.this_update_utc > moment + CLOCK_SKEW:
            return no("the OCSP response is dated in the future")
        if single.next_update_utc is not None and single.next_update_utc < moment - CLOCK_SKEW:
            return no(f"the OCSP response expired on {_when(single.next_update_utc)}")
        if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return Status(GOOD, "", source)
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return Status(REVOKED, f"on {_when(single.revocation_time_utc)}"
                          f"{_reason(single.revocation_reason)}", source)
        return no("the OCSP responder does not know the certificate")
    return no("the OCSP response is not about the gateway's certificate")


# ------------------------------------------------------------------------------ CRL


def crl_status(data: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: float,
               source: str) -> Status:
    """What a CRL (DER or PEM) says about `cert`, if it may be believed."""
    try:
        return _crl_status(data, cert, issuer, now, source)
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion):  # no ValueError
        return Status(NO_ANSWER, "the CRL cannot be parsed", source)


def _crl_status(data: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: float,
                source: str) -> Status:
    def no(why: str) -> Status:
        return Status(NO_ANSWER, why, source)

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError (found by fuzzing)
        return no("the CRL cannot be parsed")
    if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
        return no("the CRL is not signed by the certificate's issuer")
    moment = _utc(now)
    if crl.last_update_utc > moment + CLOCK_SKEW:
        return no("the CRL is dated in the future")
    if crl.next_update_utc is not None and crl.next_update_utc < moment - CLOCK_SKEW:
        return no(f"the CRL is stale (its next update was due {_when(crl.next_update_utc)})")
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return Status(GOOD, "", source)
    reason = _extension_value(entry.extensions, x509.CRLReason)
    return Status(REVOKED, f"on {_when(entry.revocation_date_utc)}"
                  f"{_reason(reason.reason if reason else None)}", source)


def _extension_value(extensions: x509.Extensions, kind):
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


# ------------------------------------------------------------------------------ policy


def certificate_status(cert: x509.Certificate, issuer: x509.Certificate, now: float,
                       fetch: Fetch = http_fetch, nonce: Callable[[], bytes] = lambda: os.urandom(16)
                       ) -> Status:
    """OCSP first, then CRLs: the first good or revoked answer decides."""
    reasons: list[str] = []
    for url in ocsp_uris(cert):
        source = f"the OCSP responder at {url}"
        ours = nonce()
        try:
            der = fetch(url, ocsp_request(cert, issuer, ours))
        except FetchError as error:
            reasons.append(f"OCSP: {error}")
            continue
        status = ocsp_status(der, cert, issuer, ours, now, source)
        if status.state != NO_ANSWER:
            return status
        reasons.append(f"OCSP {url}: {status.detail}")
    for url in crl_uris(cert):
        source = f"the CRL at {url}"
        try:
            data = fetch(url, None)
        except FetchError as error:
            reasons.append(f"CRL: {error}")
            continue
        status = crl_status(data, cert, issuer, now, source)
        if status.state != NO_ANSWER:
            return status
        reasons.append(f"CRL {url}: {status.detail}")
    if not reasons:
        return Status(NO_URI, "the certificate names no CRL or OCSP server")
    return Status(NO_ANSWER, "; ".join(reasons))


def judge(policy: str, status: Status, cert: x509.Certificate,
          whose: str = "the gateway's certificate") -> Optional[str]:
    """The failure message for `status` under `policy`, or None to accept."""
    what = f"{whose} {describe(cert)}"
    if status.state == REVOKED:
        return f"{what} was revoked {status.detail}, says {status.source}"
    if status.state == GOOD:
        return None
    if status.state == NO_ANSWER and policy in ("strict", "ifuri"):
        return f"no valid revocation status for {what} (revocation = {policy}): {status.detail}"
    if status.state == NO_URI and policy == "strict":
        return (f"no revocation status for {what} (revocation = strict): "
                f"{status.detail}")
    return None


def needs_fetching(chain: Sequence[x509.Certificate]) -> bool:
    return any(ocsp_uris(c) or crl_uris(c) for c in chain[:-1])


def check_chain(chain: Sequence[x509.Certificate], policy: str, now: float,
                fetch: Fetch = http_fetch, role: str = "gateway") -> Optional[str]:
    """chain: end entity first, the trust anchor last (ike's validate_certificate order).
    role: whose chain ("gateway", "EAP server"). Returns the failure message, or None if the
    chain passes `policy`."""
    if policy not in POLICIES:
        raise ValueError(f"revocation policy must be one of {', '.join(POLICIES)}")
    for cert, issuer in zip(chain, chain[1:]):
        whose = (f"the {role}'s certificate" if cert is chain[0]
                 else f"the CA certificate above the {role}'s")
        failure = judge(policy, certificate_status(cert, issuer, now, fetch), cert, whose)
        if failure:
            return failure
    return None


# ------------------------------------------------------------------------------ engine glue


def verdict(chain_der: Sequence[bytes], policy: str, now: float,
            fetch: Fetch = http_fetch, role: str = "gateway") -> Optional[str]:
    """check_chain on DER certificates; an unexpected error counts as no answer."""
    chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    try:
        return check_chain(chain, policy, now, fetch, role)
    except Exception as error:  # noqa: BLE001 - a bug here must not look like "good"
        if policy == "relaxed":
            return None
        return (f"no valid revocation status for the {role}'s certificate {describe(chain[0])} "
                f"(revocation = {policy}): {type(error).__name__}")


def check_in_background(loop, chain_der: Sequence[bytes], policy: str, now: float,
                        done: Callable[[Optional[str]], None], say=None,
                        role: str = "gateway") -> None:
    """Run `verdict` off the event loop (fetching may take FETCH_TIMEOUT per URI) and call
    done(failure or None) on the loop. Without any URI in the chain nothing is fetched."""
    chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    if not needs_fetching(chain):
        loop.call_soon(done, verdict(chain_der, policy, now, role=role))
        return
    if say is not None:
        say(f"checking whether the {role}'s certificate is revoked (OCSP/CRL)…")
    future = loop.run_in_executor(None, verdict, chain_der, policy, now, http_fetch, role)
    future.add_done_callback(lambda f: done(f.result()))
