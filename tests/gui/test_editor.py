"""The connection editor: fields <-> vpn.data, inline validation, keyboard access."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QCheckBox, QLabel, QLineEdit, QPushButton

from gui.connection import VpnConnection, validate
from gui.editor import ConnectionEditor
from tests.gui.certs import make_pki


def editor_for(qtbot, data, name="office"):
    editor = ConnectionEditor(VpnConnection(id=name, data=dict(data), uuid="u-1"))
    qtbot.addWidget(editor)
    return editor


EAP = {"address": "vpn.example.org", "method": "eap", "user": "carol", "virtual": "yes",
       "remote-identity": "vpn.example.org"}


def test_default_dataplane_is_not_written(qtbot):
    editor = editor_for(qtbot, EAP)
    assert "cygnet-dataplane" not in editor.connection().data


def test_fields_round_trip_to_vpn_data(qtbot, tmp_path):
    pki = make_pki(tmp_path)
    data = {**EAP, "certificate": str(pki["ca"]), "cygnet-gateways": "vpn2.example.org",
            "server-port": "4500", "proposal": "yes", "ike": "aes256gcm16-prfsha384-x25519",
            "esp": "aes256gcm16", "remote-ts": "10.0.0.0/8;fd00::/8", "cygnet-domains": "corp.example",
            "cygnet-ipv6": "no", "cygnet-dns": "no", "encap": "yes", "cygnet-mtu": "1400",
            "cygnet-dpd": "10", "cygnet-eap-method": "md5", "password-flags": "1",
            "cygnet-dataplane": "userspace", "cygnet-retransmit-timeout": "2",
            "cygnet-retransmit-tries": "3"}
    editor = editor_for(qtbot, data)
    assert editor.connection().data == data
    assert validate(editor.connection()) == {}


def test_bad_ike_proposal_is_shown_inline_naming_the_token(qtbot):
    editor = editor_for(qtbot, {**EAP, "proposal": "yes"})
    editor.fields["ike"].setText("aes256-sha256-modp1024x")
    editor.save()
    assert editor.result() == 0 and editor.isVisible() is False  # not accepted
    message = editor.error_text("ike")
    assert "modp1024x" in message and "unknown" in message
    assert editor.error_text("esp") == "" and editor.error_text("address") == ""
    assert editor.tabs.currentIndex() == 1       # the Proposals tab is brought forward
    editor.fields["ike"].setText("aes256-sha256-modp3072")
    editor.save()
    assert editor.error_text("ike") == ""
    assert editor.result() == 1


def test_unsafe_esp_proposal_names_the_token(qtbot):
    editor = editor_for(qtbot, {**EAP, "proposal": "yes"})
    editor.fields["esp"].setText("aes128gcm16;des-md5")  # md5 alone is legacy, accepted (issue 20)
    editor.save()
    assert "'des'" in editor.error_text("esp") and "unsafe" in editor.error_text("esp")


def test_proposals_ignored_when_not_custom(qtbot):
    editor = editor_for(qtbot, {**EAP, "proposal": "no", "ike": "garbage"})
    assert not editor.fields["ike"].isEnabled()
    assert "ike" not in editor.connection().data


@pytest.mark.parametrize("key,value,expected", [
    ("address", "", "The gateway address is required."),
    ("remote-ts", "10.0.0.0/33", "'10.0.0.0/33' is not a network"),
    ("server-port", "70000", "'70000' is not a number from 1 to 65535."),
    ("cygnet-mtu", "100", "'100' is not a number from 1280 to 9000."),
    ("cygnet-retransmit-timeout", "0", "'0' is not a number from 1 to 600."),
    ("user", "", "The user name is required for EAP."),
    ("certificate", "/nonexistent/ca.pem", "/nonexistent/ca.pem: no such file."),
])
def test_field_errors(qtbot, key, value, expected):
    editor = editor_for(qtbot, EAP)
    editor.fields[key].setText(value)
    editor.save()
    assert expected in editor.error_text(key)
    assert editor.result() == 0


def test_empty_name_refused(qtbot):
    editor = editor_for(qtbot, EAP)
    editor.name.setText("  ")
    editor.save()
    assert editor.error_text("id") == "Give the connection a name."


def test_certificate_method_needs_cert_and_key(qtbot, tmp_path):
    pki = make_pki(tmp_path)
    editor = editor_for(qtbot, {"address": "gw", "method": "eap"})
    assert not editor.fields["usercert"].isEnabled()
    editor.method.setCurrentIndex(editor.method.findData("cert"))
    assert editor.fields["usercert"].isEnabled() and not editor.fields["user"].isEnabled()
    editor.save()
    assert editor.error_text("usercert") == "Choose the file with your certificate."
    assert editor.error_text("userkey") == "Choose the file with your private key."
    editor.fields["usercert"].setText(str(pki["cert"]))
    editor.fields["userkey"].setText(str(pki["key"]))
    editor.save()
    assert editor.result() == 1
    data = editor.connection().data
    assert data["method"] == "cert" and data["usercert"] == str(pki["cert"])
    assert "cygnet-eap-method" not in data


def test_keyboard_access_every_field_has_a_mnemonic_and_is_in_the_tab_chain(qtbot):
    editor = editor_for(qtbot, EAP)
    labels = [w for w in editor.findChildren(QLabel) if w.buddy() is not None]
    assert len(labels) == len(editor.fields) - 5 + 1   # fields minus 5 check boxes, plus Name
    # Every vpn.data key the plugin reads has a field (or is set for the user: password-flags;
    # or refused by the plugin: ipcomp, local-ts, cert-source other than file).
    from nm_plugin.vpn_data import CYGNET_KEYS
    plugin_keys = {"address", "server-port", "method", "user", "local-identity", "remote-identity",
                   "certificate", "usercert", "userkey", "virtual", "encap", "proposal", "ike", "esp",
                   "remote-ts", *CYGNET_KEYS}
    assert plugin_keys <= set(editor.fields)
    mnemonics = []
    for label in labels:
        assert "&" in label.text(), label.text()
        mnemonics.append(label.text()[label.text().index("&") + 1].lower())
    for box in editor.findChildren(QCheckBox):
        assert "&" in box.text(), box.text()
    for button in editor.findChildren(QPushButton):
        assert button.focusPolicy() & Qt.FocusPolicy.TabFocus
    # Walking the focus chain from the name field reaches every line edit.
    edits = set(editor.findChildren(QLineEdit))
    seen, widget = set(), editor.name
    for _ in range(500):
        seen.add(widget)
        widget = widget.nextInFocusChain()
        if widget is editor.name:
            break
    assert edits <= seen
    # Within what is visible at once (one tab page, plus the name and the tab titles), no two
    # mnemonics collide.
    def mnemonic(text):
        return text[text.index("&") + 1].lower()

    shared = [mnemonic(editor.tabs.tabText(i)) for i in range(editor.tabs.count())] + ["n"]
    assert len(set(shared)) == len(shared)
    for index in range(editor.tabs.count()):
        page = editor.tabs.widget(index)
        keys = [mnemonic(w.text()) for w in page.findChildren(QLabel) if w.buddy() is not None]
        keys += [mnemonic(w.text()) for w in page.findChildren(QCheckBox)]
        assert len(keys) >= 3
        assert len(set(keys + shared)) == len(keys) + len(shared), (editor.tabs.tabText(index), keys)


def test_eap_method_server_chooses_unless_one_is_picked(qtbot):
    editor = editor_for(qtbot, EAP)
    assert editor.eap_method.currentText().startswith("Server chooses")
    assert "cygnet-eap-method" not in editor.connection().data   # unset: the server chooses
    for value in ("peap", "ttls", "gtc", "mschapv2", "md5"):
        editor.eap_method.setCurrentIndex(editor.eap_method.findData(value))
        assert editor.connection().data["cygnet-eap-method"] == value
    assert editor_for(qtbot, {**EAP, "cygnet-eap-method": "ttls"}).eap_method.currentData() == "ttls"


def test_key_passphrase_is_a_secret_not_vpn_data(qtbot, tmp_path):
    from cryptography.hazmat.primitives import serialization

    pki = make_pki(tmp_path)
    key = serialization.load_pem_private_key(pki["key"].read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pass phrase")))
    data = {"address": "gw", "method": "cert", "usercert": str(pki["cert"]),
            "userkey": str(encrypted)}
    editor = editor_for(qtbot, data)
    assert editor.passphrase.isEnabled()
    editor.passphrase.setText("pass phrase")
    connection = editor.connection()
    assert editor.key_passphrase() == "pass phrase"
    assert "pass phrase" not in str(connection.data) and "password" not in connection.data
    # the applet's secret agent now answers for it, as for an EAP password
    assert connection.needs_password and connection.secret_kind == "private key passphrase"
    assert connection.to_settings()["vpn"]["data"].value["password-flags"] == "1"
    plain = VpnConnection(id="x", data={**data, "userkey": str(pki["key"])})
    assert not plain.needs_password
    editor.method.setCurrentIndex(editor.method.findData("eap"))
    assert not editor.passphrase.isEnabled() and editor.key_passphrase() == ""


def test_smartcard_fields(qtbot, tmp_path):
    module = tmp_path / "p11.so"
    module.write_bytes(b"")
    editor = editor_for(qtbot, {"address": "gw", "method": "smartcard"})
    assert editor.fields["cygnet-pkcs11-module"].isEnabled() and not editor.passphrase.isEnabled()
    editor.fields["cygnet-pkcs11-module"].setText(str(module))
    editor.fields["cygnet-pkcs11-key-id"].setText("0a")
    connection = editor.connection()
    assert connection.data["cygnet-pkcs11-module"] == str(module)
    assert connection.data["cygnet-pkcs11-key-id"] == "0a"
    assert connection.secret_kind == "PIN" and validate(connection) == {}
    editor.fields["cygnet-pkcs11-module"].setText(str(tmp_path / "missing.so"))
    assert "no such file" in validate(editor.connection())["cygnet-pkcs11-module"]


def test_revocation_and_eap_only_round_trip(qtbot):
    data = {**EAP, "cygnet-eap-method": "peap", "cygnet-eap-only": "yes", "cygnet-revocation": "ifuri",
            "proposal": "no"}  # the editor always writes proposal
    assert editor_for(qtbot, data).connection().data == data
    editor = editor_for(qtbot, EAP)
    data = editor.connection().data
    assert "cygnet-eap-only" not in data and "cygnet-revocation" not in data  # defaults unwritten
    editor.method.setCurrentIndex(editor.method.findData("psk"))
    assert not editor.fields["cygnet-eap-only"].isEnabled()
