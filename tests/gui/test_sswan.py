"""strongSwan Android .sswan files: import into a new connection, export back, round trip."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (BestAvailableEncryption, load_pem_private_key,
                                                          pkcs12)

from gui.connection import ConversionError, VpnConnection, export_sswan, import_sswan
from gui.connections_window import ConnectionsWindow, write_sswan
from tests.gui.certs import make_pki

UUID = "2a9f1d3c-6b1e-4c56-9a1f-0d3c5e7b9a11"


def sswan_eap(pki) -> dict:
    ca_der = x509.load_pem_x509_certificate(pki["ca"].read_bytes()).public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)
    return {"uuid": UUID, "name": "Office (Zürich)", "type": "ikev2-eap",
            "remote": {"addr": "vpn.example.org", "port": 4500, "id": "vpn.example.org",
                       "cert": base64.b64encode(ca_der).decode()},
            "local": {"eap_id": "carol"},
            "ike-proposal": "aes256gcm16-prfsha384-x25519", "esp-proposal": "aes256gcm16",
            "mtu": 1400, "split-tunneling": {"subnets": "10.0.0.0/8 fd00::/8"}}


def write(tmp_path, obj, name="office.sswan"):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


def no_password(prompt):
    raise AssertionError(f"not expected to ask: {prompt}")


def test_import_eap_profile(tmp_path):
    pki = make_pki(tmp_path)
    connection, warnings = import_sswan(write(tmp_path, sswan_eap(pki)), tmp_path / "material", no_password)
    assert connection.id == "Office (Zürich)"
    data = connection.data
    assert data["address"] == "vpn.example.org" and data["server-port"] == "4500"
    assert data["method"] == "eap" and data["user"] == "carol"
    assert data["remote-identity"] == "vpn.example.org"
    assert data["proposal"] == "yes" and data["ike"] == "aes256gcm16-prfsha384-x25519"
    assert data["esp"] == "aes256gcm16" and data["cygnet-mtu"] == "1400"
    assert data["remote-ts"] == "10.0.0.0/8;fd00::/8"
    ca = (tmp_path / "material" / "ca.pem")
    assert data["certificate"] == str(ca) and ca.read_bytes() == pki["ca"].read_bytes()
    assert warnings == []


def test_eap_round_trip(tmp_path, qtbot):
    pki = make_pki(tmp_path)
    original = sswan_eap(pki)
    connection, _ = import_sswan(write(tmp_path, original), tmp_path / "material", no_password)
    connection.uuid = UUID
    window = ConnectionsWindow(backend=None)
    qtbot.addWidget(window)
    window.show_connections([connection])
    out = tmp_path / "exported.sswan"
    window.export_file(str(out))
    assert "Exported to" in window.message.text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    exported = json.loads(out.read_text())
    expected = dict(original, **{"split-tunneling": {"subnets": "10.0.0.0/8 fd00::/8"}})
    assert exported == expected
    # ... and importing the export gives the same connection back.
    again, _ = import_sswan(out, tmp_path / "material2", no_password)
    assert {k: v for k, v in again.data.items() if k != "certificate"} == \
        {k: v for k, v in connection.data.items() if k != "certificate"}


def test_certificate_profile_with_encrypted_p12_round_trip(tmp_path):
    pki = make_pki(tmp_path)
    cert = x509.load_pem_x509_certificate(pki["cert"].read_bytes())
    key = load_pem_private_key(pki["key"].read_bytes(), None)
    p12 = pkcs12.serialize_key_and_certificates(b"carol", key, cert, None, BestAvailableEncryption(b"bundle-pw"))
    obj = {"uuid": UUID, "name": "lab", "type": "ikev2-cert",
           "remote": {"addr": "192.0.2.1"}, "local": {"p12": base64.b64encode(p12).decode()}}
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return "bundle-pw"

    connection, _ = import_sswan(write(tmp_path, obj), tmp_path / "m", ask)
    assert asked == ["the certificate bundle in office.sswan"]
    data = connection.data
    assert data["method"] == "cert"
    assert (tmp_path / "m" / "key.pem").read_bytes()  # written by client.sswan, mode 0600
    assert stat.S_IMODE((tmp_path / "m" / "key.pem").stat().st_mode) == 0o600
    connection.uuid = UUID
    exported = export_sswan(connection)
    assert exported["type"] == "ikev2-cert" and exported["remote"] == {"addr": "192.0.2.1"}
    bundle = pkcs12.load_pkcs12(base64.b64decode(exported["local"]["p12"]), None)
    assert bundle.cert.certificate == cert


def test_encrypted_p12_without_password_is_refused(tmp_path):
    pki = make_pki(tmp_path)
    cert = x509.load_pem_x509_certificate(pki["cert"].read_bytes())
    key = load_pem_private_key(pki["key"].read_bytes(), None)
    p12 = pkcs12.serialize_key_and_certificates(b"c", key, cert, None, BestAvailableEncryption(b"pw"))
    obj = {"uuid": UUID, "name": "lab", "type": "ikev2-cert", "remote": {"addr": "gw"},
           "local": {"p12": base64.b64encode(p12).decode()}}
    with pytest.raises(ConversionError, match="needs its password"):
        import_sswan(write(tmp_path, obj), tmp_path / "m", lambda prompt: "")
    with pytest.raises(ConversionError, match="wrong password"):
        import_sswan(write(tmp_path, obj), tmp_path / "m", lambda prompt: "nope")


def test_import_errors_name_the_field(tmp_path, qtbot):
    path = write(tmp_path, {"uuid": UUID, "name": "x", "type": "ikev2-psk", "remote": {"addr": "gw"}})
    with pytest.raises(ConversionError, match="field 'type'"):
        import_sswan(path, tmp_path / "m", no_password)
    window = ConnectionsWindow(backend=None)
    qtbot.addWidget(window)
    window.import_file(str(path))
    assert "field 'type'" in window.message.text()


def test_psk_and_md5_connections_cannot_be_exported(tmp_path):
    with pytest.raises(ConversionError, match="PSK"):
        export_sswan(VpnConnection(id="p", data={"address": "gw", "method": "psk"}))
    with pytest.raises(ConversionError, match="EAP-MD5"):
        export_sswan(VpnConnection(id="m", data={"address": "gw", "method": "eap", "user": "u",
                                                  "cygnet-eap-method": "md5"}))


def test_write_sswan_never_contains_secrets(tmp_path):
    connection = VpnConnection(id="o", data={"address": "gw", "method": "eap", "user": "carol",
                                             "password-flags": "1"})
    out = tmp_path / "o.sswan"
    write_sswan(connection, out)
    assert json.loads(out.read_text())["local"] == {"eap_id": "carol"}
