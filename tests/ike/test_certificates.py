"""Identities (RFC 7296 §3.5), CERTREQ hashes (§3.7) and gateway certificate validation
(RFC 5280 §6.1 reduced, RFC 4945 §3.1 / §5.1.3.12) in ike/certificates.py via ike.auth."""

import datetime as dt
import hashlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ike import auth, certificates
from ike.auth import CertificateError, validate_certificate
from ike.constants import IdType
from tests.ike.eap_server import IKE_INTERMEDIATE, NOW, NOW_DT, Pki, make_key

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


# --- identities -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, id_type, data", [
    ("198.51.100.1", IdType.IPV4_ADDR, bytes([198, 51, 100, 1])),
    ("2001:db8::1", IdType.IPV6_ADDR, ipaddress.ip_address("2001:db8::1").packed),
    ("@vpn.example.org", IdType.FQDN, b"vpn.example.org"),
    ("vpn.example.org", IdType.FQDN, b"vpn.example.org"),
    ("carol@example.org", IdType.RFC822_ADDR, b"carol@example.org"),
    ("@@carol", IdType.RFC822_ADDR, b"carol"),
    ("@#0a1B", IdType.KEY_ID, b"\x0a\x1b"),
    ("fqdn:198.51.100.1", IdType.FQDN, b"198.51.100.1"),
    ("email:carol", IdType.RFC822_ADDR, b"carol"),
    ("keyid:#c0ffee", IdType.KEY_ID, b"\xc0\xff\xee"),
    ("ipv4:192.0.2.7", IdType.IPV4_ADDR, bytes([192, 0, 2, 7])),
    ("ipv6:::1", IdType.IPV6_ADDR, bytes(15) + b"\x01"),
    ("  moon  ", IdType.FQDN, b"moon"),
])
def test_identity_from_string(text, id_type, data):
    assert auth.identity_from_string(text) == (id_type, data)


def test_dn_identity_keeps_strongswan_order_and_string_types():
    id_type, der = auth.identity_from_string("C=CH, O=strongSwan, CN=moon")
    assert id_type == IdType.DER_ASN1_DN
    expected = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "strongSwan"),
        x509.NameAttribute(NameOID.COMMON_NAME, "moon")])
    assert auth.format_dn(der) == "C=CH, O=strongSwan, CN=moon"
    assert [a.oid for a in expected] == [NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME,
                                         NameOID.COMMON_NAME]
    # PrintableString (0x13) for printable values, as strongSwan encodes them
    assert b"\x13\x04moon" in der and b"\x13\x02CH" in der
    assert certificates.dns_equal(der, expected.public_bytes())


def test_dn_identity_with_escapes_utf8_email_and_dotted_oid():
    _, der = auth.identity_from_string(
        'CN=Zürich\\, Main, O="a,b", E=carol@example.org, 2.5.4.11=Ops, S=ZH')
    assert b"\x0c\x0dZ\xc3\xbcrich, Main" in der  # UTF8String for the umlaut
    assert auth.format_dn(der) == "CN=Zürich, Main, O=a,b, E=carol@example.org, OU=Ops, ST=ZH"


@pytest.mark.parametrize("text, words", [
    ("", "empty identity"),
    ("   ", "empty identity"),
    ("C=CH, moon", "is not TYPE=value"),
    ("C=CH, XYZ=moon", "unknown attribute 'XYZ'"),
    ("C=Switzerland, CN=moon", "not two letters"),
    ("ipv4:300.1.1.1", "identity 'ipv4:300.1.1.1'"),
    ("@#zz", "identity '@#zz'"),
])
def test_bad_identities_say_what_is_wrong(text, words):
    with pytest.raises(ValueError, match=words):
        auth.identity_from_string(text)


@pytest.mark.parametrize("text", [
    "198.51.100.1", "2001:db8::1", "vpn.example.org", "carol@example.org",
    "C=CH, O=strongSwan, CN=moon"])
