"""nm_plugin.vpn_data and nm_plugin.auth_dialog: NetworkManager-strongswan's keys become a
Cygnet Profile; NeedSecrets; the external-UI protocol. No NetworkManager needed."""

from __future__ import annotations

import io
import ipaddress
import socket
import struct

import pytest
from dbus_fast import Variant

from nm_plugin import auth_dialog
from nm_plugin.vpn_data import (VpnDataError, activation_from_connection, ipv4_u32,
                                needed_secret)


def connection(data: dict, secrets: dict | None = None, uuid: str = "0b7e2c44-1111-2222-3333-444455556666"):
    """Connect()'s a{sa{sv}} as dbus-fast hands it over."""
    vpn = {"service-type": Variant("s", "org.freedesktop.NetworkManager.cygnet"),
           "data": Variant("a{ss}", data)}
    if secrets is not None:
        vpn["secrets"] = Variant("a{ss}", secrets)
    return {"connection": {"id": Variant("s", "office"), "uuid": Variant("s", uuid)}, "vpn": vpn}


PSK = {"address": "vpn.example.org", "method": "psk", "user": "carol@example.org",
       "remote-identity": "vpn.example.org", "virtual": "yes"}


def test_psk_connection_becomes_a_profile_with_the_secret_from_nm():
    activation = activation_from_connection(connection(PSK, {"password": "a-long-pre-shared-key-123"}))
    p = activation.profile
    assert p.name == "nm-0b7e2c44-1111-2222-3333-444455556666"
    assert p.gateways == ("vpn.example.org",) and p.port == 500 and p.auth == "psk"
    assert p.local_id == "carol@example.org" and p.remote_id == "vpn.example.org"
    assert p.virtual_ip == ("ipv4", "ipv6") and p.dns and not p.encap
    assert not p.keyring and p.psk_file is None        # the secret came from NM, not a source
    assert activation.secret.reveal() == b"a-long-pre-shared-key-123"
    assert "a-long-pre-shared-key" not in repr(activation)


