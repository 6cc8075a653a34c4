"""Seal → open round trips for every suite, payload size and frame type; the wire header."""
import pytest
from secure_helpers import ALL_SUITES, AEAD_SUITES, MAC_SUITES, codec, counted, pair, ring

from coroproc.netproc.secure import CryptoSuite, LinkCodec
from coroproc.netproc.secure.frame import (DATAGRAM_MAX_BYTES, FLAGS_AEAD, FLAGS_CLEAR,
                                           FLAGS_MAC, HEADER, MAGIC)

SIZES = (0, 1, 64, 1400, 65_000)


@pytest.mark.parametrize("cipher,hash_", ALL_SUITES)
def test_round_trip_every_size_and_type(cipher, hash_):
    tx, rx = pair(cipher, hash_)
    for size in SIZES:
        for ftype in range(1, 6):
            payload = bytes((i * 7 + size) & 0xFF for i in range(size))
            frame = tx.seal(ftype, 2, payload)
            assert len(frame) == tx.suite.overhead_bytes + size
            got = rx.open(frame)
            assert got is not None, counted(rx)
            assert (got[0], got[1], bytes(got[2])) == (ftype, 1, payload)
    assert counted(rx) == {"rx_ok": len(SIZES) * 5}
    assert counted(tx) == {"tx_sealed": len(SIZES) * 5}


@pytest.mark.parametrize("cipher,hash_", [AEAD_SUITES[0], MAC_SUITES[0], ("none", "none")])
def test_memoryview_input_both_ways(cipher, hash_):
    tx, rx = pair(cipher, hash_)
    buf = bytearray(b"\xAA" * 10 + b"payload-bytes" + b"\xBB" * 10)
    frame = tx.seal(1, 2, memoryview(buf)[10:-10])
    recv = bytearray(len(frame) + 100)
    recv[:len(frame)] = frame
    ftype, sender, payload = rx.open(memoryview(recv)[:len(frame)])
    assert bytes(payload) == b"payload-bytes"


@pytest.mark.parametrize("cipher,hash_,flags,tag", [
    ("aes128", "sha1", FLAGS_AEAD, 16), ("aes256", "sha512", FLAGS_AEAD, 16),
    ("none", "md5", FLAGS_MAC, 16), ("none", "sha384", FLAGS_MAC, 48),
    ("none", "sha512", FLAGS_MAC, 64), ("none", "none", FLAGS_CLEAR, 0)])
def test_header_fields_on_the_wire(cipher, hash_, flags, tag):
    r = ring(cipher, hash_)
    tx = codec(r, 3, link=5, session=0x0123456789ABCDEF, peers=(3, 9))
    payload = b"secret totem frame"
    first, second = tx.seal(2, 9, payload), tx.seal(1, 9, payload)
    fields = HEADER.unpack_from(second)
    key_id = r.tx.key_id if r.tx else 0
    assert fields == (MAGIC, 1, 1, flags, key_id, 5, 0, 3, 9, 0x0123456789ABCDEF, 2)
    assert HEADER.unpack_from(first)[-1] == 1          # seq starts at 1
    assert second[:2] == b"\x7e\xc0"                    # little-endian 0xC07E
    assert len(second) == 32 + len(payload) + tag
    # AEAD hides the payload; MAC-only and clear carry it as is.
    assert (payload in second) == (flags != FLAGS_AEAD)


def test_frame_to_self_is_accepted():
    """A one-node ring sends its token to itself."""
    r = ring()
    solo = codec(r, 1, peers=(1,))
    got = solo.open(solo.seal(1, 1, b"token"))
    assert got is not None and got[1] == 1 and bytes(got[2]) == b"token"
    assert solo.peer_session(1) == solo.session


def test_peer_session_reports_accepted_session_only():
    tx, rx = pair()
    assert rx.peer_session(1) is None and rx.peer_session(77) is None
    rx.open(tx.seal(1, 2, b"x"))
    assert rx.peer_session(1) == tx.session


def test_seal_rejects_bad_arguments_with_reasons():
    tx, _ = pair()
    with pytest.raises(ValueError, match="frame type 6"):
        tx.seal(6, 2, b"")
    with pytest.raises(ValueError, match="dest nodeid 0"):
        tx.seal(1, 0, b"")
    limit = DATAGRAM_MAX_BYTES - tx.suite.overhead_bytes
    assert len(tx.seal(1, 2, bytes(limit))) == DATAGRAM_MAX_BYTES
    with pytest.raises(ValueError, match=f"at most {limit}"):
        tx.seal(1, 2, bytes(limit + 1))


def test_codec_constructor_errors():
    r = ring()
    with pytest.raises(ValueError, match="linknumber 8"):
        LinkCodec(r, 1, 8, 5, (1,))
    with pytest.raises(ValueError, match="local nodeid 4 is not in the peers"):
        LinkCodec(r, 4, 0, 5, (1, 2))
    with pytest.raises(ValueError, match="session 0"):
        LinkCodec(r, 1, 0, 0, (1,))


@pytest.mark.parametrize("cipher,hash_,overhead,text", [
    ("aes256", "sha256", 48, "AES-256-GCM (crypto_cipher aes256, crypto_hash sha256: "
     "authentication by the GCM tag), keys by HKDF-SHA256 from the authkey"),
    ("aes128", "md5", 48, "AES-128-GCM"),
    ("none", "sha1", 52, "HMAC-SHA1"),
    ("none", "none", 32, "in clear")])
def test_suite_mapping(cipher, hash_, overhead, text):
    s = CryptoSuite(cipher, hash_)
    assert s.overhead_bytes == overhead
    assert text in s.describe()
    assert s.enabled == ((cipher, hash_) != ("none", "none"))


@pytest.mark.parametrize("cipher,hash_,msg", [
    ("aes256", "none", "needs a crypto_hash"), ("aes512", "sha1", "crypto_cipher 'aes512'"),
    ("none", "sha3", "crypto_hash 'sha3'")])
def test_suite_errors(cipher, hash_, msg):
    with pytest.raises(ValueError, match=msg):
        CryptoSuite(cipher, hash_)
