"""bench/: the pcap reader on a hand-made capture, and one scenario end to end (no timing
assertions: the benchmark measures, it does not judge here)."""

from __future__ import annotations

import struct

import pytest

from bench import pcap, report


def _ike_frame(spi_i: bytes, exchange: int, flags: int, message_id: int, port: int) -> bytes:
    ike = spi_i + bytes(8) + struct.pack("!BBBBII", 33, 0x20, exchange, flags, message_id, 28)
    payload = (b"\0\0\0\0" if port == 4500 else b"") + ike
    udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([198, 51, 100, 2]), bytes([198, 51, 100, 1])) + udp
    return bytes(12) + b"\x08\x00" + ip          # Ethernet


def _pcap(records) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for when, frame in records:
        out += struct.pack("<IIII", int(when), round((when % 1) * 1e6), len(frame), len(frame)) + frame
    return out


def test_handshake_time_runs_from_first_sa_init_request_to_last_auth_response(tmp_path):
    spi = bytes(range(1, 9))
    records = [
        (100.000, _ike_frame(spi, 34, 0x08, 0, 500)),   # IKE_SA_INIT request
        (100.002, _ike_frame(spi, 34, 0x20, 0, 500)),   # response
        (100.010, _ike_frame(spi, 35, 0x08, 1, 4500)),  # IKE_AUTH request (EAP round 1)
        (100.013, _ike_frame(spi, 35, 0x20, 1, 4500)),
        (100.020, _ike_frame(spi, 35, 0x08, 2, 4500)),  # last round
        (100.025, _ike_frame(spi, 35, 0x20, 2, 4500)),
        (100.100, _ike_frame(spi, 37, 0x08, 3, 4500)),  # INFORMATIONAL (DELETE): not counted
    ]
    path = tmp_path / "x.pcap"
    path.write_bytes(_pcap(records))
    packets = pcap.ike_packets(path)
    assert [(p.exchange, p.is_response, p.message_id) for p in packets][:3] == [
        (34, False, 0), (34, True, 0), (35, False, 1)]
    (found,) = pcap.handshakes(packets, [(99.0, 101.0)])
    assert found[1] - found[0] == pytest.approx(0.025, abs=1e-5)
    split = pcap.who_waited(packets, found)
    assert split["client_s"] == pytest.approx(0.008 + 0.007, abs=1e-5)
    assert split["gateway_s"] == pytest.approx(0.002 + 0.003 + 0.005, abs=1e-5)
    assert pcap.handshakes(packets, [(100.05, 101.0)]) == [None]


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_handshake_scenario_runs_against_the_testbed(testbed_factory, tmp_path):
    from bench import handshake

    tb = testbed_factory(gateway_options=handshake.gateway_options(), capture=False, iperf=False)
    results = handshake.run(tb, tmp_path, count=5, repeats=1, log=print)
    assert results["cygnet"]["all_established"] and results["strongswan"]["all_established"]
    assert results["cpu_ratio"] is not None
    text = report.markdown({"date": "now", "mode": "smoke", "machine": {
        "nproc": 1, "cpu_model": "x", "kernel": "x", "python": "x", "strongswan": "x", "commit": "x"},
        "load_average": {"start": [0, 0, 0]}, "scenarios": {"handshake": results},
        "goals": report.goals({"scenarios": {"handshake": results}})})
    assert "Handshake cost" in text
