"""RFC 3686 (ESP) and RFC 5930 (IKEv2): AES-CTR with a 4-byte nonce at the end of KEYMAT, an
8-byte IV per message and the counter block nonce ‖ IV ‖ 0x00000001.

Known answers: RFC 3686 §6, test vectors #1–#9 (128-, 192- and 256-bit keys).
"""

import pytest

from client.esp import InboundSa, OutboundSa
from ike.constants import EncrId, IntegId
from ike.transforms import TransformError, cipher_keymat_size, make_cipher

# RFC 3686 §6: (vector, key, nonce, IV, plaintext, ciphertext)
VECTORS = [
    ("#1", "ae6852f8121067cc4bf7a5765577f39e", "00000030", "0000000000000000",
     b"Single block msg".hex(), "e4095d4fb7a7b3792d6175a3261311b8"),
    ("#2", "7e24067817fae0d743d6ce1f32539163", "006cb6db", "c0543b59da48d90b", bytes(range(32)).hex(),
     "5104a106168a72d9790d41ee8edad388eb2e1efc46da57c8fce630df9141be28"),
    ("#3", "7691be035e5020a8ac6e618529f9a0dc", "00e0017b", "27777f3f4a1786f0", bytes(range(36)).hex(),
     "c1cf48a89f2ffdd9cf4652e9efdb72d74540a42bde6d7836d59a5ceaaef3105325b2072f"),
    ("#4", "16af5b145fc9f579c175f93e3bfb0eed863d06ccfdb78515", "00000048", "36733c147d6d93cb",
     b"Single block msg".hex(), "4b55384fe259c9c84e7935a003cbe928"),
    ("#5", "7c5cb2401b3dc33c19e7340819e0f69c678c3db8e6f6a91a", "0096b03b", "020c6eadc2cb500d",
     bytes(range(32)).hex(),
     "453243fc609b23327edfaafa7131cd9f8490701c5ad4a79cfc1fe0ff42f4fb00"),
    ("#6", "02bf391ee8ecb159b959617b0965279bf59b60a786d3e0fe", "0007bdfd", "5cbd60278dcc0912",
     bytes(range(36)).hex(),
     "96893fc55e5c722f540b7dd1ddf7e758d288bc95c69165884536c811662f2188abee0935"),
    ("#7", "776beff2851db06f4c8a0542c8696f6c6a81af1eec96b4d37fc1d689e6c1c104", "00000060",
     "db5672c97aa8f0b2", b"Single block msg".hex(), "145ad01dbf824ec7560863dc71e3e0c0"),
    ("#8", "f6d66d6bd52d59bb0796365879eff886c66dd51a5b6a99744b50590c87a23884", "00faac24",
     "c1585ef15a43d875", bytes(range(32)).hex(),
     "f05e231b3894612c49ee000b804eb2a9b8306b508f839d6a5530831d9344af1c"),
    ("#9", "ff7a617ce69148e4f1726e2f43581de2aa62d9f805532edff1eed687fb54153d", "001cc5b7",
     "51a51d70a1c11148", bytes(range(36)).hex(),
     "eb6c52821d0bbbf7ce7594462aca4faab407df866569fd07f48cc0b583d6071f1ec0e6b8"),
]


@pytest.mark.parametrize("name,key,nonce,iv,plain,cipher", VECTORS, ids=[v[0] for v in VECTORS])
def test_known_answers(name, key, nonce, iv, plain, cipher):
    key, nonce, iv = bytes.fromhex(key), bytes.fromhex(nonce), bytes.fromhex(iv)
    aes_ctr = make_cipher(EncrId.AES_CTR, len(key) * 8, key + nonce)
    assert (aes_ctr.iv_size, aes_ctr.block_size, aes_ctr.icv_size) == (8, 1, 0)
    assert not aes_ctr.aead and aes_ctr.unique_iv  # integrity comes from a separate transform
    assert aes_ctr.encrypt(iv, bytes.fromhex(plain)).hex() == cipher
    assert aes_ctr.decrypt(iv, bytes.fromhex(cipher)).hex() == plain


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_keymat_includes_the_nonce(bits):
    """RFC 3686 §5.1 / RFC 5930 §3: KEYMAT is the key plus 4 octets of nonce."""
    assert cipher_keymat_size(EncrId.AES_CTR, bits) == bits // 8 + 4
    with pytest.raises(TransformError, match="needs 20 bytes of keying material, got 16"):
        make_cipher(EncrId.AES_CTR, 128, bytes(16))


def test_esp_packets_use_the_sequence_number_as_iv_and_align_to_4_bytes():
    keymat, integ_key = bytes(range(20)), bytes(range(100, 116))
    out = OutboundSa(b"\x00\x00\x10\x01", EncrId.AES_CTR, 128, keymat, IntegId.AES_XCBC_96, integ_key)
    inb = InboundSa(b"\x00\x00\x10\x01", EncrId.AES_CTR, 128, keymat, IntegId.AES_XCBC_96, integ_key)
    for seq, size in enumerate((1, 2, 3, 40, 1400), start=1):
        inner = bytes([0x45]) + bytes(size - 1)
        packet = out.seal(inner, 4)
        assert packet[8:16] == seq.to_bytes(8, "big")  # IV never repeats under the key
        ciphertext = packet[16:-12]
        assert len(ciphertext) % 4 == 0 and len(ciphertext) - size - 2 < 4  # RFC 3686 §3.2
        assert inb.open(packet) == (4, inner)
        # The ciphertext is AES-CTR with counter block nonce ‖ IV ‖ 1 over payload ‖ trailer.
        reference = make_cipher(EncrId.AES_CTR, 128, keymat)
        assert reference.decrypt(packet[8:16], ciphertext)[:size] == inner
