"""IKEv2 message fragmentation (RFC 7383): SKF sealing sizes, and reassembly with fragments
arriving out of order, duplicated, missing, forged, or re-fragmented."""

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.constants import EncrId, ExchangeType, IdType, IntegId, PayloadType
from ike.keys import IkeSaKeys
from ike.payloads import (
    CERT,
    FLAG_INITIATOR,
    FLAG_RESPONSE,
    EncryptedFragment,
    Header,
    IDi,
    Message,
    ParseError,
    VendorId,
)
from ike.protection import FragmentReassembler, IntegrityError, SkProtector, fragment_overhead
from tests.ike.test_rfc7296_payloads import plain_payloads
from tests.ike.test_rfc7296_protection import Proposal


SUITES = {
    "aes128gcm16": (Proposal(EncrId.AES_GCM_16, 128), 20, 0),
    "chacha20poly1305": (Proposal(EncrId.CHACHA20_POLY1305, 256), 36, 0),
    "aes256-sha256": (Proposal(EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128), 32, 32),
}


def pair(suite: str):
    proposal, e_size, a_size = SUITES[suite]
    keys = IkeSaKeys(sk_d=os.urandom(32), sk_ai=os.urandom(a_size), sk_ar=os.urandom(a_size),
                     sk_ei=os.urandom(e_size), sk_er=os.urandom(e_size),
                     sk_pi=os.urandom(32), sk_pr=os.urandom(32))
    return SkProtector(proposal, keys, True), SkProtector(proposal, keys, False)


def header(message_id: int = 1, flags: int = FLAG_INITIATOR) -> Header:
    return Header(b"I" * 8, b"R" * 8, 0, ExchangeType.IKE_AUTH, flags, message_id)


# A certificate big enough to need several fragments, as strongSwan's RSA-3072 chain does.
PAYLOADS = [IDi(IdType.FQDN, b"client.example"), CERT(4, bytes(range(256)) * 7),
            VendorId(b"tail")]


def fragments_of(protector, payloads=PAYLOADS, max_datagram=576, message_id=1,
                 flags=FLAG_INITIATOR, **kwargs):
    datagrams = protector.seal_fragments(header(message_id, flags), payloads, max_datagram,
                                         **kwargs)
    return [(d, Message.decode(d)) for d in datagrams]


# ---------------------------------------------------------------- sealing


@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("max_datagram", [576, 1280])
def test_every_fragment_fits_and_is_numbered(suite, max_datagram):
    initiator, _ = pair(suite)
    fragments = fragments_of(initiator, max_datagram=max_datagram)
    limit = max_datagram - fragment_overhead()
    total = len(fragments)
    assert total >= 2
    for number, (datagram, message) in enumerate(fragments, start=1):
        assert len(datagram) <= limit
        assert message.header.next_payload == PayloadType.SKF
        assert message.header.length == len(datagram)
        assert message.header.message_id == 1
        (skf,) = message.payloads
        assert isinstance(skf, EncryptedFragment)
        assert (skf.number, skf.total) == (number, total)
        # RFC 7383 §2.5: only the first fragment names the first inner payload
        assert skf.first_payload == (PayloadType.IDi if number == 1 else PayloadType.NONE)
    # all but the last are filled: within one cipher block of the limit
    block = initiator._out.cipher.block_size
    for datagram, _ in fragments[:-1]:
        assert len(datagram) > limit - block


def test_aead_fragments_fill_the_limit_exactly():
    initiator, _ = pair("aes128gcm16")
    fragments = fragments_of(initiator, max_datagram=1280, ip_version=4, non_esp_marker=False)
    assert {len(d) for d, _ in fragments[:-1]} == {1280 - 28}


def test_overhead_follows_the_rfc():
    assert fragment_overhead(4, False) == 20 + 8
    assert fragment_overhead(4, True) == 20 + 8 + 4
    assert fragment_overhead(6, False) == 40 + 8
    assert fragment_overhead() == 40 + 8 + 4


def test_small_message_gives_one_fragment():
    initiator, responder = pair("aes128gcm16")
    fragments = fragments_of(initiator, payloads=[VendorId(b"v")])
    assert len(fragments) == 1 and fragments[0][1].payloads[0].total == 1
    assert FragmentReassembler(responder).add(*fragments[0]) == [VendorId(b"v")]


def test_empty_payload_list_gives_one_empty_fragment():
    initiator, responder = pair("aes256-sha256")
    fragments = fragments_of(initiator, payloads=[])
    assert len(fragments) == 1
    assert FragmentReassembler(responder).add(*fragments[0]) == []


def test_datagram_too_small_for_any_data():
    initiator, _ = pair("aes256-sha256")
    with pytest.raises(ValueError, match="no room"):
        initiator.seal_fragments(header(), PAYLOADS, 100)


