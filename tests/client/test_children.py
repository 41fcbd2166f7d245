"""The CHILD_SA registry (client/children.py) on a fake clock: rekey detection by child_id,
the successor that takes over outbound traffic, and removal after the grace period."""

from __future__ import annotations

import ipaddress

import pytest

from client.children import REKEYED_SA_GRACE, ChildEntry, ChildRegistry


class FakeClock:
    """call_later/cancel like asyncio's loop, time advanced by hand."""

    def __init__(self):
        self.now = 0.0
        self._pending: list = []

    def call_later(self, delay, callback, *args):
        handle = _Handle(self.now + delay, callback, args)
        self._pending.append(handle)
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted((h for h in self._pending if h.when <= self.now and not h.cancelled),
                     key=lambda h: h.when)
        self._pending = [h for h in self._pending if h not in due and not h.cancelled]
        for handle in due:
            handle.callback(*handle.args)


class _Handle:
    def __init__(self, when, callback, args):
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self):
        self.cancelled = True


def entry(child_id: int, spi_in: bytes) -> ChildEntry:
    net = ipaddress.ip_network("10.1.0.0/16")
    return ChildEntry(child_id=child_id, spi_in=spi_in, spi_out=spi_in[::-1], encryption="AES_GCM_16-128",
                      integrity="", esn=False, local_ts=(net,), remote_ts=(net,), rekey_at=0.0,
                      installed_at=0.0)


@pytest.fixture
def world():
    clock = FakeClock()
    removed: list = []
    return clock, removed, ChildRegistry(clock, removed.append)


def test_a_new_child_id_is_no_rekey_and_the_same_one_is(world):
    _, _, registry = world
    assert not registry.is_rekey(1)
    registry.add(entry(1, b"\x00\x00\x00\x01"))
    assert registry.is_rekey(1) and not registry.is_rekey(2)


def test_rekeyed_sa_hands_over_and_leaves_after_the_grace_period(world):
    clock, removed, registry = world
    old, new = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"
    registry.add(entry(1, old))
    registry.add(entry(1, new))                     # the rekey's ChildSaEstablished
    assert registry.deleted(1, old) == new          # outbound moves to the successor
    assert not registry.is_current(old) and registry.is_current(new)
    assert registry.leaving() == [old] and removed == []
    clock.advance(REKEYED_SA_GRACE - 0.1)
    assert removed == []                            # still decrypting late packets
    clock.advance(0.2)
    assert removed == [old] and registry.leaving() == []
    assert [e.spi_in for e in registry.entries()] == [new]


def test_a_deleted_sa_without_successor_leaves_at_once(world):
    _, removed, registry = world
    registry.add(entry(1, b"\x00\x00\x00\x01"))
    assert registry.deleted(1, b"\x00\x00\x00\x01") is None
    assert removed == [b"\x00\x00\x00\x01"] and registry.entries() == []


def test_reauthentication_retires_every_sa_with_grace(world):
    clock, removed, registry = world
    registry.add(entry(1, b"\x00\x00\x00\x01"))
    registry.add(entry(2, b"\x00\x00\x00\x02"))
    registry.retire_all()
    assert registry.entries() == [] and not registry.is_rekey(1)  # the new IKE_SA's child 1 is new
    assert removed == []
    clock.advance(REKEYED_SA_GRACE)
    assert sorted(removed) == [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"]


def test_lost_tunnel_removes_at_once_and_close_cancels_pending_removals(world):
    clock, removed, registry = world
    registry.add(entry(1, b"\x00\x00\x00\x01"))
    registry.add(entry(1, b"\x00\x00\x00\x02"))
    registry.deleted(1, b"\x00\x00\x00\x01")        # in its grace period
    registry.remove_all()
    assert removed == [b"\x00\x00\x00\x02"]
    registry.close()
    clock.advance(REKEYED_SA_GRACE * 2)
    assert removed == [b"\x00\x00\x00\x02"]         # the data plane's close removes the rest


def test_status_entry_shows_spis_in_hex_and_networks_as_text():
    shown = entry(3, b"\xc0\x01\x02\x03").describe()
    assert shown["spi_in"] == "c0010203" and shown["spi_out"] == "030201c0"
    assert shown["child_id"] == 3 and shown["remote_ts"] == ["10.1.0.0/16"]
