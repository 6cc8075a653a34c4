"""Damaged, forged and misdirected frames: never accepted, never an exception, each
counted under the reason open() is specified to check first."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secure_helpers import PEERS, authkey, codec, pair, ring

from coroproc.netproc.secure.counters import COUNTER_NAMES
from coroproc.netproc.secure.frame import HEADER, MAGIC

FUZZ_SUITES = [("aes128", "sha1"), ("aes256", "sha256"), ("none", "md5"),
               ("none", "sha512")]


def expected_refusal(rx, frame: bytes) -> str:
    """The reason a damaged, authenticated-suite frame must be counted under, from its
    header alone (an oracle written from the spec's check order, not the codec's code)."""
    if len(frame) < rx.suite.overhead_bytes:
        return "rx_truncated"
    (magic, version, ftype, flags, key_id, link, reserved, sender, dest, session,
     _seq) = HEADER.unpack_from(frame)
    checks = [
        (magic != MAGIC, "rx_bad_magic"), (version != 1, "rx_bad_version"),
        (not 1 <= ftype <= 5, "rx_bad_type"), (reserved != 0, "rx_bad_reserved"),
        (link != rx.linknumber, "rx_wrong_link"), (dest != rx.local_nodeid, "rx_wrong_dest"),
        (sender not in PEERS, "rx_unknown_sender"), (flags == 0, "rx_clear_refused"),
        (flags != rx.suite.flags, "rx_crypto_unexpected"),
        (key_id not in {k.key_id for k in rx.keyring.keys}, "rx_unknown_key"),
        (session < (rx.peer_session(sender) or 0), "rx_old_session"),
    ]
    for failed, reason in checks:
        if failed:
            return reason
    return "rx_auth_failed"


def refused_as(rx, frame) -> str:
    before = rx.counters.as_dict()
    assert rx.open(frame) is None
    after = rx.counters.as_dict()
    moved = [n for n in COUNTER_NAMES if after[n] != before[n]]
    assert len(moved) == 1 and after[moved[0]] == before[moved[0]] + 1, moved
    return moved[0]


@pytest.mark.parametrize("cipher,hash_", FUZZ_SUITES)
def test_every_single_bit_flip_is_refused_for_its_reason(cipher, hash_):
    tx, rx = pair(cipher, hash_)
    # The receiver has accepted the sender's session, so a flip that lowers the
    # session is an old session and one that raises it must fail authentication.
    assert rx.open(tx.seal(1, 2, b"first")) is not None
    frame = tx.seal(1, 2, b"a Totem frame of some forty bytes......")
    seen = set()
    for bit in range(len(frame) * 8):
        damaged = bytearray(frame)
        damaged[bit // 8] ^= 1 << (bit % 8)
        reason = refused_as(rx, bytes(damaged))
        assert reason == expected_refusal(rx, bytes(damaged)), f"bit {bit}"
        seen.add(reason)
    assert {"rx_bad_magic", "rx_bad_version", "rx_bad_type", "rx_bad_reserved",
            "rx_wrong_link", "rx_wrong_dest", "rx_unknown_sender", "rx_clear_refused",
            "rx_crypto_unexpected",
            "rx_unknown_key", "rx_old_session", "rx_auth_failed"} <= seen
    assert rx.open(frame) is not None                      # the original still opens


@pytest.mark.parametrize("cipher,hash_", FUZZ_SUITES + [("none", "none")])
def test_every_truncation_is_refused(cipher, hash_):
    tx, rx = pair(cipher, hash_)
    frame = tx.seal(1, 2, b"x" * 100)
    # A clear frame cut after its header is just a shorter payload (next test).
    cut_lengths = range(len(frame) if rx.suite.enabled else rx.suite.overhead_bytes)
    for length in cut_lengths:
        reason = refused_as(rx, frame[:length])
        assert reason == ("rx_truncated" if length < rx.suite.overhead_bytes
                          else "rx_auth_failed"), length
    assert rx.open(frame) is not None


def test_clear_suite_truncation_is_a_shorter_payload():
    """Without crypto nothing detects a cut body: documented, and shown here."""
    tx, rx = pair("none", "none")
    frame = tx.seal(1, 2, b"x" * 100)
    assert bytes(rx.open(frame[:50])[2]) == b"x" * 18


@pytest.mark.parametrize("cipher,hash_", FUZZ_SUITES)
def test_frame_from_another_authkey_or_cluster(cipher, hash_):
    rx = codec(ring(cipher, hash_), 2)
    for other in (ring(cipher, hash_, key=authkey(seed=1)),
                  ring(cipher, hash_, cluster="othercluster")):
        frame = codec(other, 1).seal(1, 2, b"hello")
        same_id = other.tx.key_id == rx.keyring.tx.key_id
        assert refused_as(rx, frame) == ("rx_auth_failed" if same_id else "rx_unknown_key")


def test_frame_for_another_link_or_dest_or_from_stranger():
    r = ring()
    rx = codec(r, 2)
    assert refused_as(rx, codec(r, 1, link=1).seal(1, 2, b"x")) == "rx_wrong_link"
    assert refused_as(rx, codec(r, 1).seal(1, 3, b"x")) == "rx_wrong_dest"
    stranger = codec(r, 9, peers=(9, 2))
    assert refused_as(rx, stranger.seal(1, 2, b"x")) == "rx_unknown_sender"


@pytest.mark.parametrize("rx_suite,tx_suite,reason", [
    (("aes256", "sha256"), ("none", "none"), "rx_clear_refused"),
    (("none", "sha256"), ("none", "none"), "rx_clear_refused"),
    (("aes256", "sha256"), ("none", "sha256"), "rx_crypto_unexpected"),
    (("none", "sha256"), ("aes256", "sha256"), "rx_crypto_unexpected"),
    (("none", "none"), ("aes128", "md5"), "rx_crypto_unexpected"),
    (("none", "none"), ("none", "sha1"), "rx_crypto_unexpected")])
def test_suite_mismatches(rx_suite, tx_suite, reason):
    # 40 bytes of payload: long enough for every suite's overhead, so not rx_truncated
    rx = codec(ring(*rx_suite), 2)
    assert refused_as(rx, codec(ring(*tx_suite), 1).seal(1, 2, b"x" * 40)) == reason


def test_clear_frame_with_key_id_is_unknown_key():
    tx, rx = pair("none", "none")
    frame = bytearray(tx.seal(1, 2, b"x"))
    frame[5] = 7
    assert refused_as(rx, bytes(frame)) == "rx_unknown_key"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_never_raise(data):
    for rx in _FUZZ_RECEIVERS:
        assert refused_as(rx, data) in COUNTER_NAMES


@settings(max_examples=300, deadline=None)
@given(ftype=st.integers(0, 255), flags=st.integers(0, 255), key_id=st.integers(0, 255),
       sender=st.sampled_from((0, 1, 2, 3, 4, 0xFFFFFFFF)), session=st.integers(0, 2**64 - 1),
       seq=st.integers(0, 2**64 - 1), body=st.binary(max_size=120))
def test_plausible_headers_with_garbage_bodies_are_refused(ftype, flags, key_id, sender,
                                                           session, seq, body):
    """Past the cheap checks: a well-formed header on a body nobody sealed."""
    for rx in _FUZZ_RECEIVERS:
        if not rx.suite.enabled:
            continue
        frame = HEADER.pack(MAGIC, 1, ftype, flags, key_id, 0, 0, sender, 2, session,
                            seq) + body
        assert refused_as(rx, frame) == expected_refusal(rx, frame)


_FUZZ_RECEIVERS = [codec(ring(c, h), 2) for c, h in FUZZ_SUITES + [("none", "none")]]
