"""cpghum's receiver checks, fed crafted deliveries: a corrupted, a duplicated, a missing,
a truncated and a foreign message are each flagged once and as what they are; what is
legitimately not a gap (a late start, a sender's new connection, the receiver's own
reconnect) is not. Also the latency histogram's percentiles against exact ones."""
import random

import pytest

from coroproc.tools.cpghum_check import DeliveryChecker
from coroproc.tools.cpghum_latency import LatencyHistogram
from coroproc.tools.cpghum_wire import HEADER_BYTES, PayloadPool, check_size, encode

INSTANCE = 0x1234ABCD


def msg(seq: int, instance: int = INSTANCE, size_bytes: int = 100) -> bytes:
    head, payload = encode(instance, seq, 1_000_000 + seq, PayloadPool(size_bytes).payload(seq))
    return head + bytes(payload)


def clean(ck: DeliveryChecker) -> bool:
    return ck.failures == 0 and not ck.problems


def test_an_in_order_stream_passes():
    ck = DeliveryChecker()
    for seq in range(50):
        assert ck.deliver(1, 10, msg(seq)).ok
    assert clean(ck) and ck.received == 50 and ck.received_by_node[1] == 50


def test_corrupted_payload_is_a_crc_error_not_a_gap():
    ck = DeliveryChecker()
    ck.deliver(1, 10, msg(0))
    bad = bytearray(msg(1))
    bad[HEADER_BYTES + 7] ^= 0x40
    d = ck.deliver(1, 10, bytes(bad))
    ck.deliver(1, 10, msg(2))
    assert not d.ok and d.header.seq == 1
    assert ck.counts() == {"gap_msgs": 0, "gap_events": 0, "duplicates": 0, "crc_errors": 1,
                           "length_errors": 0, "malformed": 0}
    assert "CRC" in ck.problems[0]


def test_corrupted_sequence_number_fails_the_crc():
    ck = DeliveryChecker()
    ck.deliver(1, 10, msg(0))
    bad = bytearray(msg(1))
    bad[8] = 7                       # seq 1 -> 7: the header is covered by the CRC
    ck.deliver(1, 10, bytes(bad))
    assert ck.crc_errors == 1


def test_duplicate_is_flagged():
    ck = DeliveryChecker()
    for seq in (0, 1, 2, 2, 3):
        ck.deliver(2, 20, msg(seq))
    assert ck.duplicates == 1 and ck.gap_events == 0 and ck.crc_errors == 0
    assert "duplicate" in ck.problems[0] and "got seq 2, expected 3" in ck.problems[0]


def test_missing_messages_are_a_gap_counted_in_messages():
    ck = DeliveryChecker()
    for seq in (0, 1, 5, 6):
        ck.deliver(3, 30, msg(seq))
    assert ck.gap_events == 1 and ck.gap_msgs == 3 and ck.duplicates == 0
    assert "3 missing" in ck.problems[0]


def test_truncated_message_is_a_length_error():
    ck = DeliveryChecker()
    ck.deliver(1, 10, msg(0)[:-4])
    assert ck.length_errors == 1 and ck.crc_errors == 1


def test_foreign_message_is_flagged_not_misread():
    ck = DeliveryChecker()
    ck.deliver(1, 10, b"hello")
    ck.deliver(1, 10, b"X" * 64)
    assert ck.malformed == 2 and ck.failures == 2


def test_streams_are_per_sender_and_per_instance():
    ck = DeliveryChecker()
    # a late start (first seq 40), two senders on one node (pids), one interleaving
    for seq in range(40, 45):
        ck.deliver(1, 10, msg(seq))
        ck.deliver(1, 11, msg(seq - 40))
    # the sender reconnected: a new instance restarts at 0 — a new stream, not a duplicate
    ck.deliver(1, 10, msg(0, instance=INSTANCE + 1))
    ck.deliver(1, 10, msg(1, instance=INSTANCE + 1))
    assert clean(ck)


def test_reset_and_forget_process_end_streams():
    ck = DeliveryChecker()
    ck.deliver(1, 10, msg(0))
    ck.reset()                          # the receiver itself reconnected
    ck.deliver(1, 10, msg(9))
    ck.forget_process(1, 10)            # the sender left the group
    ck.deliver(1, 10, msg(3))
    assert clean(ck)
    ck.deliver(1, 10, msg(3))           # but within one stream a repeat is still caught
    assert ck.duplicates == 1


def test_message_sizes_are_checked():
    assert check_size(HEADER_BYTES) == HEADER_BYTES
    with pytest.raises(ValueError, match="allowed 32"):
        check_size(HEADER_BYTES - 1)


def test_latency_percentiles_are_within_a_bucket_of_the_exact_ones():
    rng = random.Random(7)
    samples = [int(rng.lognormvariate(7, 1.5)) for _ in range(5000)] + [10**7]
    h = LatencyHistogram()
    for v in samples:
        h.record(v)
    samples.sort()
    for pct in (50, 90, 99):
        exact = samples[-(-len(samples) * pct // 100) - 1]
        got = h.percentile_us(pct)
        assert exact <= got <= exact * 33 // 32 + 1, (pct, exact, got)
    assert h.max_us == 10**7 and h.percentile_us(100) == 10**7
    assert LatencyHistogram().summary()["p99_us"] == 0
