"""A CPG client process for the churn test: join, send under load, record everything.

usage: cpg_churn_client.py SUFFIX GROUP OUT_PATH RATE_MSGS_PER_S LIFE_S END
END: "leave" (cpg_leave, wait for the own leave confchg, finalize), "finalize" (finalize
while joined: the others see PROCDOWN) or "stay" (until SIGTERM). The parent kills some
clients with SIGKILL instead (a crash: the others see PROCDOWN when the socket closes).
Every callback is appended to OUT_PATH as one JSON line and flushed, so a killed client's
record is complete up to its death. Message payload: "<nodeid> <pid> <seq>".
"""
import os
import select
import signal
import sys
import time

import orjson

from coroproc.client.cpg import MODEL_V1_DELIVER_INITIAL_TOTEM_CONF, Cpg
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CsError


def main() -> int:
    suffix, group, out_path, rate, life_s, end = sys.argv[1:7]
    rate, life_s = float(rate), float(life_s)
    out = open(out_path, "ab", buffering=0)
    state = {"left": False, "stop": False}
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))

    def write(ev):
        out.write(orjson.dumps(ev) + b"\n")

    def deliver(_h, g, nodeid, pid, message):
        write(["deliver", g.decode("latin-1"), nodeid, pid, bytes(message).hex()])

    def confchg(_h, g, members, left, joined):
        write(["confchg", g.decode("latin-1"), [[a.nodeid, a.pid] for a in members],
               [[a.nodeid, a.pid, a.reason] for a in left],
               [[a.nodeid, a.pid, a.reason] for a in joined]])
        if any(a.pid == os.getpid() and a.nodeid == me for a in left):
            state["left"] = True

    def totem(_h, ring_id, members):
        write(["totem", list(ring_id), list(members)])

    deadline = time.monotonic() + 30
    while True:
        try:
            cpg = Cpg(deliver_fn=deliver, confchg_fn=confchg, totem_confchg_fn=totem,
                      model_v1_flags=MODEL_V1_DELIVER_INITIAL_TOTEM_CONF, suffix=suffix)
            break
        except CsError as exc:
            if exc.code != CS_ERR_TRY_AGAIN or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    me = cpg.local_get()
    write(["local", me, os.getpid()])
    gname = group.encode()
    while True:
        try:
            cpg.join(gname)
            break
        except CsError as exc:
            if exc.code != CS_ERR_TRY_AGAIN:
                raise
            time.sleep(0.02)
    seq = 0
    period = 1.0 / rate
    next_send = time.monotonic()
    stop_at = time.monotonic() + life_s
    while not state["stop"] and (end == "stay" or time.monotonic() < stop_at):
        now = time.monotonic()
        if now >= next_send:
            try:
                cpg.mcast_joined(2, f"{me} {os.getpid()} {seq}".encode())
                seq += 1
                next_send += period
            except CsError as exc:
                if exc.code != CS_ERR_TRY_AGAIN:
                    raise
                next_send = now + 0.005
        ready, _, _ = select.select([cpg.fileno()], [], [], max(next_send - time.monotonic(), 0))
        if ready:
            cpg.dispatch()
    write(["sent", seq])
    if end == "leave":
        while True:
            try:
                cpg.leave(gname)
                break
            except CsError as exc:
                if exc.code != CS_ERR_TRY_AGAIN:
                    raise
                time.sleep(0.02)
        deadline = time.monotonic() + 30
        while not state["left"] and time.monotonic() < deadline:
            if select.select([cpg.fileno()], [], [], 0.2)[0]:
                cpg.dispatch()
    cpg.finalize()
    write(["end", end])
    return 0


if __name__ == "__main__":
    sys.exit(main())
