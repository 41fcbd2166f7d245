"""client/recovery.py with a fake clock: which recovery, when."""

from client.dataplane import SaCounters
from client.esp_liveness import SilenceWatch
from client.recovery import DESYNC_BUDGET, NewIkeSa, Recovery, RekeyChildren


def counters(packets_in, packets_out):
    return [SaCounters(1, b"in01", b"out1", packets_in=packets_in, packets_out=packets_out)]


def test_an_unanswered_request_brings_up_a_new_ike_sa_once_after_the_budget():
    recovery = Recovery()
    sent_at = 1000.0
    decisions = [recovery.tick(sent_at + t, counters(t, t), (sent_at, "INFORMATIONAL request 2"))
                 for t in range(0, 12)]
    due = [i for i, d in enumerate(decisions) if d is not None]
    assert due == [int(DESYNC_BUDGET)]   # once, not again for the same request
    assert isinstance(decisions[due[0]], NewIkeSa)
    assert "INFORMATIONAL request 2" in decisions[due[0]].why
    # The next request that goes unanswered counts anew; so does everything after restart().
    assert isinstance(recovery.tick(1020.0, counters(20, 20), (1014.0, "x")), NewIkeSa)
    recovery.restart()
    assert isinstance(recovery.tick(1021.0, counters(20, 20), (1014.0, "x")), NewIkeSa)


def test_answered_requests_never_trigger_anything():
    recovery = Recovery()
    for t in range(30):
        assert recovery.tick(float(t), counters(t * 10, t * 10), (t - 0.1, "DPD")) is None


def test_inbound_silence_while_sending_rekeys_the_children():
    recovery = Recovery(silence=SilenceWatch(budget=3.0))
    decisions = []
    for t in range(10):
        decisions.append(recovery.tick(float(t), counters(5, 10 + 10 * t), None))
    due = [t for t, d in enumerate(decisions) if d is not None]
    # sending since t=0 with nothing back: 3 s budget, then doubled to 6 s
    assert due == [3, 9]
    assert all(isinstance(decisions[t], RekeyChildren) for t in due)


def test_kernel_replay_drops_without_accepted_packets_rekey_with_backoff():
    """The kernel data plane: the gateway's restarted counter shows only as stats_replay."""
    from client.dataplane import SaCounters
    from client.esp_liveness import ReplayStall

    recovery = Recovery(replay_stall=ReplayStall(checks=2))

    def tick(t, packets_in, replays):
        c = SaCounters(1, b"in01", b"out1", packets_in=packets_in, packets_out=0,
                       replay_drops=replays)
        return recovery.tick(float(t), [c], None)

    assert tick(0, 100, 0) is None
    assert tick(1, 100, 5) is None          # one check with only replays: maybe reordering
    decision = tick(2, 100, 9)              # two in a row: the counter restarted
    assert isinstance(decision, RekeyChildren) and "replayed" in decision.why
    fired = [t for t in range(3, 12) if tick(t, 100, 9 + t) is not None]
    assert fired == [6]                      # four checks needed the second time
    assert tick(12, 150, 30) is None         # accepted traffic: back to two checks
    assert tick(13, 150, 31) is None and isinstance(tick(14, 150, 32), RekeyChildren)


def test_userspace_replay_drops_alone_do_not_rekey():
    recovery = Recovery()
    for t in range(10):
        c = SaCounters(1, b"in01", b"out1", packets_in=100, packets_out=0, replay_drops=t * 10)
        assert recovery.tick(float(t), [c], None) is None
