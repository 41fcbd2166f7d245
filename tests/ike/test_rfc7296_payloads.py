"""IKEv2 wire format (RFC 7296 §3): byte vectors, parse errors and encode/decode inverses."""

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ike.constants import (
    AuthMethod,
    CertEncoding,
    CfgType,
    ConfigAttr,
    EncrId,
    ExchangeType,
    IdType,
    IntegId,
    KeId,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
    TsType,
)
from ike.payloads import (
    AUTH,
    CERT,
    CERTREQ,
    CP,
    EAP,
    FLAG_INITIATOR,
    FLAG_RESPONSE,
    IDi,
    IDr,
    KE,
    SA,
    ConfigAttribute,
    Delete,
    Encrypted,
    EncryptedFragment,
    Header,
    Message,
    Nonce,
    Notify,
    ParseError,
    Proposal,
    TrafficSelector,
    Transform,
    TSi,
    TSr,
    UnknownTrafficSelector,
    VendorId,
    decode_payloads,
    encode_payloads,
)

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("1112131415161718")


def header(**changes):
    fields = dict(spi_i=SPI_I, spi_r=SPI_R, next_payload=0, exchange=ExchangeType.IKE_AUTH,
                  flags=FLAG_INITIATOR, message_id=1)
    fields.update(changes)
    return Header(**fields)


def one_payload_message(payload_type: int, body: bytes, flags: int = 0) -> bytes:
    """A datagram with a single raw payload, lengths filled in."""
    generic = struct.pack("!BBH", 0, flags, 4 + len(body))
    h = header(next_payload=payload_type, length=28 + 4 + len(body))
    return h.encode() + generic + body


def roundtrip_payload(payload):
    first, data = encode_payloads([payload])
    assert first == payload.TYPE
    assert decode_payloads(first, data) == [payload]
    return data


# ----------------------------------------------------------------------------- header §3.1


class TestHeader:
    def test_layout(self):
        h = header(next_payload=PayloadType.SK, flags=FLAG_INITIATOR | FLAG_RESPONSE,
                   message_id=0x01020304, length=0x1000)
        assert h.encode() == (SPI_I + SPI_R + bytes([46, 0x20, 35, 0x28])
                              + bytes.fromhex("01020304") + bytes.fromhex("00001000"))

    def test_decode_converts_known_numbers_to_enums(self):
        h = Header.decode(header(next_payload=33, exchange=34).encode())
        assert h.next_payload is PayloadType.SA
        assert h.exchange is ExchangeType.IKE_SA_INIT

    def test_unknown_exchange_kept_as_int(self):
        assert Header.decode(header(exchange=200).encode()).exchange == 200

    def test_flags(self):
        h = header(flags=FLAG_INITIATOR)
        assert h.from_initiator and not h.is_response
        h = header(flags=FLAG_RESPONSE)
        assert h.is_response and not h.from_initiator

    def test_higher_minor_version_is_accepted(self):
        data = bytearray(header().encode())
        data[17] = 0x21  # RFC 7296 §2.5: minor version is ignored
        assert Header.decode(bytes(data)).exchange == ExchangeType.IKE_AUTH

    def test_wrong_major_version(self):
        data = bytearray(header().encode())
        data[17] = 0x10
        with pytest.raises(ParseError) as err:
            Header.decode(bytes(data))
        assert err.value.notify == NotifyType.INVALID_MAJOR_VERSION
        assert err.value.offset == 17
        assert err.value.payload is None

    def test_short_header(self):
        with pytest.raises(ParseError) as err:
            Header.decode(b"\x00" * 27)
        assert err.value.notify == NotifyType.INVALID_SYNTAX
        assert "28-byte IKE header" in str(err.value)

    def test_spi_length_checked_on_encode(self):
        with pytest.raises(ValueError):
            header(spi_i=b"short").encode()


# ----------------------------------------------------------------------------- byte vectors §3


