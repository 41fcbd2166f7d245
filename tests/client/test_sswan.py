"""strongSwan Android .sswan profiles (client/sswan.py).

The profiles are written here from the documented format, with a real CA, client
certificate and PKCS#12 bundle made with cryptography for each run.
"""

import base64
import datetime
import ipaddress
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from client.profile import load_profile
from client.sswan import (
    SswanError,
    UnsupportedFieldWarning,
    import_sswan,
    load_sswan,
    profile_name_from,
    read_sswan,
)

P12_PASSWORD = b"p12-unlock-words"


def _name(*parts):
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _certificate(subject, issuer, public_key, signing_key, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signing_key, hashes.SHA256())
    )


class Pki:
    def __init__(self):
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name((NameOID.COUNTRY_NAME, "CH"), (NameOID.ORGANIZATION_NAME, "Cygnet Test"),
                        (NameOID.COMMON_NAME, "Cygnet Test CA"))
        self.ca = _certificate(ca_name, ca_name, self.ca_key.public_key(), self.ca_key, ca=True)
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        client_name = _name((NameOID.COUNTRY_NAME, "CH"), (NameOID.ORGANIZATION_NAME, "Cygnet Test"),
                            (NameOID.COMMON_NAME, "carol@example.org"))
        self.client = _certificate(client_name, ca_name, self.client_key.public_key(), self.ca_key, ca=False)

    def ca_b64(self) -> str:
        return base64.b64encode(self.ca.public_bytes(serialization.Encoding.DER)).decode()

    def p12_b64(self, password=P12_PASSWORD) -> str:
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        data = pkcs12.serialize_key_and_certificates(b"carol", self.client_key, self.client,
                                                     [self.ca], encryption)
        return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "p12-password"
    path.write_bytes(P12_PASSWORD + b"\n")
    os.chmod(path, 0o600)
    return path


def write_sswan(folder: Path, obj: dict, name: str = "office.sswan") -> Path:
    path = folder / name
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return path


def base_profile(sswan_type: str, **extra) -> dict:
    obj = {
        "uuid": str(uuid.uuid4()),
        "name": "Office VPN",
        "type": sswan_type,
        "remote": {"addr": "vpn.example.org"},
    }
    obj.update(extra)
    return obj


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------------------------
# One representative profile per type


def test_ikev2_eap(tmp_path, pki):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"})
    obj["remote"].update({"port": 4500, "id": "vpn.example.org", "cert": pki.ca_b64()})
    material = tmp_path / "material"
    result = read_sswan(write_sswan(tmp_path, obj), material)
    p = result.profile
    assert result.warnings == []
    assert p.name == "office-vpn"
    assert p.gateways == ("vpn.example.org",) and p.port == 4500 and p.remote_id == "vpn.example.org"
    assert p.auth == "eap-mschapv2" and p.eap_identity == "carol"
    assert p.cert is None and p.key is None
    assert p.ca == material / "ca.pem"
    assert x509.load_pem_x509_certificate(p.ca.read_bytes()) == pki.ca
    assert mode_of(p.ca) == 0o600 and mode_of(material) == 0o700


def test_ikev2_cert_splits_the_encrypted_pkcs12(tmp_path, pki, password_file):
    obj = base_profile("ikev2-cert", local={"p12": pki.p12_b64(), "id": "carol@example.org"})
    obj["remote"]["cert"] = pki.ca_b64()
    material = tmp_path / "m"
    p = read_sswan(write_sswan(tmp_path, obj), material, p12_password_file=password_file).profile
    assert p.auth == "pubkey" and p.local_id == "carol@example.org"
    assert (p.cert, p.key) == (material / "cert.pem", material / "key.pem")
    chain = x509.load_pem_x509_certificates(p.cert.read_bytes())
    assert chain == [pki.client, pki.ca]  # our certificate first, then the chain
    key = serialization.load_pem_private_key(p.key.read_bytes(), password=None)
    assert key.public_key() == pki.client.public_key()
    assert mode_of(p.cert) == 0o600 and mode_of(p.key) == 0o600


def test_ikev2_cert_eap(tmp_path, pki):
    obj = base_profile("ikev2-cert-eap", local={"p12": pki.p12_b64(password=None), "eap_id": "carol"})
    p = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m").profile
    assert p.auth == "pubkey+eap-mschapv2" and p.eap_identity == "carol"
    assert p.cert.is_file() and p.key.is_file()


def test_ikev2_eap_tls_takes_the_identity_from_the_certificate(tmp_path, pki, password_file):
    obj = base_profile("ikev2-eap-tls", local={"p12": pki.p12_b64()})
    p = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m", p12_password_file=password_file).profile
    assert p.auth == "eap-tls"
    assert p.local_id == "C=CH, O=Cygnet Test, CN=carol@example.org"


