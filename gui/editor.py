"""The connection editor: one dialog for every vpn.data key the plugin understands.

Each field edits one key of `vpn.data` (nm_plugin/vpn_data.py lists them). Problems found by
gui.connection.validate — connection_schema's checks and limits, e.g. a proposal the IKE
parser refuses, naming the token — appear in red under the field, and Save stays closed until they are fixed. Every field has a
mnemonic on its label, file fields have a keyboard-reachable "Browse…" button.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                             QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QTabWidget,
                             QVBoxLayout, QWidget)

from connection_schema import limits
from gui import icons
from gui.connection import EAP_METHODS, METHODS, PASSWORD_METHODS, VpnConnection, validate

ERROR_STYLE = "color: palette(highlighted-text); background: #b3261e; padding: 2px 4px; border-radius: 3px;"


class FileField(QWidget):
    """A path line edit with a Browse… button (keyboard reachable)."""

    def __init__(self, caption: str, filters: str, parent=None):
        super().__init__(parent)
        self.caption, self.filters = caption, filters
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.button = QPushButton("Browse…")
        self.button.clicked.connect(self.browse)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)
        self.setFocusProxy(self.edit)

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.caption, self.edit.text(), self.filters)
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text()

    def setText(self, text: str) -> None:
        self.edit.setText(text)


CERT_FILTER = "Certificates (*.pem *.crt *.cer *.der);;All files (*)"
KEY_FILTER = "Private keys (*.pem *.key);;All files (*)"


class ConnectionEditor(QDialog):
    """Edit a VpnConnection; `connection()` returns the edited copy after Save."""

    def __init__(self, connection: VpnConnection, parent=None, title: str = ""):
        super().__init__(parent)
        self.original = connection
        self.setWindowTitle(title or f"Edit VPN connection “{connection.id}”")
        self.setWindowIcon(icons.icon("cygnet"))
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}

        layout = QVBoxLayout(self)
        name_form = QFormLayout()
        self.name = QLineEdit(connection.id)
        self._row(name_form, "id", "&Name:", self.name)
        layout.addLayout(name_form)

        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)
        self._general_tab()
        self._proposals_tab()
        self._network_tab()
        self._firewall_tab()
        for key, hint in (("server-port", "500"), ("local-identity", "the user name or the certificate's subject"),
                          ("remote-identity", "the gateway address"), ("cygnet-mtu", "automatic"),
                          ("cygnet-dpd", "30"), ("remote-ts", "all traffic"),
                          ("cygnet-retransmit-timeout", "4"), ("cygnet-retransmit-tries", "5"),
                          ("certificate", "the system's CA certificates")):
            widget = self.fields[key]
            (widget.edit if isinstance(widget, FileField) else widget).setPlaceholderText(hint)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.load(connection)
        self.method.currentIndexChanged.connect(self._method_changed)
        self.proposal.toggled.connect(self._proposal_toggled)
        self.virtual.toggled.connect(self.ipv6.setEnabled)
        self._method_changed()
        self._proposal_toggled(self.proposal.isChecked())

    # ------------------------------------------------------------------ layout

    def _row(self, form: QFormLayout, key: str, label: str, widget: QWidget, tip: str = "") -> None:
        caption = QLabel(label)
        caption.setBuddy(widget)
        error = QLabel()
        error.setObjectName(f"error:{key}")
        error.setStyleSheet(ERROR_STYLE)
        error.setWordWrap(True)
        error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        error.hide()
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(widget)
        column.addWidget(error)
        box.setFocusProxy(widget)
        if tip:
            widget.setToolTip(tip)
        form.addRow(caption, box)
        if key != "id":
            self.fields[key] = widget
        self.errors[key] = error

    def _tab(self, title: str) -> QFormLayout:
        page = QWidget()
        form = QFormLayout(page)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.tabs.addTab(page, title)
        return form

    def _general_tab(self) -> None:
        form = self._tab("&General")
        self._row(form, "address", "Ga&teway:", QLineEdit(), "Host name or address of the VPN gateway")
        self._row(form, "cygnet-gateways", "&More gateways:", QLineEdit(),
                  "Tried in order when the first does not answer; separate with ;")
        self._row(form, "server-port", "P&ort:", QLineEdit(), "IKE port (default 500)")
        self.method = QComboBox()
        for value, text in METHODS.items():
            self.method.addItem(text, value)
        self._row(form, "method", "&Authentication:", self.method)
        self.eap_method = QComboBox()
        for value, text in EAP_METHODS.items():
            self.eap_method.addItem(text, value)
        self._row(form, "cygnet-eap-method", "&EAP method:", self.eap_method,
                  "Usually a RADIUS server behind the gateway picks the method")
        self._row(form, "user", "&User name:", QLineEdit())
        self._row(form, "local-identity", "&Local identity:", QLineEdit(),
                  "Our IKE identity; default: the user name or the certificate's subject")
        self._row(form, "remote-identity", "Gateway &identity:", QLineEdit(),
                  "What the gateway's certificate must name; default: the gateway address")
        self._row(form, "certificate", "&CA certificate:", FileField("CA certificate", CERT_FILTER),
                  "The gateway's CA (default: the system's CA bundle)")
        self._row(form, "usercert", "Your ce&rtificate:", FileField("Your certificate", CERT_FILTER))
        self._row(form, "userkey", "Your private &key:", FileField("Your private key", KEY_FILTER),
                  "PEM (encrypted or not) or PKCS#12, readable by root only")
        # vpn.secrets, not vpn.data: an encrypted key's passphrase is the connection's
        # `password` secret, which the applet keeps in the keyring (SECRET_FIELDS)
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setPlaceholderText("only for an encrypted key; kept in the keyring")
        self._row(form, "password", "Key pa&ssphrase:", self.passphrase)
        self.eap_only = QComboBox()
        self.eap_only.addItem("Its certificate (usual)", "no")
        self.eap_only.addItem("The EAP method alone: TLS, TTLS or PEAP (RFC 5998)", "yes")
        self._row(form, "cygnet-eap-only", "Gateway proves itsel&f by:", self.eap_only)
        self.revocation = QComboBox()
        for value, text in (("relaxed", "Refuse it only when known to be revoked"),
                            ("ifuri", "Also when its CRL/OCSP server does not answer"),
                            ("strict", "Unless known to be good (strict)")):
            self.revocation.addItem(text, value)
        self._row(form, "cygnet-revocation", "Certificate re&vocation:", self.revocation,
                  "CRL and OCSP checks of the gateway's certificate (strongSwan's policies)")
        self._row(form, "cygnet-pkcs11-module", "PKCS#&11 module:",
                  FileField("PKCS#11 module", "PKCS#11 modules (*.so);;All files (*)"),
                  "The smartcard's PKCS#11 library (default: p11-kit's proxy)")
        self._row(form, "cygnet-pkcs11-token", "Smartcar&d token:", QLineEdit(),
                  "The token's label (default: the first token)")
        self._row(form, "cygnet-pkcs11-key", "Smartcard key la&bel:", QLineEdit(),
                  "The key's label on the card")
        self._row(form, "cygnet-pkcs11-key-id", "Smartcard ke&y ID:", QLineEdit(),
                  "Hex id of the key on the card (default: the only one)")

    def _proposals_tab(self) -> None:
        form = self._tab("&Proposals")
        self.proposal = QCheckBox("Use &custom algorithms instead of strongSwan's defaults")
        form.addRow(self.proposal)
        self.fields["proposal"] = self.proposal
        self._row(form, "ike", "I&KE:", QLineEdit(),
                  "strongSwan syntax, e.g. aes256gcm16-prfsha384-x25519; several separated by ;")
        self._row(form, "esp", "E&SP:", QLineEdit(), "e.g. aes256gcm16 or aes256-sha384-ecp256")

    def _network_tab(self) -> None:
        form = self._tab("Net&work")
        self.virtual = QCheckBox("Ask the gateway for a &virtual IP address")
        self.ipv6 = QCheckBox("Also ask for an IPv&6 address")
        self.dns = QCheckBox("Use the gateway's &DNS servers and domains")
        self.encap = QCheckBox("Always encapsulate ESP in &UDP")
        for key, box in (("virtual", self.virtual), ("cygnet-ipv6", self.ipv6),
                         ("cygnet-dns", self.dns), ("encap", self.encap)):
            form.addRow(box)
            self.fields[key] = box
        self._row(form, "remote-ts", "&Split tunnel:", QLineEdit(),
                  "Only these networks go through the tunnel (e.g. 10.0.0.0/8; fd00::/8); "
                  "empty: all traffic")
        self._row(form, "cygnet-domains", "Extra DNS do&mains:", QLineEdit(),
                  "Search domains added to the gateway's; separate with ;")
        self._row(form, "cygnet-mtu", "M&TU:", QLineEdit(), f"{limits.MTU.low}–{limits.MTU.high}; empty: automatic")
        self._row(form, "cygnet-dpd", "Dead p&eer detection (s):", QLineEdit(), "0: off; default 30")
        self._row(form, "cygnet-retransmit-timeout", "Retransmit &after (s):", QLineEdit(),
                  "Seconds before the first IKE retransmission (default 4)")
        self._row(form, "cygnet-retransmit-tries", "Retransmit t&ries:", QLineEdit(),
                  "IKE retransmissions before giving up (default 5)")
        self.dataplane = QComboBox()
        for value, text in (("auto", "Automatic"), ("userspace", "Userspace (TUN)"), ("kernel", "Kernel (XFRM)")):
            self.dataplane.addItem(text, value)
        self._row(form, "cygnet-dataplane", "Data p&lane:", self.dataplane,
                  "Where ESP is processed; automatic picks the kernel when it can")

    def _firewall_tab(self) -> None:
        """Leak protection (client/killswitch.py)."""
        form = self._tab("Kill switc&h")  # a letter no other tab uses
        rows = (("cygnet-kill-switch", "&Kill switch:", (("no", "Off"), ("yes", "On: nothing leaves outside the tunnel")),
                 "From connecting until you disconnect (also after a failure), only the tunnel's "
                 "traffic and IKE/ESP to the gateway leave this computer"),
                ("cygnet-allow-lan", "&Local network:", (("no", "Blocked by the kill switch"), ("yes", "Reachable")),
                 "With the kill switch: whether the local network stays reachable"),
                ("cygnet-block-ipv4", "IPv&4 outside the tunnel:", (("", "Automatic"), ("yes", "Blocked"), ("no", "Allowed")),
                 "When the tunnel carries no IPv4; automatic: blocked on a full tunnel"),
                ("cygnet-block-ipv6", "IPv&6 outside the tunnel:", (("", "Automatic"), ("yes", "Blocked"), ("no", "Allowed")),
                 "When the tunnel carries no IPv6; automatic: blocked on a full tunnel"))
        for key, label, choices, tip in rows:
            combo = QComboBox()
            for value, text in choices:
                combo.addItem(text, value)
            self._row(form, key, label, combo, tip)

    # ------------------------------------------------------------------ data <-> widgets

    _COMBO_DEFAULTS = {"cygnet-dataplane": "auto", "cygnet-eap-method": "",
                       "cygnet-eap-only": "no", "cygnet-revocation": "relaxed",
                       "cygnet-kill-switch": "no", "cygnet-allow-lan": "no",
                       "cygnet-block-ipv4": "", "cygnet-block-ipv6": ""}
    _CHECKS = {"virtual": True, "cygnet-ipv6": True, "cygnet-dns": True, "encap": False,
               "proposal": False}

    SECRET_FIELDS = ("password",)  # not vpn.data

    def load(self, connection: VpnConnection) -> None:
        data = connection.data
        self.name.setText(connection.id)
        for key, widget in self.fields.items():
            if key in self.SECRET_FIELDS:
                continue
            if isinstance(widget, QCheckBox):
                default = self._CHECKS[key]
                widget.setChecked(data.get(key, "yes" if default else "no") == "yes")
            elif isinstance(widget, QComboBox):
                index = widget.findData(data.get(key) or self._COMBO_DEFAULTS.get(key, widget.itemData(0)))
                widget.setCurrentIndex(max(index, 0))
            else:
                widget.setText(data.get(key, ""))

    def data(self) -> dict[str, str]:
        data = {k: v for k, v in self.original.data.items() if k not in self.fields}
        for key, widget in self.fields.items():
            if key in self.SECRET_FIELDS:
                continue
            if isinstance(widget, QCheckBox):
                value = "yes" if widget.isChecked() else "no"
                if value != ("yes" if self._CHECKS[key] else "no") or key in ("virtual", "proposal"):
                    data[key] = value
            elif isinstance(widget, QComboBox):
                if widget.isEnabled() and widget.currentData() != self._COMBO_DEFAULTS.get(key):
                    data[key] = widget.currentData()
            else:
                text = widget.text().strip()
                if text and widget.isEnabled():
                    data[key] = text
        if data.get("method") != "eap":
            data.pop("cygnet-eap-method", None)
        return data

    def key_passphrase(self) -> str:
        """What the user typed as the key's passphrase ("" if nothing): the caller stores it
        in the keyring as the connection's secret."""
        return self.passphrase.text() if self.passphrase.isEnabled() else ""

    def connection(self) -> VpnConnection:
        return VpnConnection(id=self.name.text().strip(), data=self.data(), uuid=self.original.uuid,
                             path=self.original.path, autoconnect=self.original.autoconnect)

    # ------------------------------------------------------------------ behaviour

    def _method_changed(self) -> None:
        method = self.method.currentData()
        certificate = method in ("cert", "eap-tls")
        for key in ("usercert", "userkey"):
            self.fields[key].setEnabled(certificate)
        self.fields["usercert"].setEnabled(certificate or method in ("smartcard", "agent"))
        self.passphrase.setEnabled(certificate)
        for key in ("cygnet-pkcs11-module", "cygnet-pkcs11-token", "cygnet-pkcs11-key",
                    "cygnet-pkcs11-key-id"):
            self.fields[key].setEnabled(method == "smartcard")
        self.fields["cygnet-eap-method"].setEnabled(method == "eap")
        self.fields["cygnet-eap-only"].setEnabled(method in ("eap", "eap-tls"))
        self.fields["user"].setEnabled(method in PASSWORD_METHODS)

    def _proposal_toggled(self, on: bool) -> None:
        self.fields["ike"].setEnabled(on)
        self.fields["esp"].setEnabled(on)

    def show_errors(self, errors: dict[str, str]) -> None:
        first = None
        for key, label in self.errors.items():
            message = errors.get(key)
            label.setText(message or "")
            label.setVisible(bool(message))
            if message and first is None:
                first = key
        if first is not None:
            widget = self.name if first == "id" else self.fields[first]
            page = widget
            while page is not None and self.tabs.indexOf(page) < 0:
                page = page.parentWidget()
            if page is not None:
                self.tabs.setCurrentWidget(page)
            widget.setFocus()

    def error_text(self, key: str) -> str:
        label = self.errors[key]
        return label.text() if not label.isHidden() else ""

    def save(self) -> None:
        errors = validate(self.connection())
        self.show_errors(errors)
        if not errors:
            self.accept()