def test_too_many_fragments():
    initiator, _ = pair("aes128gcm16")
    big = [VendorId(b"x" * 60000)] * 2
    with pytest.raises(ValueError, match="65535"):
        initiator.seal_fragments(header(), big, fragment_overhead() + 28 + 8 + 8 + 16 + 2)


# ---------------------------------------------------------------- reassembly


@pytest.mark.parametrize("suite", list(SUITES))
def test_in_order(suite):
    initiator, responder = pair(suite)
    reassembler = FragmentReassembler(responder)
    fragments = fragments_of(initiator)
    results = [reassembler.add(*f) for f in fragments]
    assert results[:-1] == [None] * (len(fragments) - 1)
    assert results[-1] == PAYLOADS
    assert reassembler.pending() == []


def test_reverse_order_takes_first_payload_from_fragment_one():
    initiator, responder = pair("aes128gcm16")
    reassembler = FragmentReassembler(responder)
    results = [reassembler.add(*f) for f in reversed(fragments_of(initiator))]
    assert results[-1] == PAYLOADS


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 5))
def test_any_order_with_duplicates(rng, duplicates):
    initiator, responder = pair("chacha20poly1305")
    fragments = fragments_of(initiator)
    arrivals = fragments + [rng.choice(fragments) for _ in range(duplicates)]
    rng.shuffle(arrivals)
    reassembler = FragmentReassembler(responder)
    completed = [r for r in (reassembler.add(*f) for f in arrivals) if r is not None]
    assert completed[0] == PAYLOADS
    # a duplicate arriving after completion starts a new set but never completes it alone
    assert len(completed) <= 1 + duplicates


def test_duplicates_do_not_complete_a_set():
    initiator, responder = pair("aes128gcm16")
    fragments = fragments_of(initiator)
    reassembler = FragmentReassembler(responder)
    for _ in range(3):
        assert reassembler.add(*fragments[0]) is None
    assert reassembler.pending() == [(1, False)]


def test_missing_fragment_keeps_the_set_pending():
    initiator, responder = pair("aes256-sha256")
    fragments = fragments_of(initiator)
    reassembler = FragmentReassembler(responder)
    for f in fragments[:1] + fragments[2:]:
        assert reassembler.add(*f) is None
    assert reassembler.pending() == [(1, False)]
    assert reassembler.add(*fragments[1]) == PAYLOADS
    assert reassembler.pending() == []


def test_discard_forgets_a_set():
    initiator, responder = pair("aes128gcm16")
    fragments = fragments_of(initiator)
    reassembler = FragmentReassembler(responder)
    reassembler.add(*fragments[0])
    reassembler.discard(1, is_response=True)  # the other direction: nothing to drop
    assert reassembler.pending() == [(1, False)]
    reassembler.discard(1)
    reassembler.discard(99)  # unknown IDs are fine
    assert reassembler.pending() == []
    for f in fragments[1:]:
        assert reassembler.add(*f) is None  # fragment 1 is gone


def test_sets_are_kept_per_message_id():
    initiator, responder = pair("aes128gcm16")
    first = fragments_of(initiator, message_id=1)
    second = fragments_of(initiator, payloads=PAYLOADS[:2], message_id=2)
    reassembler = FragmentReassembler(responder)
    interleaved = [f for pair_ in zip(first, second) for f in pair_]
    interleaved += first[len(second):] + second[len(first):]
    results = [r for r in (reassembler.add(*f) for f in interleaved) if r is not None]
    assert sorted(results, key=len) == [PAYLOADS[:2], PAYLOADS]


def test_request_and_response_with_the_same_message_id_are_kept_apart():
    """The peer's request #1 and its response to our request #1 may interleave."""
    initiator, responder = pair("aes128gcm16")
    request = fragments_of(initiator, message_id=1)
    response = fragments_of(initiator, payloads=PAYLOADS[:2], message_id=1,
                            flags=FLAG_INITIATOR | FLAG_RESPONSE)
    reassembler = FragmentReassembler(responder)
    results = [reassembler.add(*f) for pair_ in zip(request, response) for f in pair_]
    results += [reassembler.add(*f) for f in request[len(response):] + response[len(request):]]
    assert sorted((r for r in results if r is not None), key=len) == [PAYLOADS[:2], PAYLOADS]


@pytest.mark.parametrize("suite", list(SUITES))
def test_forged_fragment_is_rejected_and_the_set_survives(suite):
    initiator, responder = pair(suite)
    fragments = fragments_of(initiator)
    reassembler = FragmentReassembler(responder)
    forged = bytearray(fragments[1][0])
    forged[-1] ^= 0xFF
    with pytest.raises(IntegrityError):
        reassembler.add(bytes(forged), Message.decode(bytes(forged)))
    results = [reassembler.add(*f) for f in fragments]
    assert results[-1] == PAYLOADS