def test_format_identity_round_trips(text):
    assert auth.format_identity(*auth.identity_from_string(text)) == text


def test_format_identity_other_types():
    assert auth.format_identity(IdType.KEY_ID, b"\x01\x02") == "@#0102"
    assert auth.format_identity(IdType.NULL, b"") == "(null)"
    assert auth.format_identity(IdType.DER_ASN1_GN, b"\x30\x00") == "DER_ASN1_GN #3000"
    assert auth.format_identity(200, b"\xff") == "ID type 200 #ff"
    # malformed data never raises, it shows as hex
    assert auth.format_identity(IdType.IPV4_ADDR, b"\x01\x02") == "IPV4_ADDR #0102"
    assert auth.format_identity(IdType.DER_ASN1_DN, b"\x31\x00") == "DER_ASN1_DN #3100"


def test_dns_equal_ignores_case_and_string_type():
    printable = auth.dn_from_string("C=CH, CN=Moon")
    utf8 = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "moon")]).public_bytes()
    assert printable != utf8
    assert certificates.dns_equal(printable, utf8)
    assert not certificates.dns_equal(printable, auth.dn_from_string("C=CH, CN=sun"))
    assert not certificates.dns_equal(printable, b"\x30\x05junk")


def test_der_reader_rejects_truncation():
    with pytest.raises(ValueError, match="truncated"):
        auth.read_der(b"\x30\x05\x01")
    with pytest.raises(ValueError, match="truncated"):
        auth.read_der(b"\x30")
    with pytest.raises(ValueError, match="unsupported DER length"):
        auth.read_der(b"\x30\x80")
    tag, content, end = auth.read_der(b"\x04\x81\x80" + bytes(128))
    assert (tag, len(content), end) == (4, 128, 131)
    with pytest.raises(ValueError):
        auth.decode_oid(b"")


# --- CERTREQ and loading ----------------------------------------------------------------------

def test_certreq_hashes_are_sha1_of_subject_public_key_info():
    first, second = Pki("A"), Pki("B", key_kind="rsa2048")
    data = auth.certreq_hashes([first.cert, second.cert])
    spki = first.cert.public_key().public_bytes(
        DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert len(data) == 40
    assert data[:20] == hashlib.sha1(spki).digest()
    assert auth.certreq_hashes([]) == b""


def test_load_certificates_pem_bundle_der_and_errors(tmp_path):
    pki = Pki()
    cert, _ = pki.issue("vpn.example.org")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(cert.public_bytes(PEM) + pki.cert.public_bytes(PEM))
    assert auth.load_certificates(bundle) == [cert, pki.cert]
    der = tmp_path / "cert.der"
    der.write_bytes(cert.public_bytes(DER))
    assert auth.load_certificates(str(der)) == [cert]
    assert auth.load_certificates(cert.public_bytes(DER)) == [cert]
    junk = tmp_path / "junk.crt"
    junk.write_bytes(b"not a certificate")
    with pytest.raises(CertificateError, match=f"{junk} holds no PEM or DER certificate"):
        auth.load_certificates(junk)
    with pytest.raises(CertificateError, match="cannot read .*missing.pem"):
        auth.load_certificates(tmp_path / "missing.pem")


def test_load_trust_anchors_from_directory_and_file(tmp_path):
    first, second = Pki("A"), Pki("B")
    (tmp_path / "a.pem").write_bytes(first.cert.public_bytes(PEM))
    (tmp_path / "b.der").write_bytes(second.cert.public_bytes(DER))
    (tmp_path / "sub").mkdir()  # directories inside are skipped
    (tmp_path / "ca.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")  # and non-certificates
    server_cert, _ = first.issue("vpn.example.org")
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(PEM))  # and non-CAs
    assert auth.load_trust_anchors(tmp_path) == [first.cert, second.cert]
    assert auth.load_trust_anchors(tmp_path / "a.pem") == [first.cert]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CertificateError, match="no CA certificates in directory"):
        auth.load_trust_anchors(empty)


