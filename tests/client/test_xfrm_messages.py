"""XFRM netlink layouts (client/xfrm.py) against linux/xfrm.h, and policies in a real kernel.

The sizes below are gcc's sizeof() of the linux/xfrm.h structs on x86_64 (and aarch64, which
aligns the same way); the kernel rejects a message whose fixed part has the wrong size or
reads attributes from the wrong offset. This host's kernel has XFRM but no ESP, so SAs are
tested in the VM lane (tests/kernel/); policies can be added, dumped and deleted here, in a
network namespace of our own.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import uuid

import pytest

from client import xfrm
from client.kernel_dataplane import (REQID_BASE, XfrmInterface, bypass_socket, clean_stale,
                                     interface_name, reqid_of, tunnel_if_id)

C_SIZES = {  # sizeof(struct …) from linux/xfrm.h, x86_64
    xfrm.xfrm_usersa_info: 224,
    xfrm.xfrm_usersa_id: 24,
    xfrm.xfrm_userpolicy_info: 168,
    xfrm.xfrm_userpolicy_id: 64,
    xfrm.xfrm_user_expire: 232,
    xfrm.xfrm_user_polexpire: 176,
    xfrm.xfrm_user_acquire: 280,
    xfrm._XfrmAttributes.xfrm_user_tmpl: 64,
    xfrm._XfrmAttributes.xfrm_encap_tmpl: 24,
    xfrm._XfrmAttributes.xfrm_algo: 68,
    xfrm._XfrmAttributes.xfrm_algo_auth: 72,
    xfrm._XfrmAttributes.xfrm_algo_aead: 72,
    xfrm._XfrmAttributes.xfrm_replay_state_esn: 24,
    xfrm._XfrmAttributes.xfrm_mark: 8,
    xfrm._XfrmAttributes.xfrm_userpolicy_type: 6,
    xfrm._XfrmAttributes.xfrm_lifetime_cur: 32,
}


def _size(cls) -> int:
    return sum(struct.calcsize(fmt) for _, fmt in cls.fields)


@pytest.mark.parametrize("cls", list(C_SIZES), ids=lambda c: c.__name__)
def test_layout_sizes_match_linux_xfrm_h(cls):
    assert _size(cls) == C_SIZES[cls]


def _offset(cls, field: str) -> int:
    offset = 0
    for name, fmt in cls.fields:
        if name == field:
            return offset
        offset += struct.calcsize(fmt)
    raise KeyError(field)


def test_offsets_of_fields_after_compiler_padding():
    # offsetof() from gcc: where a missing pad would shift everything after it
    assert _offset(xfrm.xfrm_usersa_info, "sel_ifindex") == 48
    assert _offset(xfrm.xfrm_usersa_info, "id_daddr") == 56
    assert _offset(xfrm.xfrm_usersa_info, "saddr") == 80
    assert _offset(xfrm.xfrm_usersa_info, "lft_soft_byte_limit") == 96
    assert _offset(xfrm.xfrm_usersa_info, "curlft_bytes") == 160
    assert _offset(xfrm.xfrm_usersa_info, "seq") == 204
    assert _offset(xfrm.xfrm_usersa_info, "flags") == 216
    assert _offset(xfrm.xfrm_userpolicy_info, "priority") == 152
    assert _offset(xfrm.xfrm_user_acquire, "policy_priority") == 96 + 152
    assert _offset(xfrm.xfrm_user_acquire, "seq") == 276
    tmpl = xfrm._XfrmAttributes.xfrm_user_tmpl
    assert (_offset(tmpl, "family"), _offset(tmpl, "saddr"), _offset(tmpl, "reqid"),
            _offset(tmpl, "aalgos")) == (24, 28, 44, 52)


def test_new_sa_round_trip_with_aead_esn_encap_and_if_id():
    key = bytes(range(36))
    fields = {**xfrm.selector(), **xfrm.no_limits(),
              "id_daddr": xfrm.pack_address("198.51.100.2"), "id_spi": b"\xc1\x00\x00\x07",
              "id_proto": xfrm.IPPROTO_ESP, "saddr": xfrm.pack_address("198.51.100.1"),
              "family": socket.AF_INET, "mode": xfrm.XFRM_MODE_TUNNEL, "reqid": 0x63790001,
              "flags": xfrm.XFRM_STATE_ESN | xfrm.XFRM_STATE_AF_UNSPEC,
              "lft_hard_add_expires_seconds": 3600}
    attrs = [("XFRMA_ALG_AEAD", {"alg_name": b"rfc4106(gcm(aes))", "alg_key_len": 288,
                                 "alg_icv_len": 128, "alg_key": key}),
             ("XFRMA_REPLAY_ESN_VAL", {"bmp_len": 4, "replay_window": 128, "bmp": bytes(16)}),
             ("XFRMA_ENCAP", {"encap_type": xfrm.UDP_ENCAP_ESPINUDP, "encap_sport": xfrm.pack_port(4500),
                              "encap_dport": xfrm.pack_port(31337), "encap_oa": bytes(16)}),
             ("XFRMA_IF_ID", 0x63791234)]
    data = xfrm.build(xfrm.xfrm_usersa_info, xfrm.XFRM_MSG_NEWSA, 5, fields, attrs, seq=9)

    length, msg_type, flags, seq = struct.unpack_from("IHHI", data)
    assert (length, msg_type, flags, seq) == (len(data), xfrm.XFRM_MSG_NEWSA, 5, 9)
    # the first attribute starts right after the 224-byte struct: XFRMA_ALG_AEAD, 4+72+36 bytes
    assert struct.unpack_from("HH", data, 16 + 224) == (4 + 72 + 36, 18)
    assert data[16 + 224 + 4:16 + 224 + 4 + 17] == b"rfc4106(gcm(aes))"
    # ports are network order on the wire
    encap_at = data.index(struct.pack("HH", 28, 4))
    assert data[encap_at + 4 + 2:encap_at + 4 + 6] == b"\x11\x94\x7a\x69"

    [(kind, message, _)] = xfrm.parse(data)
    assert kind == xfrm.XFRM_MSG_NEWSA
    assert message["id_spi"] == b"\xc1\x00\x00\x07"
    assert xfrm.unpack_address(message["id_daddr"], message["family"]) == ipaddress.ip_address("198.51.100.2")
    assert message["reqid"] == 0x63790001
    assert message["flags"] == xfrm.XFRM_STATE_ESN | xfrm.XFRM_STATE_AF_UNSPEC
    assert message["lft_hard_add_expires_seconds"] == 3600
    assert message["lft_soft_byte_limit"] == xfrm.XFRM_INF
    assert message["lft_soft_use_expires_seconds"] == 0  # 0 = never; XFRM_INF would overflow
    aead = message.get_attr("XFRMA_ALG_AEAD")
    assert aead["alg_key"] == key and aead["alg_icv_len"] == 128 and aead["alg_key_len"] == 288
    assert aead["alg_name"].rstrip(b"\0") == b"rfc4106(gcm(aes))"
    esn = message.get_attr("XFRMA_REPLAY_ESN_VAL")
    assert (esn["bmp_len"], esn["replay_window"], esn["bmp"]) == (4, 128, bytes(16))
    encap = message.get_attr("XFRMA_ENCAP")
    assert (encap["encap_sport"], encap["encap_dport"]) == (b"\x11\x94", b"\x7a\x69")
    assert message.get_attr("XFRMA_IF_ID") == 0x63791234


def test_cbc_hmac_attributes_and_an_ipv6_selector_round_trip():
    fields = {**xfrm.selector("fd00:3::1/128", "fd00:1::/64"), **xfrm.no_limits(),
              "priority": 99, "dir": xfrm.XFRM_POLICY_IN}
    template = {"id_daddr": xfrm.pack_address("fd00:5::2"), "id_proto": xfrm.IPPROTO_ESP,
                "family": socket.AF_INET6, "saddr": xfrm.pack_address("fd00:5::1"),
                "reqid": 7, "mode": xfrm.XFRM_MODE_TUNNEL, "aalgos": 0xFFFFFFFF}
    data = xfrm.build(xfrm.xfrm_userpolicy_info, xfrm.XFRM_MSG_UPDPOLICY, 0, fields,
                      [("XFRMA_TMPL", template), ("XFRMA_MARK", {"v": 1, "m": 0xFF})])
    [(_, message, _)] = xfrm.parse(data)
    assert message["sel_family"] == socket.AF_INET6
    assert xfrm.unpack_address(message["sel_daddr"], socket.AF_INET6) == ipaddress.ip_address("fd00:1::")
    assert (message["sel_prefixlen_d"], message["sel_prefixlen_s"]) == (64, 128)
    assert (message["priority"], message["dir"]) == (99, xfrm.XFRM_POLICY_IN)
    tmpl = message.get_attr("XFRMA_TMPL")
    assert (tmpl["reqid"], tmpl["family"], tmpl["aalgos"]) == (7, socket.AF_INET6, 0xFFFFFFFF)
    assert xfrm.unpack_address(tmpl["saddr"], socket.AF_INET6) == ipaddress.ip_address("fd00:5::1")
    mark = message.get_attr("XFRMA_MARK")
    assert (mark["v"], mark["m"]) == (1, 0xFF)

    auth = xfrm.build(xfrm.xfrm_usersa_info, xfrm.XFRM_MSG_NEWSA, 0, {}, [
        ("XFRMA_ALG_AUTH_TRUNC", {"alg_name": b"hmac(sha256)", "alg_key_len": 256,
                                  "alg_trunc_len": 128, "alg_key": b"k" * 32})])
    [(_, decoded, _)] = xfrm.parse(auth)
    algo = decoded.get_attr("XFRMA_ALG_AUTH_TRUNC")
    assert (algo["alg_trunc_len"], algo["alg_key"]) == (128, b"k" * 32)


def test_expire_and_acquire_decode():
    state = {**xfrm.selector(), "id_spi": b"\x01\x02\x03\x04", "id_daddr": xfrm.pack_address("10.0.0.1"),
             "family": socket.AF_INET, "reqid": REQID_BASE | 3}
    expire = xfrm.build(xfrm.xfrm_user_expire, xfrm.XFRM_MSG_EXPIRE, 0,
                        {**{f"state_{k}": v for k, v in state.items()}, "hard": 1})
    [(kind, message, _)] = xfrm.parse(expire)
    assert kind == xfrm.XFRM_MSG_EXPIRE and message["hard"] == 1
    assert (message["state_id_spi"], message["state_reqid"]) == (b"\x01\x02\x03\x04", REQID_BASE | 3)
    acquire = xfrm.build(xfrm.xfrm_user_acquire, xfrm.XFRM_MSG_ACQUIRE, 0, {"seq": 42},
                         [("XFRMA_TMPL", {"reqid": REQID_BASE | 3, "id_proto": xfrm.IPPROTO_ESP})])
    [(kind, message, _)] = xfrm.parse(acquire)
    assert kind == xfrm.XFRM_MSG_ACQUIRE and message["seq"] == 42
    assert message.get_attr("XFRMA_TMPL")["reqid"] == REQID_BASE | 3


def test_identifiers_stay_in_cygnets_ranges():
    assert tunnel_if_id("office") == tunnel_if_id("office")
    assert tunnel_if_id("office") != tunnel_if_id("home")
    assert tunnel_if_id("office") >> 16 == 0x6379
    assert len(interface_name(tunnel_if_id("office"))) <= 15
    assert reqid_of(1) >> 16 == 0x6379 and reqid_of(1) != reqid_of(2)


# ------------------------------------------------------------------------------ a real kernel


def _can_use_namespaces() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.fixture
def netns():
    """A network namespace of our own; the test process runs code in it via a child."""
    if not _can_use_namespaces():
        pytest.skip("needs root and iproute2 for a network namespace")
    name = f"cygxfrm-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _in_namespace(name: str, function):
    """Run this module's `function` in namespace `name` (a child Python); returns its result
    (through JSON: tuples come back as lists)."""
    import json
    import sys
    from pathlib import Path

    code = f"import json, tests.client.test_xfrm_messages as m; print(json.dumps(m.{function.__name__}()))"
    result = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _policy_lifecycle():
    if_id = tunnel_if_id("policy-test")
    template = {"id_daddr": xfrm.pack_address("198.51.100.1"), "id_proto": xfrm.IPPROTO_ESP,
                "family": socket.AF_INET, "saddr": xfrm.pack_address("198.51.100.2"),
                "reqid": reqid_of(1), "mode": xfrm.XFRM_MODE_TUNNEL, "aalgos": 0xFFFFFFFF,
                "ealgos": 0xFFFFFFFF, "calgos": 0xFFFFFFFF}
    seen = {}
    with xfrm.XfrmSocket() as nl:
        for direction, src, dst in ((xfrm.XFRM_POLICY_OUT, "10.3.0.1/32", "10.1.0.0/24"),
                                    (xfrm.XFRM_POLICY_IN, "10.1.0.0/24", "10.3.0.1/32")):
            nl.request(xfrm.xfrm_userpolicy_info, xfrm.XFRM_MSG_UPDPOLICY,
                       {**xfrm.selector(src, dst), **xfrm.no_limits(), "priority": 1234,
                        "dir": direction}, [("XFRMA_TMPL", template), ("XFRMA_IF_ID", if_id)])
        # Someone else's policy (no if_id, reqid 1, as charon's): must survive our cleanup.
        nl.request(xfrm.xfrm_userpolicy_info, xfrm.XFRM_MSG_UPDPOLICY,
                   {**xfrm.selector("10.9.0.0/16", "10.8.0.0/16"), **xfrm.no_limits(),
                    "dir": xfrm.XFRM_POLICY_OUT}, [("XFRMA_TMPL", {**template, "reqid": 1})])
        dumped = nl.request(xfrm.xfrm_userpolicy_info, xfrm.XFRM_MSG_GETPOLICY, dump=True)
        seen["dumped"] = sorted(
            [p["dir"], str(xfrm.unpack_address(p["sel_saddr"], p["sel_family"])), p["sel_prefixlen_s"],
             str(xfrm.unpack_address(p["sel_daddr"], p["sel_family"])), p["sel_prefixlen_d"],
             p["priority"], p.get_attr("XFRMA_TMPL")["reqid"], p.get_attr("XFRMA_IF_ID")]
            for p in dumped)
        seen["ip"] = subprocess.run(["ip", "xfrm", "policy"], capture_output=True, text=True).stdout
        seen["removed"] = clean_stale(if_id)
        seen["left"] = [[p["dir"], p.get_attr("XFRMA_TMPL")["reqid"]]
                        for p in nl.request(xfrm.xfrm_userpolicy_info, xfrm.XFRM_MSG_GETPOLICY, dump=True)]
        try:
            nl.request(xfrm.xfrm_userpolicy_id, xfrm.XFRM_MSG_DELPOLICY,
                       {**xfrm.selector("10.3.0.1/32", "10.1.0.0/24"), "dir": xfrm.XFRM_POLICY_OUT},
                       [("XFRMA_IF_ID", if_id)])
            seen["second_delete"] = 0
        except OSError as error:
            seen["second_delete"] = error.errno
    return seen


@pytest.mark.netns
def test_policies_add_dump_and_clean_in_a_namespace(netns):
    seen = _in_namespace(netns, _policy_lifecycle)
    if_id = tunnel_if_id("policy-test")
    assert [1, "10.3.0.1", 32, "10.1.0.0", 24, 1234, reqid_of(1), if_id] in seen["dumped"]
    assert [0, "10.1.0.0", 24, "10.3.0.1", 32, 1234, reqid_of(1), if_id] in seen["dumped"]
    # iproute2 reads what we wrote the same way
    assert "src 10.3.0.1/32 dst 10.1.0.0/24" in seen["ip"]
    assert f"reqid {reqid_of(1)} mode tunnel" in seen["ip"]
    assert seen["removed"] == 2
    assert seen["left"] == [[1, 1]], "only the foreign policy may remain"
    assert seen["second_delete"] == 2  # ENOENT: it really was gone


def _bypass_and_interface():
    results = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        bypass_socket(sock)  # the kernel validates the xfrm_userpolicy_info we pass
        results["bypass"] = True
    try:
        interface = XfrmInterface.create(tunnel_if_id("iface-test"))
    except OSError as error:
        results["interface"] = f"unavailable: {error}"
        return results
    try:
        interface.configure(["10.3.0.1/32"], mtu=1400)
        results["interface"] = subprocess.run(["ip", "-d", "addr", "show", interface.name],
                                              capture_output=True, text=True).stdout
    finally:
        interface.close()
    results["after"] = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return results


@pytest.mark.netns
def test_ike_socket_bypass_and_xfrm_interface(netns):
    results = _in_namespace(netns, _bypass_and_interface)
    assert results["bypass"]
    if results["interface"].startswith("unavailable"):
        pytest.skip(f"XFRM interfaces: {results['interface']}")
    text = results["interface"]
    assert "xfrm" in text and f"if_id 0x{tunnel_if_id('iface-test'):x}" in text
    assert "inet 10.3.0.1/32" in text and "mtu 1400" in text
    assert interface_name(tunnel_if_id("iface-test")) not in results["after"]
