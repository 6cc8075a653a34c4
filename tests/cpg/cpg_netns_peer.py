"""One CPG peer for the mixed-ring test, run inside a node's namespaces:
    python cpg_netns_peer.py GROUP PEERS MESSAGES
Joins GROUP (V1, initial totem confchg), waits until PEERS processes are members, records
membership_get, multicasts MESSAGES tagged messages, waits until PEERS x MESSAGES are
delivered, then prints one JSON object (events, membership) and exits 0; on its hang
guard it prints what it has and exits 1."""
import json
import os
import select
import sys
import time

from coroproc.client.cpg import MODEL_V1_DELIVER_INITIAL_TOTEM_CONF, Cpg
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CsError

HANG_GUARD_S = 90.0


def main() -> int:
    group, peers, count = sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3])
    events, out = [], {"pid": os.getpid()}

    def confchg(_h, g, members, left, joined):
        events.append(["confchg", g.hex(), [[a.nodeid, a.pid] for a in members],
                       [[a.nodeid, a.pid, a.reason] for a in left],
                       [[a.nodeid, a.pid, a.reason] for a in joined]])

    def deliver(_h, g, nodeid, pid, msg):
        events.append(["deliver", g.hex(), nodeid, pid, bytes(msg).hex()])

    def totem(_h, ring_id, members):
        events.append(["totem", list(ring_id), list(members)])

    deadline = time.monotonic() + HANG_GUARD_S

    def retry(call):
        while True:
            try:
                return call()
            except CsError as exc:
                if exc.code != CS_ERR_TRY_AGAIN or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    cpg = retry(lambda: Cpg(deliver_fn=deliver, confchg_fn=confchg, totem_confchg_fn=totem,
                            model_v1_flags=MODEL_V1_DELIVER_INITIAL_TOTEM_CONF))

    def pump_until(done) -> bool:
        while not done():
            if time.monotonic() > deadline:
                return False
            if select.select([cpg.fileno()], [], [], 0.2)[0]:
                cpg.dispatch()
        return True

    try:
        out["nodeid"] = cpg.local_get()
        retry(lambda: cpg.join(group))
        ok = pump_until(lambda: any(e[0] == "confchg" and len(e[2]) >= peers for e in events))
        if ok:
            out["membership"] = [[a.nodeid, a.pid] for a in cpg.membership_get(group)]
            tag = b"%d:%d:" % (out["nodeid"], os.getpid())
            for k in range(count):
                retry(lambda k=k: cpg.mcast_joined(2, tag + b"%d" % k))
            ok = pump_until(lambda: sum(e[0] == "deliver" for e in events) >= peers * count)
    finally:
        out["events"] = events
        print(json.dumps(out), flush=True)
        cpg.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