@pytest.mark.parametrize("kind", ["rsa2048", "ec384", "ed25519"])
def test_load_private_key_pem_and_der(tmp_path, kind):
    key = make_key(kind)
    pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.private_bytes(DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (tmp_path / "key.pem").write_bytes(pem)
    loaded = auth.load_private_key(tmp_path / "key.pem")
    assert loaded.public_key() == key.public_key()
    assert auth.load_private_key(der).public_key() == key.public_key()


def test_load_private_key_encrypted_and_failures(tmp_path):
    key = make_key("ec256")
    pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"hunter2-pass"))
    assert auth.load_private_key(pem, password=b"hunter2-pass").public_key() == key.public_key()
    with pytest.raises(CertificateError, match="cannot load private key from data") as info:
        auth.load_private_key(pem, password=b"wrong-pass")
    assert "hunter2" not in str(info.value) and "wrong-pass" not in str(info.value)
    with pytest.raises(CertificateError, match="cannot load private key"):
        auth.load_private_key(b"garbage")
    dsa_key = dsa.generate_private_key(2048).private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(CertificateError, match="unsupported key type"):
        auth.load_private_key(dsa_key)


def test_a_damaged_rsa_key_loads_unvalidated_but_still_signs_correctly():
    """load_private_key skips RSA key validation (our own key; ~40 ms per attempt). What that
    check would catch cannot leak the key: with a damaged CRT exponent, OpenSSL notices the
    faulty CRT result and signs the slow way, so the signature is right (no Bellcore gcd leak)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = make_key("rsa2048")
    numbers = key.private_numbers()
    damaged = rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d, numbers.dmp1 ^ 0x10,
                                    numbers.dmq1, numbers.iqmp, numbers.public_numbers)
    der = damaged.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    loaded = auth.load_private_key(der)
    signature = loaded.sign(b"octets", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(signature, b"octets", padding.PKCS1v15(), hashes.SHA256())


# --- validation -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture(scope="module")
def intermediate(pki):
    return pki.issue("Test Intermediate CA", ca=True)


def test_valid_chain_through_intermediate_from_cert_payload_bytes(pki, intermediate):
    cert, _ = pki.issue("vpn.example.org", issuer=intermediate)
    chain = validate_certificate(cert.public_bytes(DER), [intermediate[0].public_bytes(DER)],
                                 [pki.cert], "vpn.example.org", NOW)
    assert chain == [cert, intermediate[0], pki.cert]


def test_trust_anchors_may_be_a_directory_path(pki, tmp_path):
    (tmp_path / "ca.pem").write_bytes(pki.cert.public_bytes(PEM))
    cert, _ = pki.issue("vpn.example.org")
    assert validate_certificate(cert, [], str(tmp_path), "vpn.example.org", NOW)[-1] == pki.cert


@pytest.mark.parametrize("san, identity", [
    (("vpn.example.org",), "VPN.example.org"),
    (("198.51.100.1",), "198.51.100.1"),
    (("2001:db8::1",), (IdType.IPV6_ADDR, ipaddress.ip_address("2001:db8::1").packed)),
    (("gw@example.org",), "gw@example.org"),
    ((), "C=CH, O=Cygnet, CN=moon"),  # DN identities match the subject
])
def test_identity_matches_subject_alt_name_or_subject(pki, san, identity):
    cert, _ = pki.issue("moon", san=san)
    validate_certificate(cert, [], [pki.cert], identity, NOW)


def test_wrong_san_is_named_in_plain_words(pki):
    cert, _ = pki.issue("vpn.example.org")
    with pytest.raises(CertificateError) as info:
        validate_certificate(cert, [], [pki.cert], "198.51.100.1", NOW)
    assert str(info.value) == ("certificate for vpn.example.org does not match the gateway "
                               "identity 198.51.100.1")


def test_cn_alone_does_not_match_an_fqdn(pki):
    cert, _ = pki.issue("vpn.example.org", san=())
    with pytest.raises(CertificateError, match="does not match the gateway identity"):
        validate_certificate(cert, [], [pki.cert], "vpn.example.org", NOW)
    with pytest.raises(CertificateError, match="does not match the gateway identity @#01"):
        validate_certificate(cert, [], [pki.cert], (IdType.KEY_ID, b"\x01"), NOW)


def test_expired_and_not_yet_valid(pki):
    expired, _ = pki.issue("vpn.example.org",
                           not_before=NOW_DT - dt.timedelta(days=400),
                           not_after=dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc))
    with pytest.raises(CertificateError) as info:
        validate_certificate(expired, [], [pki.cert], "vpn.example.org", NOW)
    assert str(info.value) == ("certificate for vpn.example.org expired on "
                               "2026-05-01 12:00:00 UTC")
    future, _ = pki.issue("vpn.example.org", not_before=NOW_DT + dt.timedelta(days=2))
    with pytest.raises(CertificateError, match="is not valid before 2026-06-03"):
        validate_certificate(future, [], [pki.cert], "vpn.example.org", NOW)
    # the same certificates are fine at a time inside their validity
    validate_certificate(future, [], [pki.cert], "vpn.example.org", NOW + 3 * 86400)


def test_untrusted_ca(pki):
    other = Pki("Evil CA")
    cert, _ = other.issue("vpn.example.org")
    with pytest.raises(CertificateError) as info:
        validate_certificate(cert, [other.cert], [pki.cert], "vpn.example.org", NOW)
    assert "certificate for vpn.example.org is not signed by a trusted CA" in str(info.value)
    assert "CN=Evil CA" in str(info.value)


def test_forged_issuer_name_with_wrong_key_is_untrusted(pki):
    impostor_key = make_key("ec256")
    cert, _ = pki.issue("vpn.example.org", issuer=(pki.cert, impostor_key))
    with pytest.raises(CertificateError, match="not signed by a trusted CA"):
        validate_certificate(cert, [], [pki.cert], "vpn.example.org", NOW)


def test_missing_intermediate_is_untrusted(pki, intermediate):
    cert, _ = pki.issue("vpn.example.org", issuer=intermediate)
    with pytest.raises(CertificateError, match="no trusted path to issuer .*Intermediate"):
        validate_certificate(cert, [], [pki.cert], "vpn.example.org", NOW)


@pytest.mark.parametrize("eku", [
    (ExtendedKeyUsageOID.SERVER_AUTH,), (IKE_INTERMEDIATE,),
    (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,), None])
def test_accepted_extended_key_usages(pki, eku):
    cert, _ = pki.issue("vpn.example.org", eku=eku)
    validate_certificate(cert, [], [pki.cert], "vpn.example.org", NOW)


def test_client_only_eku_is_refused(pki):
    cert, _ = pki.issue("vpn.example.org", eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    with pytest.raises(CertificateError, match="is not meant for VPN gateways .*serverAuth"):
        validate_certificate(cert, [], [pki.cert], "vpn.example.org", NOW)


def test_intermediate_that_is_not_a_ca(pki):
    fake_ca = pki.issue("Not A CA", ca=False)
    cert, _ = pki.issue("vpn.example.org", issuer=fake_ca)
    with pytest.raises(CertificateError, match="CN=Not A CA is not a CA certificate"):
        validate_certificate(cert, [fake_ca[0]], [pki.cert], "vpn.example.org", NOW)


def test_intermediate_without_key_cert_sign(pki):
    sub = pki.issue("Signing-less CA", ca=True, key_usage=dict(crl_sign=True))
    cert, _ = pki.issue("vpn.example.org", issuer=sub)
    with pytest.raises(CertificateError, match="may not sign certificates"):
        validate_certificate(cert, [sub[0]], [pki.cert], "vpn.example.org", NOW)


def test_path_length_constraint(pki):
    upper = pki.issue("Upper CA", ca=True, path_length=0)
    lower = pki.issue("Lower CA", ca=True, issuer=upper)
    cert, _ = pki.issue("vpn.example.org", issuer=lower)
    with pytest.raises(CertificateError, match="Upper CA allows only 0 CAs below it"):
        validate_certificate(cert, [lower[0], upper[0]], [pki.cert], "vpn.example.org", NOW)


def test_expired_intermediate_and_expired_root(pki):
    old_sub = pki.issue("Old CA", ca=True, not_before=NOW_DT - dt.timedelta(days=90),
                        not_after=NOW_DT - dt.timedelta(days=1))
    cert, _ = pki.issue("vpn.example.org", issuer=old_sub)
    with pytest.raises(CertificateError, match="intermediate certificate .*Old CA expired on"):
        validate_certificate(cert, [old_sub[0]], [pki.cert], "vpn.example.org", NOW)
    root = Pki("Root")
    cert, _ = root.issue("vpn.example.org", not_after=NOW_DT + dt.timedelta(days=800))
    after_root_expiry = root.cert.not_valid_after_utc.timestamp() + 1
    with pytest.raises(CertificateError, match="CA certificate .*CN=Root expired on"):
        validate_certificate(cert, [], [root.cert], "vpn.example.org", after_root_expiry)


def test_unknown_critical_extension_is_refused(pki):
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    cert, _ = pki.issue("vpn.example.org", extra_extensions=[(odd, True)])
    with pytest.raises(CertificateError, match="unsupported critical extension 1.3.6.1.4.1.99999"):
        validate_certificate(cert, [], [pki.cert], "vpn.example.org", NOW)
    harmless, _ = pki.issue("vpn.example.org", extra_extensions=[(odd, False)])
    validate_certificate(harmless, [], [pki.cert], "vpn.example.org", NOW)


def test_pinned_end_entity_certificate_is_its_own_anchor(pki):
    cert, _ = pki.issue("vpn.example.org")
    assert validate_certificate(cert, [], [cert], "vpn.example.org", NOW) == [cert]


@pytest.mark.parametrize("kind", ["ed25519", "rsa2048", "ec384"])
def test_chains_with_other_key_types(kind):
    root = Pki("Root " + kind, key_kind=kind)
    sub = root.issue("Sub", ca=True, key_kind=kind)
    cert, _ = root.issue("vpn.example.org", issuer=sub, key_kind=kind)
    assert len(validate_certificate(cert, [sub[0]], [root.cert], "vpn.example.org", NOW)) == 3


def test_rsa_pss_signed_certificate():
    root = Pki("PSS Root", key_kind="rsa2048")
    key = make_key("rsa2048")
    builder = (x509.CertificateBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vpn.example.org")]))
        .issuer_name(root.cert.subject).public_key(key.public_key()).serial_number(7)
        .not_valid_before(NOW_DT - dt.timedelta(days=1))
        .not_valid_after(NOW_DT + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("vpn.example.org")]), False))
    cert = builder.sign(root.key, hashes.SHA256(), rsa_padding=padding.PSS(
        padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH))
    validate_certificate(cert, [], [root.cert], "vpn.example.org", NOW)


def test_unparseable_certificate_payload(pki):
    with pytest.raises(CertificateError, match="cannot be parsed"):
        validate_certificate(b"\x30\x03abc", [], [pki.cert], "vpn.example.org", NOW)


def test_describe_certificate_falls_back_to_cn_and_dn(pki):
    ip_cert, _ = pki.issue("x", san=("198.51.100.1",))
    assert auth.describe_certificate(ip_cert) == "198.51.100.1"
    cn_cert, _ = pki.issue("moon", san=())
    assert auth.describe_certificate(cn_cert) == "moon"
    dn_cert, _ = pki.issue("", san=(), dn=x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cygnet")]))
    assert auth.describe_certificate(dn_cert) == "O=Cygnet"
