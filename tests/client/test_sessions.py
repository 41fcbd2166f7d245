"""The session set (client/sessions.py): make-before-break reauthentication's three roles
(RFC 4478, RFC 7296 §2.8.3) and which session a datagram goes to."""

from __future__ import annotations

from client.sessions import CURRENT, REAUTHENTICATING, RETIRING, SessionSet


class FakeSession:
    def __init__(self, spi: bytes):
        self.spi = spi

    def owns(self, data: bytes) -> bool:
        return data[:8] == self.spi


def test_one_session_gets_every_datagram():
    sessions = SessionSet()
    assert sessions.for_datagram(b"x" * 28) is None
    first = FakeSession(b"A" * 8)
    sessions.start(first)
    assert sessions.all() == [first] and sessions.role(first) == CURRENT
    assert sessions.for_datagram(b"B" * 28) is first   # alone: no SPI check


def test_reauthentication_switches_and_the_old_session_retires():
    sessions = SessionSet()
    old, new = FakeSession(b"A" * 8), FakeSession(b"B" * 8)
    sessions.start(old)
    sessions.begin_reauthentication(new)
    assert sessions.all() == [old, new] and sessions.role(new) == REAUTHENTICATING
    assert sessions.for_datagram(b"B" * 28) is new and sessions.for_datagram(b"A" * 28) is old
    assert sessions.for_datagram(b"C" * 28) is old    # nobody's: the current one drops it
    assert sessions.switch() is old
    assert sessions.current is new and sessions.role(old) == RETIRING
    assert sessions.all() == [new, old]
    sessions.retired()
    assert sessions.all() == [new] and sessions.role(old) is None


def test_failed_reauthentication_keeps_the_current_session():
    sessions = SessionSet()
    current, attempt = FakeSession(b"A" * 8), FakeSession(b"B" * 8)
    sessions.start(current)
    sessions.begin_reauthentication(attempt)
    sessions.reauthentication_failed()
    assert sessions.all() == [current]


def test_a_lost_tunnel_drops_the_others_and_hands_back_the_one_to_close():
    sessions = SessionSet()
    old, new, newer = FakeSession(b"A" * 8), FakeSession(b"B" * 8), FakeSession(b"C" * 8)
    sessions.start(old)
    sessions.begin_reauthentication(new)
    sessions.switch()
    sessions.begin_reauthentication(newer)
    assert sessions.lost() is newer
    assert sessions.all() == [new]
    assert sessions.lost() is None
