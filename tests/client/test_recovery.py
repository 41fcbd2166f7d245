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