class TestByteVectors:
    def test_sa_with_key_length(self):
        sa = SA([Proposal(1, ProtocolId.IKE, b"", [
            Transform(TransformType.ENCR, EncrId.AES_CBC, 256),
            Transform(TransformType.INTEG, IntegId.HMAC_SHA2_256_128),
        ])])
        body = roundtrip_payload(sa)[4:]
        assert body == bytes.fromhex(
            # proposal: last, rsvd, length 28, #1, IKE, spi size 0, 2 transforms
            "0000001c" "01010002"
            # transform: more(3), rsvd, len 12, ENCR, rsvd, AES_CBC, attr TV 14 = 256
            "0300000c" "0100000c" "800e0100"
            # transform: last(0), rsvd, len 8, INTEG, rsvd, 12
            "00000008" "0300000c"
        )

    def test_sa_two_proposals_with_esp_spi(self):
        sa = SA([
            Proposal(1, ProtocolId.ESP, b"\xaa\xbb\xcc\xdd", [Transform(TransformType.ESN, 0)]),
            Proposal(2, ProtocolId.ESP, b"\xaa\xbb\xcc\xdd", []),
        ])
        body = roundtrip_payload(sa)[4:]
        assert body == bytes.fromhex(
            "02000014" "01030401" "aabbccdd" "00000008" "05000000"
            "0000000c" "02030400" "aabbccdd"
        )

    def test_transform_ids_become_enums(self):
        sa = SA([Proposal(1, 1, b"", [Transform(1, 20, 128), Transform(2, 5), Transform(4, 31),
                                      Transform(6, 36), Transform(3, 12), Transform(5, 0)])])
        (decoded,) = decode_payloads(*encode_payloads([sa]))
        ids = [t.id for t in decoded.proposals[0].transforms]
        assert ids == [EncrId.AES_GCM_16, PrfId.HMAC_SHA2_256, KeId.CURVE25519, KeId.MLKEM768,
                       IntegId.HMAC_SHA2_256_128, 0]
        assert type(ids[0]) is EncrId and type(ids[3]) is KeId
        assert decoded.proposals[0].transforms[3].type is TransformType.ADDKE1

    def test_unknown_transform_attribute_kept_verbatim(self):
        extra = bytes.fromhex("0011 0002 abcd".replace(" ", ""))  # TLV attribute type 17
        t = Transform(TransformType.ENCR, EncrId.AES_CBC, 128, extra)
        sa = SA([Proposal(1, ProtocolId.IKE, b"", [t])])
        (decoded,) = decode_payloads(*encode_payloads([sa]))
        assert decoded.proposals[0].transforms[0] == t

    def test_ke(self):
        body = roundtrip_payload(KE(KeId.ECP_256, b"\x01" * 64))[4:]
        assert body == b"\x00\x13\x00\x00" + b"\x01" * 64

    @pytest.mark.parametrize("cls", [IDi, IDr])
    def test_identification(self, cls):
        data = roundtrip_payload(cls(IdType.FQDN, b"vpn.example"))
        assert data[4:] == b"\x02\x00\x00\x00vpn.example"

    def test_cert_and_certreq(self):
        assert roundtrip_payload(CERT(CertEncoding.X509_SIGNATURE, b"DER"))[4:] == b"\x04DER"
        assert roundtrip_payload(CERTREQ(CertEncoding.X509_SIGNATURE, b"\x01" * 20))[4:] == (
            b"\x04" + b"\x01" * 20)

    def test_auth(self):
        body = roundtrip_payload(AUTH(AuthMethod.DIGITAL_SIGNATURE, b"sig"))[4:]
        assert body == b"\x0e\x00\x00\x00sig"

    def test_nonce(self):
        assert roundtrip_payload(Nonce(b"n" * 32)) == b"\x00\x00\x00\x24" + b"n" * 32

    def test_notify_with_spi(self):
        n = Notify(NotifyType.REKEY_SA, ProtocolId.ESP, b"\x01\x02\x03\x04")
        assert roundtrip_payload(n)[4:] == bytes.fromhex("03044009" "01020304")

    def test_notify_without_spi(self):
        n = Notify(NotifyType.COOKIE, data=b"cookie")
        assert roundtrip_payload(n)[4:] == bytes.fromhex("00004006") + b"cookie"

    def test_unknown_notify_type_kept_as_int(self):
        (n,) = decode_payloads(*encode_payloads([Notify(40000)]))
        assert n.type == 40000 and type(n.type) is int

    def test_delete(self):
        d = Delete(ProtocolId.ESP, [b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"])
        assert roundtrip_payload(d)[4:] == bytes.fromhex("03040002" "00000001" "00000002")
        assert roundtrip_payload(Delete(ProtocolId.IKE, []))[4:] == bytes.fromhex("01000000")

    def test_delete_spis_must_share_a_size(self):
        with pytest.raises(ValueError):
            encode_payloads([Delete(ProtocolId.ESP, [b"\x01" * 4, b"\x01" * 8])])

    def test_vendor_id(self):
        assert roundtrip_payload(VendorId(b"strongSwan"))[4:] == b"strongSwan"

    def test_traffic_selectors(self):
        ts = TSi([TrafficSelector.from_network(ipaddress.ip_network("10.1.0.0/16"), 17, (500, 500))])
        assert roundtrip_payload(ts)[4:] == bytes.fromhex(
            "01000000" "07110010" "01f401f4" "0a010000" "0a01ffff")
        ts6 = TSr([TrafficSelector.from_network(ipaddress.ip_network("::/0"))])
        assert roundtrip_payload(ts6)[4:] == (bytes.fromhex("01000000" "08000028" "0000ffff")
                                              + bytes(16) + b"\xff" * 16)

    def test_unknown_traffic_selector_type_kept(self):
        raw = bytes.fromhex("0a000008" "deadbeef")  # TS_SECLABEL, 4 bytes of label
        ts = TSi([UnknownTrafficSelector(raw)])
        (decoded,) = decode_payloads(*encode_payloads([ts]))
        assert decoded == ts and decoded.selectors[0].ts_type == TsType.SECLABEL

    def test_cp(self):
        cp = CP(CfgType.REQUEST, [ConfigAttribute(ConfigAttr.INTERNAL_IP4_ADDRESS),
                                  ConfigAttribute(ConfigAttr.INTERNAL_DNS_DOMAIN, b"corp")])
        assert roundtrip_payload(cp)[4:] == bytes.fromhex("01000000" "00010000" "00190004") + b"corp"

    def test_cp_reserved_bit_ignored(self):
        body = bytes.fromhex("02000000" "80010004" "0a000001")
        (cp,) = decode_payloads(PayloadType.CP, struct.pack("!BBH", 0, 0, 4 + len(body)) + body)
        assert cp == CP(CfgType.REPLY, [ConfigAttribute(ConfigAttr.INTERNAL_IP4_ADDRESS, b"\x0a\0\0\x01")])

    def test_config_attribute_type_must_fit_15_bits(self):
        with pytest.raises(ValueError):
            encode_payloads([CP(CfgType.REQUEST, [ConfigAttribute(0x8000)])])

    def test_eap(self):
        packet = bytes.fromhex("0201000a01") + b"alice"
        assert roundtrip_payload(EAP(packet))[4:] == packet

    def test_encrypted_next_payload_is_first_inner(self):
        first, data = encode_payloads([Encrypted(PayloadType.IDi, b"\x00" * 20)])
        assert first == PayloadType.SK
        assert data[:4] == bytes([35, 0, 0, 24])

    def test_encrypted_fragment(self):
        frag = EncryptedFragment(PayloadType.NONE, 2, 3, b"xyz")
        first, data = encode_payloads([frag])
        assert (first, data) == (PayloadType.SKF, bytes([0, 0, 0, 11]) + bytes.fromhex("00020003") + b"xyz")
        assert Message.decode(Message(header(), [frag]).encode()).payloads == [frag]

    def test_critical_bit_on_known_payload(self):
        data = roundtrip_payload(VendorId(b"v", critical=True))
        assert data[1] == 0x80

    def test_reserved_generic_bits_ignored(self):
        (v,) = decode_payloads(PayloadType.VENDOR, bytes([0, 0x7F, 0, 5]) + b"v")
        assert v == VendorId(b"v")


class TestTrafficSelector:
    def test_from_network_and_back(self):
        net = ipaddress.ip_network("192.0.2.0/24")
        ts = TrafficSelector.from_network(net)
        assert ts.ts_type == TsType.IPV4_ADDR_RANGE
        assert (ts.start_port, ts.end_port, ts.ip_protocol) == (0, 65535, 0)
        assert ts.to_network_range() == (net,)

    def test_range_that_is_not_one_prefix(self):
        ts = TrafficSelector(TsType.IPV4_ADDR_RANGE, 0, 0, 65535,
                             ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2"))
        assert ts.to_network_range() == (ipaddress.ip_network("10.0.0.1/32"),
                                         ipaddress.ip_network("10.0.0.2/32"))

    def test_inverted_range_is_refused(self):
        ts = TrafficSelector(TsType.IPV4_ADDR_RANGE, 0, 0, 65535,
                             ipaddress.ip_address("10.0.0.2"), ipaddress.ip_address("10.0.0.1"))
        with pytest.raises(ValueError, match="empty"):
            ts.to_network_range()

    def test_address_family_must_match_type(self):
        ts = TrafficSelector(TsType.IPV6_ADDR_RANGE, 0, 0, 65535,
                             ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2"))
        with pytest.raises(ValueError):
            ts.encode()

    def test_from_network_accepts_text(self):
        assert TrafficSelector.from_network("2001:db8::/64").ts_type == TsType.IPV6_ADDR_RANGE


# ----------------------------------------------------------------------------- messages


def sample_message() -> Message:
    return Message(header(exchange=ExchangeType.IKE_SA_INIT, message_id=0, spi_r=bytes(8)), [
        SA([Proposal(1, ProtocolId.IKE, b"", [
            Transform(TransformType.ENCR, EncrId.AES_GCM_16, 256),
            Transform(TransformType.PRF, PrfId.HMAC_SHA2_256),
            Transform(TransformType.KE, KeId.CURVE25519),
        ])]),
        KE(KeId.CURVE25519, b"k" * 32),
        Nonce(b"n" * 32),
        Notify(NotifyType.NAT_DETECTION_SOURCE_IP, data=b"s" * 20),
        Notify(NotifyType.NAT_DETECTION_DESTINATION_IP, data=b"d" * 20),
        Notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED),
    ])


class TestMessage:
    def test_encode_fills_header(self):
        m = sample_message()
        data = m.encode()
        decoded = Message.decode(data)
        assert decoded.header.length == len(data)
        assert decoded.header.next_payload == PayloadType.SA
        assert decoded.payloads == m.payloads
        assert m.header.length == 0  # encode() does not modify the message

    def test_helpers(self):
        m = sample_message()
        assert m.get(KE).group == KeId.CURVE25519
        assert m.get(AUTH) is None
        assert len(m.all(Notify)) == 3
        assert m.notifies(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) == [
            Notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)]
        assert m.notifies(NotifyType.COOKIE) == []

    def test_empty_message(self):
        data = Message(header()).encode()
        assert len(data) == 28 and data[16] == 0
        assert Message.decode(data).payloads == []

    def test_sk_must_be_last_when_encoding(self):
        with pytest.raises(ValueError, match="last"):
            encode_payloads([Encrypted(PayloadType.IDi, b""), Nonce(b"n" * 16)])

    def test_encrypted_message(self):
        m = Message(header(), [Notify(NotifyType.COOKIE, data=b"c"),
                               Encrypted(PayloadType.IDi, b"\x01" * 40)])
        decoded = Message.decode(m.encode())
        assert decoded.payloads == m.payloads
        assert decoded.payloads[-1].first_payload is PayloadType.IDi

    def test_payload_too_long_to_encode(self):
        with pytest.raises(ValueError, match="65535"):
            encode_payloads([VendorId(b"x" * 65532)])

    def test_nonce_size_checked_on_encode(self):
        with pytest.raises(ValueError):
            encode_payloads([Nonce(b"short")])

    def test_sa_needs_a_proposal(self):
        with pytest.raises(ValueError):
            encode_payloads([SA([])])

    def test_error_message_names_payload_and_byte(self):
        with pytest.raises(ParseError) as err:
            Message.decode(one_payload_message(PayloadType.NONCE, b"short"))
        assert str(err.value).startswith("NONCE payload at byte 32:")


# ----------------------------------------------------------------------------- parse errors


def parse_error(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as err:
        Message.decode(data)
    return err.value


class TestParseErrors:
    def test_header_length_differs_from_datagram(self):
        data = sample_message().encode()
        err = parse_error(data + b"\x00")
        assert (err.notify, err.offset, err.payload) == (NotifyType.INVALID_SYNTAX, 24, None)

    def test_trailing_garbage_after_last_payload(self):
        data = bytearray(sample_message().encode() + b"junk")
        data[24:28] = struct.pack("!I", len(data))
        err = parse_error(bytes(data))
        assert err.offset == len(data) - 4 and "trailing" in err.reason

    def test_truncated_generic_header(self):
        h = header(next_payload=PayloadType.NONCE, length=30)
        err = parse_error(h.encode() + b"\x00\x00")
        assert (err.payload, err.offset) == (PayloadType.NONCE, 28)

    def test_payload_length_below_four(self):
        h = header(next_payload=PayloadType.VENDOR, length=32)
        err = parse_error(h.encode() + bytes([0, 0, 0, 3]))
        assert (err.payload, err.offset, err.notify) == (PayloadType.VENDOR, 30, NotifyType.INVALID_SYNTAX)

    def test_payload_overruns_message(self):
        h = header(next_payload=PayloadType.VENDOR, length=34)
        err = parse_error(h.encode() + bytes([0, 0, 0, 9]) + b"ab")
        assert (err.payload, err.offset) == (PayloadType.VENDOR, 30)
        assert "overruns" in err.reason

    def test_second_payload_overrun_points_at_its_length(self):
        data = Message(header(), [VendorId(b"abc"), VendorId(b"def")]).encode()
        data = data[:35 + 2] + b"\x00\x20" + data[35 + 4:]
        err = parse_error(data)
        assert err.offset == 37

    def test_unknown_critical_payload(self):
        data = one_payload_message(99, b"zz", flags=0x80)
        err = parse_error(data)
        assert err.notify == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD
        assert err.notify_data == bytes([99])
        assert (err.payload, err.offset) == (99, 28)
        assert "payload type 99" in str(err)

    def test_unknown_noncritical_payload_is_skipped(self):
        unknown = struct.pack("!BBH", PayloadType.NONCE, 0, 6) + b"zz"
        nonce = struct.pack("!BBH", 0, 0, 20) + b"n" * 16
        body = unknown + nonce
        data = header(next_payload=99, length=28 + len(body)).encode() + body
        assert Message.decode(data).payloads == [Nonce(b"n" * 16)]

    def test_sk_must_be_last(self):
        sk = struct.pack("!BBH", PayloadType.IDi, 0, 8) + b"abcd"
        body = sk + b"\x00" * 4
        data = header(next_payload=PayloadType.SK, length=28 + len(body)).encode() + body
        err = parse_error(data)
        assert (err.payload, err.offset) == (PayloadType.SK, 36)

    def test_skf_must_be_last(self):
        skf = struct.pack("!BBHHH", 0, 0, 10, 1, 2) + b"ab"
        body = skf + b"\x00"
        data = header(next_payload=PayloadType.SKF, length=28 + len(body)).encode() + body
        assert parse_error(data).payload == PayloadType.SKF

    def test_sk_inside_decrypted_chain(self):
        with pytest.raises(ParseError, match="inside an encrypted"):
            decode_payloads(PayloadType.SK, struct.pack("!BBH", 0, 0, 4))

    def test_decode_payloads_base_offset(self):
        with pytest.raises(ParseError) as err:
            decode_payloads(PayloadType.NONCE, struct.pack("!BBH", 0, 0, 3), base_offset=100)
        assert err.value.offset == 102

    def test_skf_fragment_number_zero(self):
        err = parse_error(one_payload_message(PayloadType.SKF, struct.pack("!HH", 0, 2)))
        assert (err.payload, err.offset) == (PayloadType.SKF, 32)

    def test_skf_number_above_total(self):
        err = parse_error(one_payload_message(PayloadType.SKF, struct.pack("!HH", 3, 2)))
        assert "outside 1..2" in err.reason

    @pytest.mark.parametrize("payload_type, body, offset, words", [
        (PayloadType.KE, b"\x00\x13\x00", 32, "group header"),
        (PayloadType.IDi, b"\x02\x00", 32, "4-byte header"),
        (PayloadType.AUTH, b"", 32, "4-byte header"),
        (PayloadType.CERT, b"", 32, "1-byte header"),
        (PayloadType.NONCE, b"x" * 15, 32, "outside 16..256"),
        (PayloadType.NONCE, b"x" * 257, 32, "outside 16..256"),
        (PayloadType.NOTIFY, b"\x00\x00\x40", 32, "4-byte header"),
        (PayloadType.NOTIFY, b"\x03\x04\x40\x09\x01\x02", 33, "SPI size 4 overruns"),
        (PayloadType.DELETE, b"\x03\x04\x00", 32, "4-byte header"),
        (PayloadType.DELETE, b"\x03\x04\x00\x02\x00\x00\x00\x01", 34, "do not fill"),
        (PayloadType.DELETE, b"\x03\x00\x00\x02", 33, "SPI size 0"),
        (PayloadType.TSi, b"\x01\x00", 32, "4-byte header"),
        (PayloadType.TSi, b"\x02\x00\x00\x00" + bytes.fromhex("07000010 0000ffff 0a000000 0affffff"),
         32, "announces 2 selectors"),
        (PayloadType.TSi, b"\x01\x00\x00\x00\x07\x00", 36, "truncated traffic selector"),
        (PayloadType.TSi, b"\x01\x00\x00\x00" + bytes.fromhex("07000003"), 38, "shorter than 4"),
        (PayloadType.TSi, b"\x01\x00\x00\x00" + bytes.fromhex("07000020 0000ffff"), 38, "overruns"),
        (PayloadType.TSr, b"\x01\x00\x00\x00" + bytes.fromhex("07000008 0000ffff"), 38, "wrong for TS type 7"),
        (PayloadType.CP, b"\x01\x00", 32, "4-byte header"),
        (PayloadType.CP, b"\x01\x00\x00\x00\x00\x01", 36, "truncated configuration attribute"),
        (PayloadType.CP, b"\x01\x00\x00\x00\x00\x01\x00\x04\x0a", 38, "overruns"),
        (PayloadType.EAP, b"\x01\x01\x00", 32, "4-byte header"),
        (PayloadType.EAP, b"\x01\x01\x00\x09\x01", 34, "EAP length 9"),
        (PayloadType.SKF, b"\x00\x01", 32, "fragment header"),
    ])
    def test_body_errors(self, payload_type, body, offset, words):
        err = parse_error(one_payload_message(payload_type, body))
        assert err.payload == payload_type
        assert err.offset == offset
        assert err.notify == NotifyType.INVALID_SYNTAX
        assert words in err.reason


class TestSaParseErrors:
    """Offsets are relative to the datagram; the SA body starts at byte 32."""

    @staticmethod
    def sa_error(body: bytes) -> ParseError:
        return parse_error(one_payload_message(PayloadType.SA, body))

    def test_empty_sa(self):
        err = self.sa_error(b"")
        assert (err.payload, err.offset) == (PayloadType.SA, 32)

    def test_truncated_proposal(self):
        assert self.sa_error(bytes.fromhex("000000")).reason == "truncated proposal substructure"

    def test_bad_proposal_marker(self):
        err = self.sa_error(bytes.fromhex("01000008 01010000"))
        assert err.offset == 32 and "not 0 or 2" in err.reason

    def test_proposal_too_short_for_spi(self):
        err = self.sa_error(bytes.fromhex("00000008 01030400"))
        assert err.offset == 34 and "4-byte SPI" in err.reason

    def test_proposal_overruns_sa(self):
        err = self.sa_error(bytes.fromhex("00000010 01010000"))
        assert err.offset == 34 and "overruns" in err.reason

    def test_data_after_last_proposal(self):
        err = self.sa_error(bytes.fromhex("00000008 01010000" "00000008 02010000"))
        assert err.offset == 40 and "after the proposal marked last" in err.reason

    def test_no_proposal_marked_last(self):
        err = self.sa_error(bytes.fromhex("02000008 01010000"))
        assert "marked last" in err.reason

    def test_transform_count_mismatch(self):
        err = self.sa_error(bytes.fromhex("00000010 01010002" "00000008 0100000c"))
        assert err.offset == 39 and "announces 2 transforms" in err.reason

    def test_truncated_transform(self):
        err = self.sa_error(bytes.fromhex("0000000c 01010001" "00000004"))
        assert err.offset == 40 and "truncated transform" in err.reason

    def test_bad_transform_marker(self):
        err = self.sa_error(bytes.fromhex("00000010 01010001" "02000008 0100000c"))
        assert err.offset == 40 and "not 0 or 3" in err.reason

    def test_transform_length_below_header(self):
        err = self.sa_error(bytes.fromhex("00000010 01010001" "00000004 0100000c"))
        assert err.offset == 42

    def test_transform_overruns_proposal(self):
        err = self.sa_error(bytes.fromhex("00000010 01010001" "0000000c 0100000c"))
        assert err.offset == 42 and "overruns its proposal" in err.reason

    def test_data_after_last_transform(self):
        err = self.sa_error(bytes.fromhex("00000018 01010002" "00000008 0100000c" "00000008 0200000c"))
        assert err.offset == 48 and "after the transform marked last" in err.reason

    def test_last_transform_not_marked(self):
        err = self.sa_error(bytes.fromhex("00000010 01010001" "03000008 0100000c"))
        assert "not marked last" in err.reason

    def test_truncated_attribute(self):
        err = self.sa_error(bytes.fromhex("00000012 01010001" "0000000a 0100000c 800e"))
        assert err.offset == 48 and "truncated transform attribute" in err.reason

    def test_tlv_attribute_overruns(self):
        err = self.sa_error(bytes.fromhex("00000014 01010001" "0000000c 0100000c 00110009"))
        assert err.offset == 50

    def test_key_length_in_tlv_format(self):
        err = self.sa_error(bytes.fromhex("00000016 01010001" "0000000e 0100000c 000e0002 0100"))
        assert err.offset == 48 and "TV format" in err.reason

    def test_duplicate_key_length(self):
        err = self.sa_error(bytes.fromhex("00000018 01010001" "00000010 0100000c 800e0080 800e0100"))
        assert err.offset == 52 and "duplicate" in err.reason


# ----------------------------------------------------------------------------- properties

addresses4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
addresses6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
small_bytes = st.binary(max_size=40)
ports = st.integers(0, 65535)
u8 = st.integers(0, 255)
u16 = st.integers(0, 65535)


@st.composite
def traffic_selectors(draw):
    if draw(st.booleans()):
        ts_type, addrs = TsType.IPV4_ADDR_RANGE, addresses4
    else:
        ts_type, addrs = TsType.IPV6_ADDR_RANGE, addresses6
    return TrafficSelector(ts_type, draw(u8), draw(ports), draw(ports), draw(addrs), draw(addrs))


unknown_selectors = st.tuples(st.integers(9, 255), u8, st.binary(max_size=12)).map(
    lambda t: UnknownTrafficSelector(bytes([t[0], t[1]]) + struct.pack("!H", 4 + len(t[2])) + t[2]))

tv_attribute = st.tuples(st.integers(0, 0x7FFF).filter(lambda t: t != 14), u16).map(
    lambda t: struct.pack("!HH", 0x8000 | t[0], t[1]))
tlv_attribute = st.tuples(st.integers(0, 0x7FFF).filter(lambda t: t != 14), st.binary(max_size=8)).map(
    lambda t: struct.pack("!HH", t[0], len(t[1])) + t[1])

transforms = st.builds(
    Transform, type=u8, id=u16, key_length=st.none() | u16,
    extra_attributes=st.lists(tv_attribute | tlv_attribute, max_size=2).map(b"".join),
)
proposals = st.builds(Proposal, number=u8, protocol=u8, spi=st.binary(max_size=8),
                      transforms=st.lists(transforms, max_size=5))
critical = st.booleans()

plain_payloads = st.one_of(
    st.builds(SA, st.lists(proposals, min_size=1, max_size=3), critical),
    st.builds(KE, u16, small_bytes, critical),
    st.builds(IDi, u8, small_bytes, critical),
    st.builds(IDr, u8, small_bytes, critical),
    st.builds(CERT, u8, small_bytes, critical),
    st.builds(CERTREQ, u8, small_bytes, critical),
    st.builds(AUTH, u8, small_bytes, critical),
    st.builds(Nonce, st.binary(min_size=16, max_size=256), critical),
    st.builds(Notify, u16, u8, st.binary(max_size=8), small_bytes, critical),
    st.integers(0, 8).flatmap(lambda size: st.builds(
        Delete, u8, st.lists(st.binary(min_size=size, max_size=size), max_size=0 if size == 0 else 4),
        critical)),
    st.builds(VendorId, small_bytes, critical),
    st.builds(TSi, st.lists(traffic_selectors() | unknown_selectors, max_size=4), critical),
    st.builds(TSr, st.lists(traffic_selectors(), max_size=4), critical),
    st.builds(CP, u8, st.lists(st.builds(ConfigAttribute, st.integers(0, 0x7FFF), small_bytes),
                               max_size=4), critical),
    st.binary(max_size=20).flatmap(lambda rest: st.builds(
        EAP, st.tuples(u8, u8).map(lambda c: bytes(c) + struct.pack("!H", 4 + len(rest)) + rest),
        critical)),
)

encrypted_payloads = st.one_of(
    st.builds(Encrypted, u8, small_bytes, critical),
    st.integers(1, 20).flatmap(lambda total: st.builds(
        EncryptedFragment, u8, st.integers(1, total), st.just(total), small_bytes, critical)),
)

headers = st.builds(Header, st.binary(min_size=8, max_size=8), st.binary(min_size=8, max_size=8),
                    st.just(0), u8, u8, st.integers(0, 2**32 - 1))


@settings(max_examples=300)
@given(plain_payloads)
def test_every_payload_roundtrips(payload):
    first, data = encode_payloads([payload])
    assert decode_payloads(first, data) == [payload]
    assert decode_payloads(*encode_payloads(decode_payloads(first, data))) == [payload]


@settings(max_examples=200)
@given(headers, st.lists(plain_payloads, max_size=6), st.none() | encrypted_payloads)
def test_messages_roundtrip(header_, payloads, encrypted):
    if encrypted is not None:
        payloads = payloads + [encrypted]
    data = Message(header_, payloads).encode()
    decoded = Message.decode(data)
    assert decoded.payloads == payloads
    assert decoded.header.length == len(data)
    assert decoded.encode() == data


@settings(max_examples=500)
@given(st.sampled_from(list(PayloadType)) | u8, st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_parse_error(first, junk):
    """Fuzz: garbage after a valid header either decodes or raises ParseError (never another
    exception), with an offset inside the datagram."""
    data = header(next_payload=first, length=28 + len(junk)).encode() + junk
    try:
        Message.decode(data)
    except ParseError as err:
        assert 0 <= err.offset <= len(data)
        assert err.notify in (NotifyType.INVALID_SYNTAX, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)


def test_count_fields_limit_what_can_be_encoded():
    with pytest.raises(ValueError, match="255 transforms"):
        encode_payloads([SA([Proposal(1, ProtocolId.IKE, b"", [Transform(1, 12)] * 256)])])
    selector = TrafficSelector.from_network("10.0.0.0/8")
    with pytest.raises(ValueError, match="255 traffic selectors"):
        encode_payloads([TSi([selector] * 256)])


def test_notify_error_and_status_ranges():
    assert NotifyType.INVALID_SYNTAX.is_error
    assert not NotifyType.COOKIE.is_error


@settings(max_examples=300)
@given(headers, st.lists(plain_payloads, min_size=1, max_size=4), st.data())
def test_mutated_messages_raise_only_parse_error(header_, payloads, data):
    """Fuzz: valid messages with one byte changed or cut short, header length kept right."""
    datagram = bytearray(Message(header_, payloads).encode())
    if data.draw(st.booleans(), label="truncate"):
        cut = data.draw(st.integers(29, len(datagram)), label="cut")
        datagram = datagram[:cut]
    else:
        where = data.draw(st.integers(28, len(datagram) - 1), label="where")
        datagram[where] = data.draw(u8, label="value")
    datagram[24:28] = struct.pack("!I", len(datagram))
    try:
        Message.decode(bytes(datagram))
    except ParseError as err:
        assert 28 <= err.offset <= len(datagram)