def test_ikev2_byod_eap_is_plain_eap_with_a_warning(tmp_path):
    path = write_sswan(tmp_path, base_profile("ikev2-byod-eap", local={"eap_id": "carol"}))
    result = read_sswan(path, tmp_path / "m")
    assert result.profile.auth == "eap-mschapv2"
    assert result.warnings == [f"{path}: field 'type' 'ikev2-byod-eap': BYOD (TNC) assessment is not "
                               "supported; imported as plain EAP authentication"]


# ---------------------------------------------------------------------------------------------
# Optional fields


def test_proposals_mtu_and_split_tunneling(tmp_path):
    pytest.importorskip("ike.proposals")
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"})
    obj.update({"ike-proposal": "aes256gcm16-prfsha384-ecp384", "esp-proposal": "aes256gcm16",
                "mtu": 1400})
    p = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m").profile
    assert (p.ike, p.esp, p.mtu) == ("aes256gcm16-prfsha384-ecp384", "aes256gcm16", 1400)


def test_split_tunneling_subnets_addresses_and_ranges(tmp_path):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"})
    obj["split-tunneling"] = {"subnets": ["10.0.0.0/8", "192.168.1.7", "172.16.0.0 - 172.16.0.5",
                                          "fd00::/64"]}
    p = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m").profile
    assert [str(n) for n in p.remote_ts] == [
        "10.0.0.0/8", "172.16.0.0/30", "172.16.0.4/31", "192.168.1.7/32", "fd00::/64"]


def test_split_tunneling_excluded_is_subtracted(tmp_path):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"})
    obj["split-tunneling"] = {"subnets": "10.0.0.0/8 fd00::/16", "excluded": ["10.128.0.0/9", "fd00::/16"]}
    p = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m").profile
    assert [str(n) for n in p.remote_ts] == ["10.0.0.0/9"]


def test_split_tunneling_excluded_alone_subtracts_from_everything(tmp_path):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"})
    obj["split-tunneling"] = {"excluded": "192.168.0.0/16"}
    p = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m").profile
    v4 = [n for n in p.remote_ts if n.version == 4]
    assert ipaddress.ip_network("::/0") in p.remote_ts
    assert not any(n.overlaps(ipaddress.ip_network("192.168.0.0/16")) for n in v4)
    assert sum(n.num_addresses for n in v4) == 2**32 - 2**16


def test_unsupported_and_unknown_fields_are_named_in_warnings(tmp_path, pki):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol", "rsa-pss": True, "p12": pki.p12_b64(None),
                                           "colour": "blue"})
    obj["remote"].update({"certreq": False, "revocation": {"ocsp": False}})
    obj.update({"dns-servers": ["10.0.0.53"], "nat-keepalive": 30, "apps": ["org.example.app"],
                "excluded-apps": ["org.example.other"], "proxy-host": "proxy.example.org",
                "split-tunneling": {"block-ipv4": True, "block-ipv6": True}})
    path = write_sswan(tmp_path, obj)
    warnings = read_sswan(path, tmp_path / "m").warnings
    fields = [w.split("'")[1] for w in warnings]
    assert sorted(fields) == sorted([
        "local.p12", "remote.certreq", "remote.revocation", "local.rsa-pss", "dns-servers",
        "nat-keepalive", "split-tunneling.block-ipv4", "split-tunneling.block-ipv6", "apps",
        "excluded-apps", "proxy-host", "local.colour"])
    assert all(w.startswith(f"{path}: field '") for w in warnings)
    assert f"{path}: field 'proxy-host' is not known to Cygnet and was ignored" in warnings
    assert f"{path}: field 'local.p12' is not used by type 'ikev2-eap' and was ignored" in warnings
    assert not (tmp_path / "m" / "key.pem").exists()  # an unused key is not written anywhere


def test_load_sswan_reports_warnings_as_python_warnings(tmp_path):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"}, **{"nat-keepalive": 20})
    with pytest.warns(UnsupportedFieldWarning, match="field 'nat-keepalive' is not supported"):
        p = load_sswan(write_sswan(tmp_path, obj), tmp_path / "m")
    assert p.eap_identity == "carol"


def test_numeric_strings_are_taken_like_the_app_does(tmp_path):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"}, mtu="1350")
    obj["remote"]["port"] = "4500"
    p = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m").profile
    assert (p.port, p.mtu) == (4500, 1350)


# ---------------------------------------------------------------------------------------------
# Errors


