"""What a cpghum receiver concludes from the messages delivered to it.

This file owns the per-sender stream checks, fed one delivery at a time (so a test can
feed crafted deliveries): CRC and length of every message, and per sender stream
(nodeid, pid, instance) that sequence numbers arrive exactly once and in order.

  * The first message seen from a stream starts it, whatever its seq: a receiver that
    joins late, or a sender that started earlier, is not an error (cpghum.c does the same).
  * seq == expected: fine.  seq > expected: a gap of (seq - expected) messages.
    seq < expected: a duplicate (or a reordering, which total order forbids too).
  * CRC and length are checked independently of the sequence, as cpghum.c does.
  * A receiver that lost its own connection missed messages legitimately: reset() forgets
    every stream. A sender that left the group is forgotten (forget_process), which also
    keeps the table bounded by the group's live members.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from coroproc.tools.cpghum_wire import HumFormatError, HumHeader, decode

STREAMS_MAX = 65536      # cpghum.c's MAX_NODEID table; past it the group is not a test
PROBLEMS_KEPT = 100      # the first problems are kept verbatim for the report


@dataclass(frozen=True)
class Delivery:
    """A checked delivery: the decoded header (None for a foreign message) and whether it
    passed every check."""
    nodeid: int
    pid: int
    header: HumHeader | None
    ok: bool


class DeliveryChecker:
    def __init__(self, problems_kept: int = PROBLEMS_KEPT):
        self._expected: dict[tuple[int, int, int], int] = {}   # stream -> next seq
        self.received = 0
        self.received_by_node: Counter = Counter()
        self.gap_msgs = 0          # messages missing inside streams
        self.gap_events = 0        # times a jump forward was seen
        self.duplicates = 0
        self.crc_errors = 0
        self.length_errors = 0
        self.malformed = 0
        self.problems: deque[str] = deque(maxlen=problems_kept)
        self.problems_total = 0

    @property
    def failures(self) -> int:
        return (self.gap_events + self.duplicates + self.crc_errors + self.length_errors
                + self.malformed)

    def counts(self) -> dict:
        return {"gap_msgs": self.gap_msgs, "gap_events": self.gap_events,
                "duplicates": self.duplicates, "crc_errors": self.crc_errors,
                "length_errors": self.length_errors, "malformed": self.malformed}

    def _problem(self, text: str) -> None:
        self.problems_total += 1
        self.problems.append(text)

    def deliver(self, nodeid: int, pid: int, message: bytes) -> Delivery:
        self.received += 1
        self.received_by_node[nodeid] += 1
        where = f"from nodeid {nodeid} pid {pid}"
        try:
            header, length_ok, crc_ok = decode(message)
        except HumFormatError as exc:
            self.malformed += 1
            self._problem(f"not a cpghum message {where}: {exc}")
            return Delivery(nodeid, pid, None, False)
        ok = length_ok and crc_ok
        if not length_ok:
            self.length_errors += 1
            self._problem(f"length {len(message)} bytes {where} seq {header.seq}, its "
                          f"header says {header.size_bytes}")
        if not crc_ok:
            self.crc_errors += 1
            self._problem(f"CRC mismatch {where} seq {header.seq}")
        return Delivery(nodeid, pid, header, self._sequence(nodeid, pid, header) and ok)

    def _sequence(self, nodeid: int, pid: int, header: HumHeader) -> bool:
        stream = (nodeid, pid, header.instance)
        expected = self._expected.get(stream)
        if expected is None:
            if len(self._expected) >= STREAMS_MAX:
                raise RuntimeError(f"more than {STREAMS_MAX} sender streams in one group; "
                                   f"senders that left should have been forgotten")
            self._expected[stream] = header.seq + 1
            return True
        if header.seq == expected:
            self._expected[stream] = expected + 1
            return True
        where = f"nodeid {nodeid} pid {pid} instance {header.instance:08x}"
        if header.seq > expected:
            self.gap_events += 1
            self.gap_msgs += header.seq - expected
            self._problem(f"gap from {where}: got seq {header.seq}, expected {expected} "
                          f"({header.seq - expected} missing)")
            self._expected[stream] = header.seq + 1
        else:
            self.duplicates += 1
            self._problem(f"duplicate or reordered message from {where}: got seq "
                          f"{header.seq}, expected {expected}")
        return False

    def forget_process(self, nodeid: int, pid: int) -> None:
        """The process left the group (confchg): its streams are over."""
        for stream in [s for s in self._expected if s[0] == nodeid and s[1] == pid]:
            del self._expected[stream]

    def reset(self) -> None:
        """This receiver reconnected: what it missed meanwhile is not a gap."""
        self._expected.clear()
