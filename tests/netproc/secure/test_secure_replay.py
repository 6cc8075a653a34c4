"""Replay window and sessions: captured frames replayed, reordering, restarts of a sender."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secure_helpers import codec, counted, pair, ring

from coroproc.netproc.secure.frame import HEADER, MAGIC
from coroproc.netproc.secure.replay import WINDOW_SEQS, PeerState, share

SUITES = [("aes256", "sha256"), ("none", "sha1"), ("none", "none")]


@pytest.mark.parametrize("cipher,hash_", SUITES)
@pytest.mark.parametrize("newer_frames", [0, 10, 2000])
def test_captured_frame_replayed_is_refused(cipher, hash_, newer_frames):
    tx, rx = pair(cipher, hash_)
    captured = tx.seal(1, 2, b"captured")
    assert rx.open(captured) is not None
    for _ in range(newer_frames):
        assert rx.open(tx.seal(1, 2, b"newer")) is not None
    assert rx.open(captured) is None
    assert counted(rx) == {"rx_ok": 1 + newer_frames, "rx_replayed": 1}


@pytest.mark.parametrize("cipher,hash_", SUITES)
def test_out_of_order_inside_window_accepted_once(cipher, hash_):
    tx, rx = pair(cipher, hash_)
    frames = [tx.seal(1, 2, b"%d" % i) for i in range(WINDOW_SEQS)]
    order = list(range(WINDOW_SEQS - 1, -1, -1))        # newest first, then back in time
    for i in order:
        assert bytes(rx.open(frames[i])[2]) == b"%d" % i
    for i in order:
        assert rx.open(frames[i]) is None
    assert counted(rx) == {"rx_ok": WINDOW_SEQS, "rx_replayed": WINDOW_SEQS}


def test_frame_older_than_window_is_refused_even_if_never_seen():
    tx, rx = pair()
    late = tx.seal(1, 2, b"late")                       # seq 1
    for _ in range(WINDOW_SEQS):                        # seqs 2..1025: seq 1 falls out
        rx.open(tx.seal(1, 2, b"x"))
    assert rx.open(late) is None
    assert counted(rx)["rx_replayed"] == 1


@pytest.mark.parametrize("cipher,hash_", SUITES)
def test_newer_session_replaces_old_one(cipher, hash_):
    r = ring(cipher, hash_)
    old, rx = codec(r, 1, session=1000), codec(r, 2)
    old_frames = [old.seal(1, 2, b"old") for _ in range(3)]
    assert rx.open(old_frames[0]) is not None
    restarted = codec(r, 1, session=2000)               # the sender restarted: seq from 1
    assert bytes(rx.open(restarted.seal(1, 2, b"new"))[2]) == b"new"
    assert rx.peer_session(1) == 2000
    assert rx.open(old_frames[1]) is None
    assert counted(rx) == {"rx_ok": 2, "rx_old_session": 1}


def test_forged_newer_session_does_not_switch_or_grow_memory():
    r = ring()
    tx, rx = codec(r, 1, session=1000), codec(r, 2)
    assert rx.open(tx.seal(1, 2, b"a")) is not None
    template = bytearray(tx.seal(1, 2, b"b"))
    for forged_session in range(5000, 5300):            # a sender-less flood of sessions
        HEADER.pack_into(template, 0, MAGIC, 1, 1, 1, r.tx.key_id, 0, 0, 1, 2,
                         forged_session, 1)
        assert rx.open(bytes(template)) is None
    assert rx.peer_session(1) == 1000
    assert r.tx.cached_sessions <= 64
    assert rx.open(tx.seal(1, 2, b"c")) is not None     # the real session still opens
    assert counted(rx) == {"rx_ok": 2, "rx_auth_failed": 300}


def test_window_state_is_untouched_by_frames_that_fail_authentication():
    tx, rx = pair()
    real = tx.seal(1, 2, b"real")
    forged = bytearray(real)
    forged[-1] ^= 1
    assert rx.open(bytes(forged)) is None               # same seq, bad tag
    assert rx.open(real) is not None                    # the seq was not burnt
    assert counted(rx) == {"rx_auth_failed": 1, "rx_ok": 1}


class WindowModel:
    """The replay rule in its plainest form: a set of every seq ever accepted."""

    def __init__(self):
        self.seen, self.top = set(), 0

    def accept(self, seq):
        if seq == 0 or seq in self.seen or seq <= self.top - WINDOW_SEQS:
            return False
        self.seen.add(seq)
        self.top = max(self.top, seq)
        return True


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 3000), st.integers(0, 2**64 - 1)), max_size=300),
       st.integers(0, 300))
def test_window_matches_model(seqs, shared_from):
    """The Python window, and from `shared_from` on its arrays form (share(): what a
    clear link's jitted data path updates), against the model."""
    window, model = PeerState(), WindowModel()
    for i, seq in enumerate(seqs):
        if i == shared_from:
            _table, states = share({7: window})
            window = states[7]
        assert window.accept(seq) == model.accept(seq), seq
    assert window.bits < 1 << WINDOW_SEQS


def test_shared_window_keeps_the_session_and_key_cache():
    window = PeerState()
    window.start_session(5)
    assert window.accept(3) and window.accept(1)
    window.key, window.cipher = "k", "c"
    table, states = share({2: window})
    shared = states[2]
    assert (shared.session, shared.top, shared.bits) == (5, 3, window.bits)
    assert (shared.key, shared.cipher) == ("k", "c")
    assert not shared.accept(1) and shared.accept(2)
    shared.start_session(6)
    assert (int(table.session[0]), shared.top, shared.key) == (6, 0, None)
