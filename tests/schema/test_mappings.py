"""connection_schema: both directions of every mapping (TOML, vpn.data, .sswan <-> Profile),
and vpn.data <-> .sswan through Profile. Files are real (a CA, a client certificate and key
made with cryptography); nothing is mocked."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
from pathlib import Path

import pytest

from connection_schema.errors import ConversionError
from connection_schema.profile import Profile
from connection_schema.sswan import read_sswan, sswan_from_profile
from connection_schema.toml_profile import format_toml, profile_from_bytes, profile_to_dict
from connection_schema.vpn_data import profile_from_vpn_data, vpn_data_from_profile
from tests.gui.certs import make_pki

UUID = "0b7e2c44-1111-2222-3333-444455556666"


def no_password(what: str) -> bytes:
    raise AssertionError(f"not expected to ask for {what}")


def toml_profile(folder: Path, text: str) -> Profile:
    path = folder / "office.toml"
    path.write_text(text)
    return profile_from_bytes(text.encode(), path)


def same_meaning(a: Profile, b: Profile) -> bool:
    """Equal apart from the name (vpn.data names a profile nm-UUID)."""
    return dataclasses.replace(a, name="x") == dataclasses.replace(b, name="x")


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


def eap_toml(pki) -> str:
    return (f'gateway = ["vpn.example.org", "vpn2.example.org"]\nport = 4500\nauth = "eap-md5"\n'
            f'eap_identity = "carol"\nlocal_id = "carol@example.org"\nremote_id = "vpn.example.org"\n'
            f'ca = "{pki["ca"]}"\nike = "aes256gcm16-prfsha384-x25519,aes128-sha256-modp3072"\n'
            f'esp = "aes256gcm16"\nvirtual_ip = ["ipv4"]\nremote_ts = ["10.0.0.0/8", "fd00::/8"]\n'
            f'dataplane = "userspace"\nencap = true\ndpd = 10\nmtu = 1400\ndns = false\n')


def test_toml_profile_vpn_data_profile_round_trip(tmp_path, pki):
    profile = toml_profile(tmp_path, eap_toml(pki))
    data = vpn_data_from_profile(profile)
    assert data["method"] == "eap" and data["cygnet-eap-method"] == "md5"
    assert data["remote-ts"] == "10.0.0.0/8;fd00::/8" and data["cygnet-ipv6"] == "no"
    back = profile_from_vpn_data(data, UUID)
    assert back.name == f"nm-{UUID}"
    assert same_meaning(back, profile)


def test_certificate_profile_round_trips_through_vpn_data(tmp_path, pki):
    profile = toml_profile(tmp_path, f'gateway = "vpn.example.org"\nauth = "pubkey"\n'
                                     f'cert = "{pki["cert"]}"\nkey = "{pki["key"]}"\nca = "{pki["ca"]}"\n')
    assert same_meaning(profile_from_vpn_data(vpn_data_from_profile(profile), UUID), profile)


def test_profile_toml_profile_round_trip(tmp_path, pki):
    profile = toml_profile(tmp_path, eap_toml(pki))
    text = format_toml(profile_to_dict(profile, relative_to=tmp_path))
    again = profile_from_bytes(text.encode(), tmp_path / "again.toml")
    assert again == dataclasses.replace(profile, name=profile.name) and again.ca == pki["ca"]


def test_vpn_data_profile_vpn_data_round_trip(pki):
    data = {"address": "vpn.example.org", "method": "eap", "user": "carol",
            "remote-identity": "vpn.example.org", "certificate": str(pki["ca"]), "virtual": "yes",
            "proposal": "yes", "ike": "aes256gcm16-prfsha384-x25519", "esp": "aes256gcm16",
            "remote-ts": "10.0.0.0/8", "cygnet-dpd": "10", "cygnet-mtu": "1400",
            "cygnet-dataplane": "kernel", "cygnet-dns": "no", "encap": "yes",
            "cygnet-gateways": "vpn2.example.org", "server-port": "4500"}
    assert vpn_data_from_profile(profile_from_vpn_data(data, UUID)) == data


def sswan_eap(pki) -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ca = x509.load_pem_x509_certificate(pki["ca"].read_bytes()).public_bytes(Encoding.DER)
    return {"uuid": UUID, "name": "Office", "type": "ikev2-eap",
            "remote": {"addr": "vpn.example.org", "port": 4500, "id": "vpn.example.org",
                       "cert": base64.b64encode(ca).decode()},
            "local": {"eap_id": "carol"}, "ike-proposal": "aes256gcm16-prfsha384-x25519",
            "esp-proposal": "aes256gcm16", "mtu": 1400,
            "split-tunneling": {"subnets": "10.0.0.0/8 fd00::/8"}}


def write_json(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_sswan_profile_sswan_round_trip(tmp_path, pki):
    original = sswan_eap(pki)
    result = read_sswan(write_json(tmp_path / "o.sswan", original), tmp_path / "m", p12_password=no_password)
    assert result.warnings == []
    assert result.profile.remote_ts == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert sswan_from_profile(result.profile, UUID, "Office") == original


def test_certificate_sswan_round_trip_keeps_certificate_and_key(tmp_path, pki):
    from cryptography.hazmat.primitives.serialization import pkcs12

    profile = toml_profile(tmp_path, f'gateway = "gw.example.org"\nauth = "pubkey"\n'
                                     f'cert = "{pki["cert"]}"\nkey = "{pki["key"]}"\n')
    exported = sswan_from_profile(profile, UUID, "lab")
    assert exported["type"] == "ikev2-cert" and exported["remote"] == {"addr": "gw.example.org"}
    again = read_sswan(write_json(tmp_path / "lab.sswan", exported), tmp_path / "m", p12_password=no_password)
    assert again.profile.cert.read_bytes() == pki["cert"].read_bytes()
    bundle = pkcs12.load_pkcs12(base64.b64decode(exported["local"]["p12"]), None)
    assert bundle.key.private_numbers() == pkcs12.load_pkcs12(
        base64.b64decode(sswan_from_profile(again.profile, UUID, "lab")["local"]["p12"]), None
    ).key.private_numbers()


def test_vpn_data_to_sswan_and_back_goes_through_profile(tmp_path, pki):
    data = {"address": "vpn.example.org", "method": "eap", "user": "carol", "virtual": "yes",
            "certificate": str(pki["ca"]), "remote-identity": "vpn.example.org",
            "proposal": "yes", "esp": "aes256gcm16", "cygnet-mtu": "1400", "remote-ts": "10.0.0.0/8"}
    exported = sswan_from_profile(profile_from_vpn_data(data, UUID), UUID, "Office")
    imported = read_sswan(write_json(tmp_path / "x.sswan", exported), tmp_path / "m", p12_password=no_password)
    back = vpn_data_from_profile(imported.profile)
    assert back.pop("certificate") == str(tmp_path / "m" / "ca.pem")
    assert back == {k: v for k, v in data.items() if k != "certificate"}


@pytest.mark.parametrize("auth,words", [("psk", "PSK"), ("eap-md5", "EAP-MD5")])
def test_profiles_the_android_app_cannot_hold_are_refused_for_sswan(auth, words):
    profile = Profile(name="p", gateways=("gw",), auth=auth, eap_identity="u")
    with pytest.raises(ConversionError, match=words):
        sswan_from_profile(profile, UUID, "p")


def test_rfc4739_profiles_have_no_vpn_data_form():
    profile = Profile(name="p", gateways=("gw",), auth="pubkey+eap-mschapv2")
    with pytest.raises(ConversionError, match="not available in NetworkManager connections"):
        vpn_data_from_profile(profile)


@pytest.mark.parametrize("auth", ["eap", "eap-peap", "eap-ttls", "eap-gtc"])
def test_enterprise_eap_profiles_round_trip_through_vpn_data(tmp_path, auth):
    profile = toml_profile(tmp_path, f'gateway = "gw.example.org"\nauth = "{auth}"\neap_identity = "carol"\n')
    data = vpn_data_from_profile(profile)
    assert data["method"] == "eap" and data.get("cygnet-eap-method") == (auth[4:] or None)
    assert same_meaning(profile_from_vpn_data(data, UUID), profile)


@pytest.mark.parametrize("auth,words", [("eap-peap", "EAP-PEAP"), ("eap-ttls", "EAP-TTLS"), ("eap-gtc", "EAP-GTC")])
def test_tunnelled_eap_is_refused_for_sswan_naming_the_method(auth, words):
    with pytest.raises(ConversionError, match=words):
        sswan_from_profile(Profile(name="p", gateways=("gw",), auth=auth, eap_identity="u"), UUID, "p")