@pytest.mark.parametrize("suite", list(SUITES))
def test_fragment_number_is_authenticated(suite):
    """Swapping the Fragment Number must break authentication (RFC 7383 §2.5.3: the AAD
    or ICV covers the whole SKF header)."""
    initiator, responder = pair(suite)
    datagram = bytearray(fragments_of(initiator)[1][0])
    datagram[33] = 3  # Fragment Number low byte: 2 -> 3
    datagram = bytes(datagram)
    with pytest.raises(IntegrityError):
        FragmentReassembler(responder).add(datagram, Message.decode(datagram))


def test_refragmentation_with_more_fragments_restarts_the_set():
    """RFC 7383 §2.5.2: a sender that retransmits with a smaller fragment size sends more
    fragments; the old partial set is dropped and the new one is collected."""
    initiator, responder = pair("aes128gcm16")
    coarse = fragments_of(initiator, max_datagram=1280)
    fine = fragments_of(initiator, max_datagram=576)
    assert len(fine) > len(coarse)
    reassembler = FragmentReassembler(responder)
    assert reassembler.add(*coarse[0]) is None
    results = [reassembler.add(*f) for f in fine]
    assert results[-1] == PAYLOADS
    # a late fragment of the coarse set (fewer fragments) does not disturb a newer set
    assert reassembler.add(*fine[0]) is None
    assert reassembler.add(*coarse[1]) is None
    assert reassembler.pending() == [(1, False)]


def test_stale_fragment_with_fewer_total_is_dropped():
    initiator, responder = pair("aes256-sha256")
    coarse = fragments_of(initiator, max_datagram=1280)
    fine = fragments_of(initiator, max_datagram=576)
    reassembler = FragmentReassembler(responder)
    reassembler.add(*fine[0])
    for f in coarse:
        assert reassembler.add(*f) is None
    assert [reassembler.add(*f) for f in fine[1:]][-1] == PAYLOADS


def test_too_many_fragments_announced():
    initiator, responder = pair("aes128gcm16")
    fragments = fragments_of(initiator)
    with pytest.raises(ParseError) as err:
        FragmentReassembler(responder, max_fragments=2).add(*fragments[0])
    assert err.value.payload == PayloadType.SKF


def test_add_chain_returns_the_plaintext_chain():
    initiator, responder = pair("aes128gcm16")
    reassembler = FragmentReassembler(responder)
    results = [reassembler.add_chain(*f) for f in fragments_of(initiator)]
    first, inner = results[-1]
    assert first == PayloadType.IDi
    assert inner == Message(header(), PAYLOADS).encode()[28:]


def test_add_needs_an_skf_payload():
    initiator, responder = pair("aes128gcm16")
    datagram = initiator.seal(header(), PAYLOADS)
    with pytest.raises(ValueError, match="no SKF"):
        FragmentReassembler(responder).add(datagram, Message.decode(datagram))


def test_open_fragment_authenticates_a_single_fragment():
    """What a session uses to check fragment 1 of a retransmitted request (RFC 7383 §2.6.1)."""
    initiator, responder = pair("aes256-sha256")
    datagram, message = fragments_of(initiator)[0]
    chunk = responder.open_fragment(datagram, message.payloads[0])
    assert Message(header(), PAYLOADS).encode()[28:].startswith(chunk)


def test_unfragmented_message_equals_reassembled_one():
    initiator, responder = pair("chacha20poly1305")
    whole = initiator.seal(header(), PAYLOADS)
    reassembler = FragmentReassembler(responder)
    fragments = fragments_of(initiator)
    random.Random(7).shuffle(fragments)
    result = [r for r in (reassembler.add(*f) for f in fragments) if r is not None]
    assert result == [responder.open(whole, Message.decode(whole))]


# ---------------------------------------------------------------- properties

@settings(max_examples=60, deadline=None)
@given(st.sampled_from(list(SUITES)), st.lists(plain_payloads, max_size=5),
       st.integers(200, 1500), st.randoms(use_true_random=False))
def test_fragment_round_trip_property(suite, payloads, max_datagram, rng):
    """Any payload chain, any fragment size, any arrival order: the same payloads come out,
    and every fragment fits the datagram."""
    initiator, responder = pair(suite)
    fragments = fragments_of(initiator, payloads=payloads, max_datagram=max_datagram,
                             ip_version=4, non_esp_marker=False)
    assert all(len(d) <= max_datagram - 28 for d, _ in fragments)
    rng.shuffle(fragments)
    reassembler = FragmentReassembler(responder)
    results = [reassembler.add(*f) for f in fragments]
    assert results[-1] == payloads and results[:-1] == [None] * (len(fragments) - 1)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(list(SUITES)), st.lists(plain_payloads, max_size=5))
def test_sk_round_trip_property(suite, payloads):
    initiator, responder = pair(suite)
    datagram = initiator.seal(header(), payloads)
    assert responder.open(datagram, Message.decode(datagram)) == payloads
