"""`cygnet import` of hostile .sswan files (issue 13 §3): one clear error, nothing written."""
from __future__ import annotations

import ipaddress
import random
from bisect import bisect_right
from pathlib import Path

import pytest

from client.cli import main
from client.sswan import SswanError, _subtract, import_sswan, read_sswan
from tests.client.test_sswan import Pki, base_profile, write_sswan


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_deeply_nested_json(tmp_path):
    path = tmp_path / "deep.sswan"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SswanError, match="nested too deeply"):
        read_sswan(path, tmp_path / "m")


def test_dev_zero_is_not_read(tmp_path):
    with pytest.raises(SswanError, match="not a regular file"):
        import_sswan(Path("/dev/zero"), tmp_path / "profiles", name="zero")


def test_lone_surrogate_is_one_line_and_leaves_no_temporary_file(tmp_path, capsys):
    path = tmp_path / "s.sswan"
    # JSON may spell a lone surrogate; it is no text that UTF-8 (or a TOML file) can hold.
    path.write_text('{"uuid": "2b2a9c7e-64b4-4b8e-9d0c-1f4f3a7c0e11", "name": "x", "type": "ikev2-eap",'
                    ' "remote": {"addr": "vpn.example.org", "id": "gw\\ud800"}, "local": {"eap_id": "c"}}')
    profiles = tmp_path / "profiles"
    code = main(["import", str(path), "--dir", str(profiles)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1
    assert "remote.id" in err and "surrogate" in err
    assert not profiles.exists() or files_under(profiles) == set()


def test_unknown_field_with_a_surrogate_only_warns(tmp_path, capsys):
    path = tmp_path / "s.sswan"
    path.write_text('{"uuid": "2b2a9c7e-64b4-4b8e-9d0c-1f4f3a7c0e11", "name": "x", "type": "ikev2-eap",'
                    ' "remote": {"addr": "vpn.example.org", "\\udfff": 1}, "local": {"eap_id": "c"}}')
    assert main(["import", str(path), "--dir", str(tmp_path / "p")]) == 0
    assert "\\udfff" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../escaped", "a/b", ".hidden", "x" * 65, "ok\n"])
def test_bad_name_is_refused_before_anything_is_written(tmp_path, name):
    pki = Pki()
    path = write_sswan(tmp_path, base_profile("ikev2-eap", local={"eap_id": "c"},
                                              remote={"addr": "vpn.example.org", "cert": pki.ca_b64()}))
    profiles = tmp_path / "profiles"
    before = files_under(tmp_path)
    with pytest.raises(SswanError, match="is not a profile name"):
        import_sswan(path, profiles, name=name)
    assert files_under(tmp_path) == before  # no ca.pem next to the profile folder, no folder


def test_material_is_written_only_after_everything_is_checked(tmp_path):
    pki = Pki()
    # A valid CA, then a PKCS#12 that is not one: the CA must not have been written.
    path = write_sswan(tmp_path, base_profile("ikev2-cert", local={"p12": "AAAA"},
                                              remote={"addr": "vpn.example.org", "cert": pki.ca_b64()}))
    with pytest.raises(SswanError, match="local.p12"):
        import_sswan(path, tmp_path / "profiles", name="office", ask=lambda _: "x")
    assert not (tmp_path / "profiles" / "office").exists()


def test_material_is_removed_when_the_profile_check_fails(tmp_path):
    pki = Pki()
    path = write_sswan(tmp_path, base_profile("ikev2-eap", local={"eap_id": "c"}, mtu=10,
                                              remote={"addr": "vpn.example.org", "cert": pki.ca_b64()}))
    with pytest.raises(SswanError, match="mtu"):
        import_sswan(path, tmp_path / "profiles", name="office")
    assert files_under(tmp_path / "profiles") == set()


# ------------------------------------------------------------------------------ split tunnel


def _random_v6_hosts(count: int) -> list:
    rng = random.Random(13)
    # One address in each of `count` different /16s: the case that made subtraction quadratic.
    prefixes = rng.sample(range(1, 1 << 16), count)
    return [ipaddress.ip_network(f"{p:x}:{rng.randrange(1 << 16):x}::{rng.randrange(1, 1 << 16):x}/128")
            for p in prefixes]


@pytest.mark.timeout(120)  # the old subtraction needed over 120 s for 1,500 addresses
def test_subtracting_5000_scattered_ipv6_addresses_is_exact(tmp_path):
    excluded = _random_v6_hosts(5000)
    included = [ipaddress.ip_network("::/0"), ipaddress.ip_network("10.0.0.0/8")]
    result = _subtract(included, excluded + [ipaddress.ip_network("10.1.0.0/16")])
    v4 = [n for n in result if n.version == 4]
    v6 = [n for n in result if n.version == 6]
    assert sum(n.num_addresses for n in v4) == 2**24 - 2**16
    assert not any(n.overlaps(ipaddress.ip_network("10.1.0.0/16")) for n in v4)
    # Disjoint, sorted, covering everything but the excluded addresses:
    starts = [int(n.network_address) for n in v6]
    assert starts == sorted(starts)
    for a, b in zip(v6, v6[1:]):
        assert int(a.broadcast_address) < int(b.network_address)
    assert sum(n.num_addresses for n in v6) == 2**128 - 5000
    for host in excluded:  # no remaining network holds an excluded address
        i = bisect_right(starts, int(host.network_address)) - 1
        assert i < 0 or int(v6[i].broadcast_address) < int(host.network_address)


def test_subtract_matches_the_plain_definition_on_small_cases():
    rng = random.Random(7)
    for _ in range(200):
        def net(bits=8):
            prefix = rng.randrange(0, bits + 1)
            return ipaddress.ip_network(f"10.0.0.{rng.randrange(256)}/{24 + prefix}", strict=False)
        included = [net() for _ in range(rng.randrange(1, 4))]
        excluded = [net() for _ in range(rng.randrange(0, 6))]
        want = {a for n in included for a in n} - {a for n in excluded for a in n}
        got = _subtract(included, excluded)
        assert {a for n in got for a in n} == want
        assert list(ipaddress.collapse_addresses(got)) == got  # minimal, sorted


def test_too_fragmented_split_tunnel_is_refused(tmp_path):
    excluded = [str(n) for n in _random_v6_hosts(400)]
    path = write_sswan(tmp_path, base_profile("ikev2-eap", local={"eap_id": "c"},
                                              **{"split-tunneling": {"excluded": excluded}}))
    with pytest.raises(SswanError, match="split-tunneling.excluded.*at most 255"):
        read_sswan(path, tmp_path / "m")


def test_integer_too_long_to_read(tmp_path):
    path = tmp_path / "n.sswan"
    path.write_text('{"mtu": ' + "9" * 5000 + "}")
    with pytest.raises(SswanError, match="not valid JSON: .*4300 digits"):
        read_sswan(path, tmp_path / "m")


def _certificate_with_version(version: int) -> bytes:
    """A DER certificate whose version field says `version` (cryptography raises
    InvalidVersion, which is no ValueError, for anything but v1/v3)."""
    pki = Pki()
    from cryptography.hazmat.primitives import serialization

    der = bytearray(pki.ca.public_bytes(serialization.Encoding.DER))
    at = der.index(bytes([0xA0, 0x03, 0x02, 0x01, 0x02]))  # [0] EXPLICIT INTEGER 2 (v3)
    der[at + 4] = version
    return bytes(der)


def test_certificate_with_an_invalid_version(tmp_path):
    """Found by atheris on tests/fuzz/target_sswan.py."""
    import base64

    bad = base64.b64encode(_certificate_with_version(18)).decode()
    path = write_sswan(tmp_path, base_profile("ikev2-eap", local={"eap_id": "c"},
                                              remote={"addr": "vpn.example.org", "cert": bad}))
    with pytest.raises(SswanError, match="remote.cert.*not an X.509 certificate"):
        read_sswan(path, tmp_path / "m")


def test_certificate_file_with_an_invalid_version_is_a_certificate_error(tmp_path):
    from ike.certificates import CertificateError, _as_certificate, load_certificates

    path = tmp_path / "v18.der"
    path.write_bytes(_certificate_with_version(18))
    with pytest.raises(CertificateError, match="holds no PEM or DER certificate"):
        load_certificates(path)
    with pytest.raises(CertificateError, match="cannot be parsed"):  # a gateway's CERT payload
        _as_certificate(_certificate_with_version(18))