def test_strongswan_keys_keep_their_meanings(tmp_path):
    data = dict(PSK, **{"server-port": "4501", "encap": "yes", "proposal": "yes",
                        "ike": "aes256gcm16-prfsha384-x25519;aes128-sha256-modp3072",
                        "esp": "aes256gcm16", "remote-ts": "10.1.0.0/16;fd00:1::/64",
                        "local-identity": "id@example.org", "cygnet-gateways": "vpn2.example.org",
                        "cygnet-ipv6": "no", "cygnet-dpd": "10", "cygnet-mtu": "1300",
                        "cygnet-domains": "corp.example;lab.example"})
    activation = activation_from_connection(connection(data, {"password": "x" * 20}))
    p = activation.profile
    assert p.port == 4501 and p.encap
    assert p.ike == "aes256gcm16-prfsha384-x25519,aes128-sha256-modp3072" and p.esp == "aes256gcm16"
    assert p.remote_ts == (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00:1::/64"))
    assert p.local_id == "id@example.org"                # local-identity wins over user
    assert p.gateways == ("vpn.example.org", "vpn2.example.org")
    assert p.virtual_ip == ("ipv4",) and p.dpd == 10 and p.mtu == 1300
    assert activation.extra_domains == ("corp.example", "lab.example")


def test_proposals_are_ignored_unless_proposal_is_yes():
    data = dict(PSK, ike="aes128-sha256-modp3072")
    assert activation_from_connection(connection(data, {"password": "x" * 20})).profile.ike is None


def test_without_virtual_yes_no_virtual_ip_is_requested_as_in_charon_nm():
    data = {k: v for k, v in PSK.items() if k != "virtual"}
    assert activation_from_connection(connection(data, {"password": "x" * 20})).profile.virtual_ip == ()


def make_certificate(path, common_name: str, ca: bool):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_eap_uses_user_as_eap_identity_and_certificate_as_ca(tmp_path):
    ca = make_certificate(tmp_path / "ca.pem", "Test CA", ca=True)
    data = {"address": "vpn.example.org", "method": "eap", "user": "alice", "certificate": str(ca),
            "cygnet-eap-method": "md5"}
    p = activation_from_connection(connection(data, {"password": "secret"})).profile
    assert p.auth == "eap-md5" and p.eap_identity == "alice" and p.ca == ca
    assert p.remote_id is None                # a CA: the gateway is named by its address


def test_a_gateway_certificate_names_the_gateway_by_its_subject(tmp_path):
    # charon-nm: "certificate" may be the gateway's own certificate instead of a CA.
    gateway = make_certificate(tmp_path / "gw.pem", "gw.example.org", ca=False)
    data = {"address": "vpn.example.org", "method": "eap", "user": "alice", "certificate": str(gateway)}
    p = activation_from_connection(connection(data, {"password": "secret"})).profile
    assert p.remote_id == "C=CH, CN=gw.example.org" and p.ca == gateway


@pytest.mark.parametrize("data,message", [
    ({"method": "psk"}, "vpn.data 'address': the gateway address is missing"),
    # ssh-agent keys are supported since issue 19 (test_agent_* below); they need usercert
    (dict(PSK, method="agent"), "vpn.data 'usercert': needed with method=agent"),
    (dict(PSK, method="cert", **{"cert-source": "tpm"}), "vpn.data 'cert-source': 'tpm' is not one of"),
    # smartcards are supported since issue 19 (test_smartcard_* below); a missing module is named
    (dict(PSK, method="smartcard", **{"cygnet-pkcs11-module": "/nonexistent/p11.so"}),
     "vpn.data 'cygnet-pkcs11-module': no PKCS#11 module at /nonexistent/p11.so"),
    (dict(PSK, method="xauth"), "vpn.data 'method': 'xauth' is not one of psk, eap, eap-tls, cert, key"),
    (dict(PSK, ipcomp="yes"), "vpn.data 'ipcomp': IPComp (ipcomp=yes) is not supported by Cygnet"),
    (dict(PSK, **{"local-ts": "10.0.0.0/8"}), "vpn.data 'local-ts': local traffic selectors are not supported"),
    (dict(PSK, encap="maybe"), "vpn.data 'encap': 'maybe' is not yes or no"),
    (dict(PSK, **{"server-port": "70000"}), "vpn.data 'server-port': 70000 is out of range"),
    (dict(PSK, **{"remote-ts": "10.1.0.1/16"}), "vpn.data 'remote-ts': '10.1.0.1/16' has host bits set"),
    (dict(PSK, proposal="yes", ike="aes128-md4"), "vpn.data 'ike': "),
    (dict(PSK, **{"cygnet-colour": "blue"}), "vpn.data 'cygnet-colour': unknown key"),
    (dict(PSK, method="cert"), "vpn.data 'usercert': needed with method=cert"),
])
def test_bad_or_unsupported_values_are_named(data, message):
    with pytest.raises(VpnDataError) as error:
        activation_from_connection(connection(data, {"password": "x" * 20}))
    assert str(error.value).startswith(message), str(error.value)


def test_missing_password_is_an_error_not_an_empty_secret():
    with pytest.raises(VpnDataError, match="vpn.secrets 'password': the pre-shared key is missing"):
        activation_from_connection(connection(PSK, {}))


def test_encrypted_private_key_is_refused_with_a_hint(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pw")))
    cert = tmp_path / "cert.pem"
    cert.write_text("")
    data = {"address": "vpn.example.org", "method": "cert", "usercert": str(cert), "userkey": str(path)}
    with pytest.raises(VpnDataError, match="'userkey': .* is encrypted"):
        activation_from_connection(connection(data))


@pytest.mark.parametrize("data,secrets,answer", [
    (PSK, {}, "vpn"),
    (PSK, None, "vpn"),
    (PSK, {"password": "x"}, ""),
    (dict(PSK, **{"password-flags": "4"}), {}, ""),        # NOT_REQUIRED
    (dict(PSK, **{"password-flags": "2"}), {}, "vpn"),     # NOT_SAVED: ask every time
    (dict(PSK, method="eap"), {}, "vpn"),
    (dict(PSK, method="cert"), {}, ""),                    # no passphrase for Cygnet's keys
])
def test_need_secrets(data, secrets, answer):
    assert needed_secret(connection(data, secrets)) == answer


def test_ipv4_is_network_byte_order_in_a_uint32():
    # NM reads the u32's memory as the address bytes: on this (little-endian) machine that is
    # struct "=I" of the packed address.
    assert ipv4_u32("10.3.0.1") == struct.unpack("=I", socket.inet_aton("10.3.0.1"))[0]


# ------------------------------------------------------------------------------ auth dialog


def test_dialog_reads_libnm_details_with_continuation_lines():
    stream = io.StringIO("DATA_KEY=method\nDATA_VAL=psk\nDATA_KEY=banner\nDATA_VAL=two\n=lines\n"
                         "SECRET_KEY=password\nSECRET_VAL=s3cret\nDONE\nignored\n")
    data, secrets = auth_dialog.read_details(stream)
    assert data == {"method": "psk", "banner": "two\nlines"}
    assert secrets == {"password": "s3cret"}


def test_dialog_external_ui_asks_when_unknown_and_offers_what_is_known():
    ask = auth_dialog.external_ui_keyfile("office", {"method": "eap"}, None, reprompt=False)
    assert ask.startswith("[VPN Plugin UI]\nVersion=2\n")
    assert "[password]\nValue=\nLabel=Password:\nIsSecret=true\nShouldAsk=true" in ask
    known = auth_dialog.external_ui_keyfile("office", {"method": "psk"}, "k\\ey", reprompt=False)
    assert "Value=k\\\\ey\nLabel=Pre-shared key:\nIsSecret=true\nShouldAsk=false" in known
    again = auth_dialog.external_ui_keyfile("office", {"method": "psk"}, "key", reprompt=True)
    assert "ShouldAsk=true" in again and "Value=key" not in again
    none = auth_dialog.external_ui_keyfile("office", {"method": "cert"}, None, reprompt=False)
    assert "[password]" not in none


def test_dialog_plain_mode_answers_a_known_password_and_waits_for_quit():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "nm_plugin.auth_dialog", "-u", "u-1", "-n", "office", "-s", "x"],
        input="DATA_KEY=method\nDATA_VAL=psk\nSECRET_KEY=password\nSECRET_VAL=k3y\nDONE\nQUIT\n",
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "password\nk3y\n\n\n"


def test_remote_identity_any_falls_back_to_the_address_as_in_charon_nm():
    """issue 13 §1: charon-nm turns %any (ID_ANY) into the address, loosely matched; Cygnet's
    unset remote_id means the same (the gateway must prove the dialled address)."""
    data = dict(PSK, **{"remote-identity": "%any"})
    assert activation_from_connection(connection(data, {"password": "a-long-pre-shared-key-123"})
                                      ).profile.remote_id is None


@pytest.mark.parametrize("eap_method, auth", [
    (None, "eap"), ("peap", "eap-peap"), ("ttls", "eap-ttls"), ("gtc", "eap-gtc"),
    ("mschapv2", "eap-mschapv2")])
def test_method_eap_lets_the_server_choose_unless_a_method_is_named(tmp_path, eap_method, auth):
    data = {"address": "vpn.example.org", "method": "eap", "user": "alice"}
    if eap_method:
        data["cygnet-eap-method"] = eap_method
    p = activation_from_connection(connection(data, {"password": "secret"})).profile
    assert p.auth == auth and p.needs_password


def test_unknown_eap_method_is_named():
    data = {"address": "vpn.example.org", "method": "eap", "user": "alice",
            "cygnet-eap-method": "leap"}
    with pytest.raises(VpnDataError, match="'leap' is not one of mschapv2, md5, peap, ttls, gtc"):
        activation_from_connection(connection(data, {"password": "secret"}))


def test_an_encrypted_userkey_takes_its_passphrase_from_the_password_secret(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from client.credentials import load_credential
    from nm_plugin.auth_dialog import external_ui_keyfile, password_needed

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pw")))
    cert = make_certificate(tmp_path / "cert.pem", "alice@example.org", ca=False)
    data = {"address": "vpn.example.org", "method": "key", "usercert": str(cert),
            "userkey": str(path)}
    assert needed_secret(connection(data)) == "vpn"
    assert password_needed(data) and "Label=Private key password:" in \
        external_ui_keyfile("office", data, None, reprompt=False)
    activation = activation_from_connection(connection(data, {"password": "pw"}))
    assert needed_secret(connection(data, {"password": "pw"})) == ""
    loaded = load_credential(activation.profile, activation.secret)[1]
    assert loaded.public_key() == key.public_key()


@pytest.mark.parametrize("data", [
    {"method": "smartcard"},
    {"method": "cert", "cert-source": "smartcard"},
])
def test_smartcard_takes_the_pin_as_the_password_secret(tmp_path, data):
    from nm_plugin.auth_dialog import label_for, password_needed
    from nm_plugin.vpn_data import needed_secret

    module = tmp_path / "module.so"
    module.write_bytes(b"")
    data = {"address": "vpn.example.org", "local-identity": "card@example.org",
            "cygnet-pkcs11-module": str(module), "cygnet-pkcs11-key-id": "0a", **data}
    activation = activation_from_connection(connection(data, {"password": "123456"}))
    p = activation.profile
    assert (p.auth, p.pkcs11_module, p.pkcs11_key_id, p.key) == ("pubkey", module, "0a", None)
    assert activation.secret.reveal() == b"123456"
    assert needed_secret(connection(data, {})) == "vpn"
    assert password_needed(data) and label_for(data) == "PIN:"
    with pytest.raises(VpnDataError, match="^vpn.secrets 'password': the smartcard's PIN is missing$"):
        activation_from_connection(connection(data, {}))


def test_revocation_and_eap_only_keys(tmp_path):
    data = {"address": "vpn.example.org", "method": "eap", "user": "alice",
            "cygnet-eap-method": "ttls", "cygnet-eap-only": "yes", "cygnet-revocation": "strict"}
    p = activation_from_connection(connection(data, {"password": "secret"})).profile
    assert p.eap_only and p.revocation == "strict" and p.auth == "eap-ttls"
    with pytest.raises(VpnDataError, match="^vpn.data 'cygnet-revocation': 'sometimes' is not one of"):
        activation_from_connection(connection({**data, "cygnet-revocation": "sometimes"},
                                              {"password": "secret"}))
    with pytest.raises(VpnDataError, match="^vpn.data 'cygnet-eap-only': needs EAP methods that"):
        activation_from_connection(connection({**data, "cygnet-eap-method": "mschapv2"},
                                              {"password": "secret"}))


@pytest.mark.parametrize("data", [{"method": "agent"}, {"method": "key", "cert-source": "agent"}])
def test_agent_takes_the_socket_as_the_agent_secret(tmp_path, data):
    from nm_plugin.vpn_data import needed_secret

    cert = make_certificate(tmp_path / "me.pem", "me@example.org", ca=False)
    data = {"address": "vpn.example.org", "usercert": str(cert), **data}
    activation = activation_from_connection(connection(data, {"agent": "/run/user/1000/ssh.sock"}))
    p = activation.profile
    assert (p.auth, p.ssh_agent, p.cert, p.key) == ("pubkey", True, cert, None)
    assert activation.secret.reveal() == b"/run/user/1000/ssh.sock"
    assert needed_secret(connection(data, {})) == "vpn"
    assert needed_secret(connection(data, {"agent": "/x"})) == ""
    with pytest.raises(VpnDataError, match="^vpn.secrets 'agent': the ssh-agent socket is missing"):
        activation_from_connection(connection(data, {}))


def test_auth_dialog_passes_ssh_auth_sock_as_the_agent_secret(monkeypatch):
    from nm_plugin.auth_dialog import external_ui_keyfile

    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/1000/ssh.sock")
    text = external_ui_keyfile("office", {"method": "agent"}, None, False)
    assert "[agent]\nValue=/run/user/1000/ssh.sock\n" in text and "ShouldAsk=false" in text
    assert "[password]" not in text