def error_of(tmp_path, obj, **options) -> str:
    path = write_sswan(tmp_path, obj) if not isinstance(obj, str) else _raw(tmp_path, obj)
    with pytest.raises(SswanError) as info:
        read_sswan(path, tmp_path / "m", **options)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: "):]


def _raw(tmp_path, text):
    path = tmp_path / "office.sswan"
    path.write_text(text)
    return path


def _without(obj, key):
    obj = dict(obj)
    del obj[key]
    return obj


EAP = base_profile("ikev2-eap", local={"eap_id": "carol"})


@pytest.mark.parametrize("obj,expected", [
    ("{not json", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[1, 2]", "the top level must be a JSON object"),
    (_without(EAP, "uuid"), "field 'uuid': is required"),
    ({**EAP, "uuid": "1234"}, "field 'uuid': '1234' is not a UUID (RFC 4122)"),
    (_without(EAP, "name"), "field 'name': is required"),
    ({**EAP, "type": "ikev2-psk"}, "field 'type': 'ikev2-psk' is not one of ikev2-eap, ikev2-cert, "
     "ikev2-cert-eap, ikev2-eap-tls, ikev2-byod-eap"),
    (_without(EAP, "remote"), "field 'remote': is required"),
    ({**EAP, "remote": "vpn.example.org"}, "field 'remote': must be a JSON object"),
    ({**EAP, "remote": {"port": 500}}, "field 'remote.addr': is required"),
    ({**EAP, "remote": {"addr": "vpn.example.org", "port": 99999}},
     "field 'remote.port': 99999 is out of range (allowed: from 1 to 65535)"),
    ({**EAP, "remote": {"addr": "vpn.example.org", "port": True}}, "field 'remote.port': must be a whole number"),
    ({**EAP, "remote": {"addr": "bad host!"}}, "field 'remote.addr': 'bad host!' is not a host name or IP address"),
    ({**EAP, "remote": {"addr": "vpn.example.org", "cert": "%%%"}}, "field 'remote.cert': is not valid base64"),
    ({**EAP, "remote": {"addr": "vpn.example.org", "cert": "aGVsbG8="}},
     "field 'remote.cert': is not an X.509 certificate (DER or PEM)"),
    ({**EAP, "local": {}}, "field 'local.eap_id': is required for type 'ikev2-eap' (the EAP user name)"),
    ({**EAP, "local": None, "split-tunneling": None},
     "field 'local.eap_id': is required for type 'ikev2-eap' (the EAP user name)"),
    ({**EAP, "local": ["carol"]}, "field 'local': must be a JSON object"),
    ({**EAP, "name": 7}, "field 'name': must be a string"),
    ({**EAP, "mtu": 100}, "field 'mtu': 100 is out of range (allowed: from 1280 to 9000)"),
    ({**EAP, "split-tunneling": {"subnets": ["10.0.0.0/8", "nonsense"]}},
     "field 'split-tunneling.subnets': 'nonsense' is not a subnet, address or address range"),
    ({**EAP, "split-tunneling": {"subnets": "10.0.0.0/8", "excluded": "0.0.0.0/0"}},
     "field 'split-tunneling.excluded': excludes every included network"),
    (base_profile("ikev2-cert"), "field 'local.p12': is required for type 'ikev2-cert' (the client "
     "certificate and key as base64 PKCS#12)"),
])
def test_errors_name_the_field(tmp_path, obj, expected):
    assert error_of(tmp_path, obj) == expected


def test_wrong_pkcs12_password(tmp_path, pki):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    os.chmod(wrong, 0o600)
    obj = base_profile("ikev2-cert", local={"p12": pki.p12_b64()})
    message = error_of(tmp_path, obj, p12_password_file=wrong)
    assert message == "field 'local.p12': wrong password, or not a PKCS#12 bundle"
    assert not (tmp_path / "m" / "key.pem").exists()


def test_encrypted_pkcs12_without_terminal_or_password_file(tmp_path, pki):
    path = write_sswan(tmp_path, base_profile("ikev2-cert", local={"p12": pki.p12_b64()}))
    with pytest.raises(SswanError) as info:
        read_sswan(path, tmp_path / "m")  # pytest's stdin is not a terminal
    assert str(info.value) == (f"the PKCS#12 in {path} (local.p12) is protected by a password: run on a "
                               "terminal to be asked, or give a password file (mode 600)")


def test_pkcs12_password_file_must_be_private(tmp_path, pki, password_file):
    os.chmod(password_file, 0o644)
    path = write_sswan(tmp_path, base_profile("ikev2-cert", local={"p12": pki.p12_b64()}))
    with pytest.raises(SswanError, match=r"is accessible by group or others \(mode 0644\); run: chmod 600"):
        read_sswan(path, tmp_path / "m", p12_password_file=password_file)


def test_bad_proposal_names_the_sswan_field(tmp_path):
    pytest.importorskip("ike.proposals")
    message = error_of(tmp_path, {**EAP, "ike-proposal": "aes256-nonsense99"})
    assert message.startswith("field 'ike-proposal': ") and "nonsense99" in message


# ---------------------------------------------------------------------------------------------
# `cygnet import`: the TOML written loads back equal


def test_import_writes_a_profile_that_loads_back_equal(tmp_path, pki, password_file):
    obj = base_profile("ikev2-cert-eap", local={"p12": pki.p12_b64(), "eap_id": "carol", "id": "carol@example.org"})
    obj["remote"].update({"id": "vpn.example.org", "port": 4500, "cert": pki.ca_b64()})
    obj["split-tunneling"] = {"subnets": ["10.0.0.0/8", "fd00::/8"]}
    obj["mtu"] = 1400
    sswan = write_sswan(tmp_path, obj)
    profiles = tmp_path / "profiles"
    result = import_sswan(sswan, profile_dir=profiles, p12_password_file=password_file)
    assert result.toml_path == profiles / "office-vpn.toml"
    direct = read_sswan(sswan, tmp_path / "other", p12_password_file=password_file).profile
    loaded = load_profile(str(result.toml_path))
    assert loaded == result.profile
    assert loaded.ca == profiles / "office-vpn" / "ca.pem"
    # Same settings as a direct read, apart from where the material was written.
    assert loaded.remote_ts == direct.remote_ts and loaded.auth == direct.auth == "pubkey+eap-mschapv2"
    text = result.toml_path.read_text()
    assert 'ca = "office-vpn/ca.pem"' in text and 'key = "office-vpn/key.pem"' in text
    assert P12_PASSWORD.decode() not in text
    assert mode_of(profiles / "office-vpn") == 0o700
    assert mode_of(result.toml_path) == 0o644


def test_import_by_name_then_lookup_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    sswan = write_sswan(tmp_path, EAP)
    result = import_sswan(sswan, name="work")
    assert result.toml_path == tmp_path / "config" / "cygnet" / "work.toml"
    assert load_profile("work") == result.profile and result.profile.name == "work"


def test_import_refuses_to_overwrite_without_force(tmp_path):
    sswan = write_sswan(tmp_path, EAP)
    import_sswan(sswan, profile_dir=tmp_path)
    with pytest.raises(SswanError, match=r"office-vpn.toml already exists \(use --force to replace it\)$"):
        import_sswan(sswan, profile_dir=tmp_path)
    changed = {**EAP, "remote": {"addr": "vpn2.example.org"}}
    write_sswan(tmp_path, changed)
    assert import_sswan(sswan, profile_dir=tmp_path, force=True).profile.gateway == "vpn2.example.org"


@pytest.mark.parametrize("display,expected", [
    ("Office VPN", "office-vpn"),
    ("  Zürich / HQ (IKEv2)  ", "z-rich-hq-ikev2"),
    ("!!!", "imported"),
    ("x" * 100, "x" * 64),
])
def test_profile_names_from_display_names(display, expected):
    assert profile_name_from(display) == expected


@pytest.mark.parametrize("remote_id", [None, "%any", "%ANY"])
def test_no_remote_id_or_any_means_the_dialled_address_as_in_the_android_app(tmp_path, remote_id):
    """issue 13 §1: the app then requires remote.addr as a subjectAltName (AUTH_RULE_IDENTITY_LOOSE
    with the server address); our profile leaves remote_id unset, which means the same."""
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"})
    if remote_id is None:
        obj["remote"].pop("id", None)
    else:
        obj["remote"]["id"] = remote_id
    assert read_sswan(write_sswan(tmp_path, obj), tmp_path / "m").profile.remote_id is None


def test_strict_revocation_is_taken(tmp_path):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"})
    obj["remote"]["revocation"] = {"strict": True}
    result = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m")
    assert result.profile.revocation == "strict" and result.warnings == []
    obj["remote"]["revocation"] = {"crl": True, "ocsp": True}
    result = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m")
    assert result.profile.revocation == "relaxed" and result.warnings == []


def test_block_ipv4_and_ipv6_become_the_profile_keys(tmp_path):
    obj = base_profile("ikev2-eap", local={"eap_id": "carol"},
                       **{"split-tunneling": {"block-ipv6": True}})
    result = read_sswan(write_sswan(tmp_path, obj), tmp_path / "m")
    assert (result.profile.block_ipv4, result.profile.block_ipv6) == (None, True)
    assert any("taken as block_ipv6 = true" in w for w in result.warnings)
