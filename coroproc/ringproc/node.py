"""TotemNode: the Python driver of one sans-I/O Totem core (see docs/core-api.md).

It owns the numpy state, calls the jitted entry points, and turns the output buffers into
tuples. Work per call is one jitted call plus one Python tuple per output; the ring
process uses the same core through batch entry points instead of this per-event driver.
Totempg reassembly happens here, between the core's frame deliveries and the application,
exactly where Corosync's totempg sits above totemsrp.
"""
from __future__ import annotations

import numpy as np

from . import srp
from . import totempg as pg
from .config import TotemConfig
from .state import (COUNTER_NAMES, EV_CONFIG, EV_DELIVER, EV_LOG, EV_RINGID, S_EV_N, S_NOW_US,
                    S_EV_IOFF, S_EV_OFF, S_RING_REP, S_RING_SEQ, S_STATE, S_TX_N, S_TX_OFF, S_WAITING_TRANS_ACK,
                    TotemState, new_state)
from .wire import REJECT_NAMES

LEVELS = ("agreed", "safe")
KINDS = ("transitional", "regular")


class TotemNode:
    """One Totem core and its totempg layer, driven by the caller's clock and network."""

    def __init__(self, config: TotemConfig, nodeid: int, ring_seq: int = 0,
                 reassembly_senders: int | None = None):
        if not 0 < nodeid < 2**32:
            raise ValueError(f"nodeid {nodeid} is outside 1..2^32-1")
        self.config = config
        self.nodeid = nodeid
        self.st: TotemState = new_state(config.to_array(), nodeid, ring_seq,
                                        config.new_message_queue_bytes)
        senders = reassembly_senders or max(len(config.nodelist), 1)
        self._slot_of: dict[int, int] = {}
        self._asm_data = np.zeros((senders, config.max_message_bytes + 64), np.uint8)
        self._asm_meta = np.zeros((senders, pg.ASM_META_LEN), np.int64)
        self._out_data = np.zeros(config.max_message_bytes + config.netmtu * 4, np.uint8)
        self._out_meta = np.zeros((config.netmtu, pg.OUT_META_LEN), np.int64)
        self._outputs: list[tuple] = []
        self._deadline_us = -1

    # ---- inputs ----
    # Each method makes exactly one jitted call (a call unboxes the whole state, so the
    # entry points also return the next deadline) and then collects the outputs.
    def start(self, now_us: int) -> None:
        self._deadline_us = int(srp.srp_start(self.st, now_us))
        self._collect()

    def on_frame(self, now_us: int, frame) -> int:
        buf = frame if isinstance(frame, np.ndarray) else np.frombuffer(frame, np.uint8)
        reason, deadline = srp.srp_on_frame(self.st, now_us, buf, buf.shape[0])
        self._deadline_us = int(deadline)
        self._collect()
        return int(reason)

    def on_timer(self, now_us: int) -> int:
        fired, deadline = srp.srp_on_timer(self.st, now_us)
        self._deadline_us = int(deadline)
        self._collect()
        return int(fired)

    def next_deadline_us(self) -> int:
        return self._deadline_us

    def submit(self, payload: bytes, safe: bool = False, group: bytes = b"a",
               sync_traffic: bool = False) -> bool:
        msg = pg.build_group_message(group, payload)
        ok, deadline = srp.srp_submit(self.st, self._now(), msg, msg.shape[0], 1 if safe else 0,
                                      1 if sync_traffic else 0)
        self._deadline_us = int(deadline)
        self._collect()
        return bool(ok)

    def trans_ack(self, now_us: int, ring_id: tuple[int, int]) -> bool:
        """The services' sync of ring_id completed here: queued messages go out again."""
        ended, deadline = srp.srp_trans_ack(self.st, now_us, ring_id[0], ring_id[1])
        self._deadline_us = int(deadline)
        self._collect()
        return bool(ended)

    @property
    def waiting_trans_ack(self) -> bool:
        return bool(self.st.s[S_WAITING_TRANS_ACK])

    def leave(self, now_us: int) -> None:
        srp.srp_leave(self.st, now_us)
        self._deadline_us = -1
        self._collect()

    # ---- outputs ----
    def take_outputs(self) -> list[tuple]:
        out, self._outputs = self._outputs, []
        return out

    def counters(self) -> dict:
        c = {name: int(v) for name, v in zip(COUNTER_NAMES, self.st.cnt)}
        for i, name in enumerate(REJECT_NAMES):
            if i:
                c["rx_rejected_" + name] = int(self.st.rej[i])
        return c

    @property
    def state(self) -> int:
        return int(self.st.s[S_STATE])

    @property
    def ring_id(self) -> tuple[int, int]:
        return int(self.st.s[S_RING_REP]), int(self.st.s[S_RING_SEQ])

    # ---- internals ----
    def _now(self) -> int:
        return int(self.st.s[S_NOW_US])

    def _slot(self, sender: int) -> int:
        slot = self._slot_of.get(sender)
        if slot is None:
            slot = len(self._slot_of)
            if slot >= self._asm_meta.shape[0]:
                # more senders than the nodelist named: grow (rare, membership-time only)
                self._asm_data = np.concatenate([self._asm_data, np.zeros_like(self._asm_data)])
                self._asm_meta = np.concatenate([self._asm_meta, np.zeros_like(self._asm_meta)])
            self._slot_of[sender] = slot
        return slot

    def _collect(self) -> None:
        st = self.st
        out = self._outputs
        tx_n = int(st.s[S_TX_N])
        ev_n = int(st.s[S_EV_N])
        # srp_clear_outputs, done here: a jitted call would unbox the whole state again
        st.s[S_TX_N] = st.s[S_TX_OFF] = st.s[S_EV_N] = st.s[S_EV_OFF] = st.s[S_EV_IOFF] = 0
        if tx_n:
            data = st.tx_data
            for off, ln, dest in st.tx_meta[:tx_n].tolist():
                out.append(("send", dest, data[off:off + ln].tobytes()))
        if not ev_n:
            return
        ints = st.ev_ints
        for kind, a, b, c, d, e, off, ln in st.ev_meta[:ev_n].tolist():
            if kind == EV_DELIVER:
                self._unpack(out, a, b, c, d, e, st.ev_data[off:off + ln])
            elif kind == EV_CONFIG:
                if a == 1:
                    # The old ring is fully delivered: what is still partial can never
                    # complete (senders restart such messages in the new ring).
                    pg.pg_assembly_reset_all(self._asm_meta)
                out.append(("config", KINDS[a], (b, c), tuple(ints[off:off + ln].tolist())))
            elif kind == EV_RINGID:
                out.append(("ringid", b, c))
            elif kind == EV_LOG:
                nodes = tuple(ints[off:off + ln].tolist()) if ln else ()
                out.append(("log", a, b, c, d, nodes))

    def _unpack(self, out, sender, rep, seq, tseq, guarantee, packet) -> None:
        count = pg.pg_unpack(packet, packet.shape[0], self._slot(sender), self._asm_data,
                             self._asm_meta, self._out_data, self._out_meta, 0)
        if count < 0:
            out.append(("log", 0, count, sender, tseq, ()))
            return
        level = LEVELS[1 if guarantee == 1 else 0]
        for i in range(count):
            off = int(self._out_meta[i, 0])
            ln = int(self._out_meta[i, 1])
            msg = self._out_data[off:off + ln]
            payload_off = pg.group_payload_offset(msg)
            if payload_off < 0:
                continue
            out.append(("deliver", sender, (rep, seq), tseq, level,
                        msg[payload_off:].tobytes()))
