"""IKE SK payloads (RFC 7296 §3.14) with the legacy suites a profile can name: 3DES-CBC,
AES-CTR (RFC 5930: counter IVs, no padding beyond the Pad Length octet), with HMAC-SHA1-96,
HMAC-MD5-96 or AES-XCBC-MAC-96, keyed from ike/keys.py with the legacy PRFs."""

import os

import pytest

from ike.constants import ExchangeType, IdType, NotifyType
from ike.keys import derive_ike_sa_keys
from ike.payloads import AUTH, FLAG_INITIATOR, IDi, Header, Message, Notify
from ike.proposals import parse_ike_proposals
from ike.protection import SkProtector

HEADER = Header(spi_i=b"I" * 8, spi_r=b"R" * 8, next_payload=0, exchange=ExchangeType.IKE_AUTH,
                flags=FLAG_INITIATOR, message_id=1)
PAYLOADS = [IDi(IdType.FQDN, b"client.example"), AUTH(2, b"a" * 32),
            Notify(NotifyType.INITIAL_CONTACT)]


def protectors(text):
    (proposal,) = parse_ike_proposals(text)
    keys = derive_ike_sa_keys(proposal, os.urandom(256), os.urandom(32), os.urandom(32),
                              HEADER.spi_i, HEADER.spi_r)
    return SkProtector(proposal, keys, True), SkProtector(proposal, keys, False)


@pytest.mark.parametrize("text", ["aes128ctr-aesxcbc-modp2048", "aes256ctr-sha1-x25519",
                                  "3des-sha1-modp2048", "3des-md5-x25519",
                                  "aes128-aesxcbc-prfsha256-x25519"])
def test_round_trip_both_ways(text):
    initiator, responder = protectors(text)
    for sender, receiver in ((initiator, responder), (responder, initiator)):
        datagram = sender.seal(HEADER, PAYLOADS)
        assert receiver.open(datagram, Message.decode(datagram)) == PAYLOADS


def test_aes_ctr_ivs_are_counters_and_nothing_is_padded():
    initiator, _ = protectors("aes128ctr-aesxcbc-modp2048")
    first, second = (initiator.seal(HEADER, PAYLOADS) for _ in range(2))
    iv_at = 28 + 4  # IKE header, SK payload header
    assert first[iv_at:iv_at + 8] == (1).to_bytes(8, "big")
    assert second[iv_at:iv_at + 8] == (2).to_bytes(8, "big")
    # IV + inner payloads + Pad Length (0) + 12-byte ICV: block size 1 needs no padding.
    inner = len(Message(HEADER, PAYLOADS).encode()) - 28
    assert len(first) == 28 + 4 + 8 + inner + 1 + 12
