"""The managed-resolv.conf backend: applied, restored byte for byte, recovered after a crash;
resolvconf, when one is on PATH, gets the tunnel's servers and takes them back."""
import ipaddress
import stat

from client.dns import DnsConfig, render_resolv_conf, restore_file


def test_render_puts_search_domains_and_at_most_three_servers():
    text = render_resolv_conf(["10.1.0.53", "10.1.0.54", "fd00:1::53", "10.9.9.9"], ["corp.test"], "office")
    assert text.splitlines()[1] == "search corp.test"
    assert [l for l in text.splitlines() if l.startswith("nameserver")] == [
        "nameserver 10.1.0.53", "nameserver 10.1.0.54", "nameserver fd00:1::53"]


def test_file_backend_applies_and_restores_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr("client.dns._resolved_running", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-resolvconf-here"))
    resolv = tmp_path / "resolv.conf"
    original = b"# the user's own\nnameserver 198.51.100.53\noptions edns0\n"
    resolv.write_bytes(original)
    dns = DnsConfig("office", "cyg0", tmp_path / "state", resolv_conf=resolv)
    assert dns.apply([ipaddress.ip_address("10.1.0.53")], ["corp.test"]) == "file"
    assert "nameserver 10.1.0.53" in resolv.read_text()
    assert stat.S_IMODE(dns.backup.stat().st_mode) == 0o600
    # a second apply (rekey, new config) must not overwrite the saved original
    dns.apply([ipaddress.ip_address("10.1.0.54")], [])
    dns.restore()
    assert resolv.read_bytes() == original
    assert not dns.backup.exists()


def test_crash_recovery_restores_original(tmp_path, monkeypatch):
    monkeypatch.setattr("client.dns._resolved_running", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-resolvconf-here"))
    resolv = tmp_path / "resolv.conf"
    resolv.write_bytes(b"nameserver 198.51.100.53\n")
    DnsConfig("office", "cyg0", tmp_path, resolv_conf=resolv).apply([ipaddress.ip_address("10.1.0.53")], [])
    # the process dies here; the next start finds the backup
    assert restore_file(tmp_path / "office.resolv.conf.orig", resolv)
    assert resolv.read_bytes() == b"nameserver 198.51.100.53\n"
    assert not restore_file(tmp_path / "office.resolv.conf.orig", resolv)


def test_nothing_to_apply_touches_nothing(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 198.51.100.53\n")
    assert DnsConfig("x", "cyg0", tmp_path, resolv_conf=resolv).apply([], []) == "none"
    assert resolv.read_text() == "nameserver 198.51.100.53\n"


def test_resolvconf_on_path_is_used_and_told_to_forget(tmp_path, monkeypatch):
    monkeypatch.setattr("client.dns._resolved_running", lambda: False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "resolvconf").mkdir()  # a directory of that name earlier on PATH is no command
    real_bin = tmp_path / "real-bin"
    real_bin.mkdir()
    calls = tmp_path / "calls"
    script = real_bin / "resolvconf"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n/bin/cat >> {calls}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{real_bin}")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 198.51.100.53\n")
    dns = DnsConfig("office", "cyg0", tmp_path / "state", resolv_conf=resolv)
    assert dns.apply([ipaddress.ip_address("10.1.0.53")], ["corp.test"]) == "resolvconf"
    dns.restore()
    lines = calls.read_text().splitlines()
    assert lines[0] == "-a cyg0"
    assert "nameserver 10.1.0.53" in lines and "search corp.test" in lines
    assert lines[-1] == "-d cyg0"
    assert resolv.read_text() == "nameserver 198.51.100.53\n"  # resolvconf's business, not ours


def test_resolved_routing_follows_the_kind_of_tunnel():
    from client.dns import resolved_settings

    # full tunnel: every name to the gateway's servers; its domains stay search domains
    assert resolved_settings(["corp.test"], full_tunnel=True)[:2] == (["~.", "corp.test"], True)
    # split tunnel with INTERNAL_DNS_DOMAIN: only those names, and no default route
    domains, default_route, mode = resolved_settings(["corp.test", "lab.test."], full_tunnel=False)
    assert (domains, default_route) == (["~corp.test", "~lab.test"], False)
    assert mode.startswith("split")
    # split tunnel without domains: as before, the gateway's servers for every name
    assert resolved_settings([], full_tunnel=False)[:2] == (["~."], True)
