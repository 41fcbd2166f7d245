"""client/killswitch.py: which families are guarded, and the nftables table that does it
(loaded into a fresh network namespace with the real nft where root allows)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from client import killswitch
from client.profile import ProfileError, profile_from_dict


def profile(**keys):
    return profile_from_dict({"gateway": "vpn.example.org", "auth": "psk", "psk_file": __file__,
                              **keys}, Path("/tmp/office.toml"))


def test_the_leak_keys_default_to_off_and_to_automatic():
    p = profile()
    assert (p.kill_switch, p.allow_lan, p.block_ipv4, p.block_ipv6) == (False, False, None, None)
    p = profile(kill_switch=True, allow_lan=True, block_ipv6=False)
    assert (p.kill_switch, p.allow_lan, p.block_ipv6) == (True, True, False)


def test_a_leak_key_that_is_not_a_boolean_is_named():
    with pytest.raises(ProfileError, match="key 'kill_switch': must be true or false"):
        profile(kill_switch="yes")


def test_a_full_tunnel_blocks_the_family_it_did_not_get():
    assert killswitch.families_to_block(profile(), {4}) == {6}
    assert killswitch.families_to_block(profile(), {6}) == {4}
    assert killswitch.families_to_block(profile(), {4, 6}) == set()
    assert killswitch.families_to_block(profile(block_ipv6=False), {4}) == set()


def test_a_split_tunnel_blocks_only_on_request():
    split = {"remote_ts": ["10.0.0.0/8"]}
    assert killswitch.families_to_block(profile(**split), {4}) == set()
    assert killswitch.families_to_block(profile(**split, block_ipv6=True), {4}) == {6}
    # a carried family is never blocked, asked or not
    assert killswitch.families_to_block(profile(**split, block_ipv4=True), {4}) == set()


def guard(families=(4, 6), lan=()):
    return killswitch.Guard(frozenset(families), "cygnet7",
                            {ipaddress.ip_address("203.0.113.1"), ipaddress.ip_address("fd00:203::1")},
                            (500, 4500, 4501), tuple(ipaddress.ip_network(n) for n in lan))


def test_the_batch_replaces_the_table_in_one_transaction():
    commands = killswitch.ruleset("cygnet-office", guard())["nftables"]
    assert [list(c)[0] for c in commands[:3]] == ["add", "delete", "add"]
    elements = {c["add"]["element"]["name"]: c["add"]["element"]["elem"]
                for c in commands if "element" in c.get("add", {})}
    assert elements == {"gw4": ["203.0.113.1"], "gw6": ["fd00:203::1"]}


def test_only_the_guarded_families_are_dropped():
    def drops(g):
        rules = [c["add"]["rule"]["expr"] for c in killswitch.ruleset("t", g)["nftables"]
                 if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == "output"]
        return [r[0]["match"]["right"] for r in rules if r[-1] == {"drop": None}]

    assert drops(guard()) == ["ipv4", "ipv6"]
    assert drops(guard(families=(6,))) == ["ipv6"]


def in_fresh_namespace(argv, **kwargs):
    return subprocess.run(["unshare", "--net", *argv], capture_output=True, text=True, **kwargs)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nftables in a namespace needs root")


@needs_root
@pytest.mark.netns
def test_nft_takes_the_table_as_written(tmp_path):
    table = f"cygnet-t{uuid.uuid4().hex[:6]}"
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(killswitch.ruleset(table, guard(lan=("192.168.1.0/24",)))))
    script = f"nft -j -f {batch} && nft -j -f {batch} && nft list table inet {table}"
    done = in_fresh_namespace(["sh", "-c", script])   # twice: the batch also replaces
    assert done.returncode == 0, done.stderr
    listing = done.stdout
    for line in ('oifname "lo" accept', 'oifname "cygnet7" accept', 'oifname "cygnet*" accept',
                 "ip daddr @gw4 udp dport { 500, 4500, 4501 } accept",
                 "ip6 daddr @gw6 meta l4proto esp accept",
                 "udp sport 68 udp dport 67 accept", "ip daddr 192.168.1.0/24 accept",
                 "meta nfproto ipv4 drop", "meta nfproto ipv6 drop"):
        assert line in listing, f"{line!r} not in\n{listing}"
    assert listing.count("policy accept") == 2


def test_the_summary_says_what_is_guarded():
    leaks = killswitch.LeakGuard(profile(kill_switch=True), "cygnet7")
    assert leaks.summary() == ""
    leaks.guard = guard()
    assert leaks.summary() == "kill switch on"
    leaks = killswitch.LeakGuard(profile(), "cygnet7")
    leaks.guard = guard(families=(6,))
    assert leaks.summary() == "IPv6 blocked outside the tunnel"
    assert leaks.blocked == ["IPv6"]


def test_without_nft_the_automatic_block_warns_and_an_asked_one_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(killswitch, "NFT", str(tmp_path / "no-nft-here"))
    said = []
    leaks = killswitch.LeakGuard(profile(), "cygnet7", said.append)
    assert leaks.open(["203.0.113.1"]) is False          # nothing left, nothing to guard yet
    leaks.tunnel_up({4})
    assert leaks.guard is None and "cannot block IPv6 outside the tunnel" in said[-1]
    asked = killswitch.LeakGuard(profile(block_ipv6=True), "cygnet7", said.append)
    with pytest.raises(killswitch.FirewallError, match="nft command is missing"):
        asked.tunnel_up({4})
    with pytest.raises(killswitch.FirewallError):
        killswitch.LeakGuard(profile(kill_switch=True), "cygnet7").open(["203.0.113.1"])
