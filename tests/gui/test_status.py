"""The status window renders a given state; counters come from the TUN device's sysfs files."""

from __future__ import annotations

from PyQt6.QtWidgets import QApplication

from gui.status import Counters, StatusInfo, StatusWindow, as_text, human_bytes, read_counters

INFO = StatusInfo(name="office", state="Connected", gateway="vpn.example.org",
                  local_identity="carol", remote_identity="vpn.example.org",
                  ipv4=["10.3.0.1/32"], ipv6=["fd00:3::1/128"], dns=["10.1.0.53", "fd00:1::53"],
                  domains=["office.cygnet.test"], routes=["10.1.0.0/24"],
                  ike="as configured: aes256gcm16-prfsha384-x25519", esp="strongSwan's defaults",
                  tundev="cygnet0", since=1000.0,
                  counters=Counters(bytes_in=2_500_000, bytes_out=1234, packets_in=1800, packets_out=12),
                  banner="Authorized users only.\nCall 555-0100 for help.")


def test_renders_every_field(qtbot, monkeypatch):
    monkeypatch.setattr("time.time", lambda: 1000.0 + 3725)
    window = StatusWindow()
    qtbot.addWidget(window)
    window.render(INFO)
    assert window.value("Virtual IPv4") == "10.3.0.1/32"
    assert window.value("Virtual IPv6") == "fd00:3::1/128"
    assert window.value("DNS servers") == "10.1.0.53, fd00:1::53"
    assert window.value("DNS domains") == "office.cygnet.test"
    assert window.value("Time up") == "1:02:05"
    assert window.value("Received") == "2.4 MiB (1800 packets)"
    assert window.value("Sent") == "1.2 KiB (12 packets)"
    assert window.value("IKE") == "as configured: aes256gcm16-prfsha384-x25519"
    assert window.banner.toPlainText() == INFO.banner
    window.show()
    assert window.banner_box.isVisible()


def test_copy_puts_the_text_on_the_clipboard(qtbot, monkeypatch):
    monkeypatch.setattr("time.time", lambda: 1060.0)
    window = StatusWindow()
    qtbot.addWidget(window)
    window.render(INFO)
    window.copy_button.click()
    text = QApplication.clipboard().text()
    assert text == as_text(INFO, now=1060.0)
    assert "Gateway: vpn.example.org\n" in text and "Time up: 1:00\n" in text
    assert text.endswith("Gateway message:\nAuthorized users only.\nCall 555-0100 for help.\n")


def test_disconnected_state_shows_dashes_and_no_banner(qtbot):
    window = StatusWindow()
    qtbot.addWidget(window)
    window.show()
    assert window.value("State") == "Disconnected"
    assert window.value("Virtual IPv4") == "—" and window.value("Received") == "—"
    assert not window.banner_box.isVisible()


def test_refresh_callback_updates_live(qtbot):
    calls = []

    def refresh():
        calls.append(1)
        return StatusInfo(name="office", state="Connected",
                          counters=Counters(bytes_in=len(calls) * 1000, packets_in=len(calls)))

    window = StatusWindow(refresh=refresh)
    qtbot.addWidget(window)
    window.show()
    assert window.value("Received") == "1000 B (1 packets)"
    qtbot.waitUntil(lambda: len(calls) >= 2, timeout=3000)
    assert window.value("Received").endswith(f"({len(calls)} packets)")
    window.hide()
    assert not window.timer.isActive()


def test_read_counters(tmp_path):
    stats = tmp_path / "cygnet0" / "statistics"
    stats.mkdir(parents=True)
    for name, value in (("rx_bytes", 10), ("tx_bytes", 20), ("rx_packets", 1), ("tx_packets", 2)):
        (stats / name).write_text(f"{value}\n")
    assert read_counters("cygnet0", tmp_path) == Counters(10, 20, 1, 2)
    assert read_counters("missing0", tmp_path) is None
    lo = read_counters("lo")           # the real sysfs
    assert lo is not None and lo.bytes_in >= 0


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024 ** 3)] == ["0 B", "1023 B", "1.0 KiB", "5.0 GiB"]


def test_routes_and_addresses_as_the_status_shows_them():
    from gui.tray import tunnel_routes, virtual_addresses

    assert virtual_addresses(["fd00:3::1/64", "fe80::9f0f:7554:9cc:2544/64"]) == ["fd00:3::1/64"]
    routes = ["10.1.0.0/24", "10.1.0.0/24", "fe80::/64", "fd00:3::/64", "fd00:1::/64", "0.0.0.0/0"]
    assert tunnel_routes(routes, ["10.3.0.1/32", "fd00:3::1/64"]) == ["10.1.0.0/24", "fd00:1::/64"]
