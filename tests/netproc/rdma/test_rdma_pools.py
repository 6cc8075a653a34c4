"""pools.py: the registered arena, receive-slot and send-slot accounting (no device needed)."""
import ctypes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.netproc.rdma.pools import Arena, RecvSlots, SendSlots
from coroproc.netproc.rdma.wire import GRH_BYTES


def test_arena_address_is_the_mapping_and_close_releases_it():
    arena = Arena(3 * 4096)
    assert arena.address % 4096 == 0               # page aligned, as ibv_reg_mr likes
    arena.view[100:104] = b"abcd"
    assert ctypes.string_at(arena.address + 100, 4) == b"abcd"
    arena.close()
    arena.close()                                   # idempotent


def test_receive_slots_leave_room_for_the_grh_and_count_posted():
    rx = RecvSlots(capacity=4, slot_bytes=GRH_BYTES + 1024, base_offset=0)
    assert rx.span_bytes == 4 * 1064 and rx.offset(3) == 3 * 1064
    for slot in range(4):
        rx.mark_posted(slot)
    assert rx.posted == 4 and rx.held() == 0
    rx.mark_completed(2)
    assert rx.held() == 1
    with pytest.raises(AssertionError, match="not posted"):
        rx.mark_completed(2)
    with pytest.raises(AssertionError, match="posted twice"):
        rx.mark_posted(1)


def test_send_slots_follow_the_receive_area():
    tx = SendSlots(capacity=8, slot_bytes=1024, base_offset=5000, signal_every=4)
    assert tx.offset(0) == 5000 and tx.offset(7) == 5000 + 7 * 1024


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(2, 40), signal_every=st.integers(1, 20),
       ops=st.lists(st.sampled_from(["send", "send", "send", "complete", "fail"]),
                    max_size=300))
def test_send_slots_never_deadlock_and_account_exactly(capacity, signal_every, ops):
    """Model an HCA that completes signalled WRs in order. The pool must never be left
    with every slot in flight and no signalled WR among them (nothing would free them)."""
    signal_every = min(signal_every, capacity)
    tx = SendSlots(capacity, 64, 0, signal_every)
    in_flight = []                                  # (wr_id, signalled) in posting order
    for op in ops:
        if op == "send":
            slot = tx.acquire()
            if slot is None:
                assert any(sig for _, sig in in_flight), "pool full and nothing signalled"
                continue
            wr_id, signalled = tx.next_wr()
            tx.posted(slot, wr_id)
            in_flight.append((wr_id, signalled))
        elif op == "fail":                         # ibv_post_send failed: slot goes back
            slot = tx.acquire()
            if slot is not None:
                tx.unacquire(slot)
        else:                                       # HCA finishes up to the first signalled WR
            sig = [w for w, s in in_flight if s]
            if sig:
                freed = tx.completed(sig[0])
                assert freed == len([w for w, _ in in_flight if w <= sig[0]])
                in_flight = [(w, s) for w, s in in_flight if w > sig[0]]
        assert tx.free() + tx.in_flight() == capacity
        assert tx.in_flight() == len(in_flight)
