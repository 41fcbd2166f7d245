"""The editor's Firewall tab: the kill switch and blocked families round-trip to vpn.data, and
defaults are not written."""

from __future__ import annotations

from tests.gui.test_editor import EAP, editor_for


def test_leak_settings_round_trip_and_defaults_stay_unwritten(qtbot):
    editor = editor_for(qtbot, EAP)
    data = editor.connection().data
    assert not {k for k in data if k.startswith(("cygnet-kill", "cygnet-allow", "cygnet-block"))}

    chosen = {**EAP, "proposal": "no", "cygnet-eap-method": "mschapv2", "cygnet-kill-switch": "yes", "cygnet-allow-lan": "yes",
              "cygnet-block-ipv4": "no", "cygnet-block-ipv6": "yes"}
    editor = editor_for(qtbot, chosen)
    assert editor.connection().data == chosen
    editor.fields["cygnet-kill-switch"].setCurrentIndex(0)
    assert "cygnet-kill-switch" not in editor.connection().data


def test_the_status_window_shows_the_leak_protection(qtbot):
    from gui.status import StatusInfo, StatusWindow

    window = StatusWindow()
    qtbot.addWidget(window)
    window.render(StatusInfo(name="office", leaks="kill switch on"))
    assert window.value("Leak protection") == "kill switch on"
    window.render(StatusInfo(name="office"))
    assert window.value("Leak protection") == "—"
