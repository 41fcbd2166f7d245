"""client/esp_liveness.py with a fake clock: counter-restart evidence and inbound silence."""

import pytest

from client.esp import InboundSa, OutboundSa, ReplayedPacket
from client.esp_liveness import CounterRestartCheck, SilenceWatch
from ike.constants import EncrId

SPI = bytes.fromhex("c0ffee02")
KEY = bytes(range(20))  # AES-GCM-128 key and salt


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sa_pair(clock, window=1024):
    events = []
    inbound = InboundSa(SPI, EncrId.AES_GCM_16, 128, KEY, replay_window=window,
                        on_limit=lambda severity, what: events.append((severity, what)),
                        restart_check=CounterRestartCheck(clock))
    return inbound, OutboundSa(SPI, EncrId.AES_GCM_16, 128, KEY), events


@pytest.mark.parametrize("interval", [0.02, 0.5, 5.0], ids=["50pps", "2pps", "every-5s"])
def test_a_restarted_counter_close_to_the_top_is_spotted_by_its_second_packet(interval):
    """The old rule waited for 16 drops in a row (8 s at 2 packets/s, 80 s at one per 5 s).
    When the gateway had sent fewer than RESTART_FAR packets before the takeover, the restarted
    counter lands close behind the top: two authentic replays RESTART_SPAN apart are enough,
    whatever the rate."""
    clock = FakeClock()
    inbound, first_node, events = sa_pair(clock)
    for _ in range(40):
        inbound.open(first_node.seal(b"x", 4))
    second_node = OutboundSa(SPI, EncrId.AES_GCM_16, 128, KEY)  # same keys, counter from 1
    drops = 0
    while not events:
        with pytest.raises(ReplayedPacket):
            inbound.open(second_node.seal(b"y", 4))
        drops += 1
        clock.now += interval
    assert events == [("soft", "sequence-reset")]
    assert drops == (2 if interval >= 0.25 else 14)   # drop 14 comes 13 * 0.02 s >= 0.25 s after the first
    assert inbound.window.top == 40


def test_a_restarted_counter_far_behind_the_top_is_spotted_by_its_first_packet():
    clock = FakeClock()
    inbound, first_node, events = sa_pair(clock)     # a 1024-packet window
    for _ in range(300):
        inbound.open(first_node.seal(b"x", 4))
    second_node = OutboundSa(SPI, EncrId.AES_GCM_16, 128, KEY)
    with pytest.raises(ReplayedPacket):
        inbound.open(second_node.seal(b"y", 4))     # seq 1, 299 behind: inside the window
    assert events == [("soft", "sequence-reset")]


def test_duplicates_and_forgeries_are_no_evidence():
    clock = FakeClock()
    inbound, first_node, events = sa_pair(clock)
    sent = [first_node.seal(b"x", 4) for _ in range(100)]
    for packet in sent:
        inbound.open(packet)
    # A duplicated packet, seconds later, after which traffic goes on: each run is one drop.
    for packet in sent[-10:]:
        with pytest.raises(ReplayedPacket):
            inbound.open(packet)
        clock.now += 1.0
        inbound.open(first_node.seal(b"x", 4))
    # Forged packets with old sequence numbers, spread over seconds.
    forged = bytearray(sent[50])
    forged[-1] ^= 1
    for _ in range(40):
        with pytest.raises(ReplayedPacket):
            inbound.open(bytes(forged))
        clock.now += 0.5
    assert events == []


def test_reported_once_per_sa():
    clock = FakeClock()
    inbound, first_node, events = sa_pair(clock, window=64)
    for _ in range(200):
        inbound.open(first_node.seal(b"x", 4))
    second_node = OutboundSa(SPI, EncrId.AES_GCM_16, 128, KEY)
    for _ in range(50):
        with pytest.raises(ReplayedPacket):
            inbound.open(second_node.seal(b"y", 4))
        clock.now += 1
    assert events == [("soft", "sequence-reset")]   # far left of a 64-packet window: at once


def test_silence_while_sending_asks_for_a_rekey_after_the_budget():
    watch = SilenceWatch(budget=4.0, budget_max=16.0)
    packets_in = packets_out = 0
    t = 0.0
    assert not watch.observe(t, packets_in, packets_out)
    for _ in range(5):   # both ways: alive
        t += 1
        packets_in += 50
        packets_out += 50
        assert not watch.observe(t, packets_in, packets_out)
    fired = []
    for _ in range(12):  # the gateway goes silent, we keep sending
        t += 1
        packets_out += 50
        if watch.observe(t, packets_in, packets_out):
            fired.append(t)
    assert fired == [9.0, 17.0]   # 4 s after the last inbound packet, then 8 s more (doubled)
    t += 1
    packets_in += 1               # alive again: the budget starts from 4 s
    assert not watch.observe(t, packets_in, packets_out + 1)
    assert watch.budget == 4.0


def test_silence_while_idle_or_after_an_sa_change_is_no_evidence():
    watch = SilenceWatch(budget=4.0)
    for t in range(20):            # nothing either way: an idle tunnel
        assert not watch.observe(float(t), 10, 10)
    fired = False
    out = 10
    for t in range(20, 40):       # we send, but every 3 s a rekey resets the counters
        out = 1 if t % 3 == 0 else out + 5
        fired |= watch.observe(float(t), 0 if t % 3 == 0 else 10, out)
    assert not fired


def test_outbound_sequence_numbers_move_on_when_the_cluster_asks():
    """RFC 6311 §4.3 through the userspace data plane: the next packet carries seq + delta."""
    import socket as socketmodule
    from types import SimpleNamespace

    from client.dataplane import UserspaceDataPlane

    tun = SimpleNamespace(vnet_hdr=False, fd=-1)
    sock = socketmodule.socket(socketmodule.AF_INET, socketmodule.SOCK_DGRAM)
    try:
        plane = UserspaceDataPlane(tun, sock)
        sa = SimpleNamespace(child_id=1, spi_in=SPI, spi_out=b"\x00\x00\x10\x01",
                             encr_id=EncrId.AES_GCM_16, encr_key_bits=128, integ_id=None,
                             esn=False, encr_key_in=KEY, integ_key_in=b"", encr_key_out=KEY,
                             integ_key_out=b"", local_ts=("10.3.0.1/32",),
                             remote_ts=("10.1.0.0/24",), udp_encapsulation=True)
        plane.install_child_sa(sa)
        outbound = plane._outbound[1].outbound
        outbound.seal(b"x", 4)
        plane.advance_outbound(1000)
        packet = outbound.seal(b"x", 4)
        assert int.from_bytes(packet[4:8], "big") == 1002
    finally:
        sock.close()
