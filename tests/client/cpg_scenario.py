"""A two-process CPG conversation, run inside the daemon's namespaces by test_client_cpg.

The main process (A) joins a group, starts a peer process (B, this file with --peer),
and both exchange a small and a 2 MiB message (the big one goes as PARTIAL_MCAST
fragments and comes back as PARTIAL_DELIVER events). A prints one JSON report of what
it observed on stdout; the test asserts on it. Every wait is bounded by the dispatch
loop's deadline, so a broken daemon fails the test instead of hanging it.
"""

import hashlib
import json
import os
import select
import subprocess
import sys
import time

from coroproc.client import DISPATCH_ONE_NONBLOCKING, Cpg, CsError
from coroproc.client import cpg as cpgmod

BIG_MESSAGE_BYTES = 2 * 1024 * 1024 + 12345
WAIT_S = 30.0   # generous: only a broken daemon takes this long
# argv: <group> [--no-big] — without the 2 MiB message when the kernel cannot carry
# ~1 MiB datagrams (socket-mode IPC needs 2 * net.core.wmem_max above that).


def big_message() -> bytes:
    block = hashlib.sha256(b"coroproc").digest()
    return (block * (BIG_MESSAGE_BYTES // len(block) + 1))[:BIG_MESSAGE_BYTES]


class Recorder:
    def __init__(self):
        self.events = []

    def deliver(self, h, group, nodeid, pid, msg):
        self.events.append({"kind": "deliver", "group": group.decode(), "nodeid": nodeid,
                            "pid": pid, "len": len(msg),
                            "sha256": hashlib.sha256(msg).hexdigest(),
                            "text": msg.decode() if len(msg) < 100 else None})

    def confchg(self, h, group, members, left, joined):
        self.events.append({"kind": "confchg", "group": group.decode(),
                            "members": [list(a) for a in members],
                            "left": [list(a) for a in left], "joined": [list(a) for a in joined]})

    def totem(self, h, ring_id, members):
        self.events.append({"kind": "totem", "ring_id": list(ring_id), "members": members})

    def wait_for(self, handle, predicate, what):
        """Dispatch until some recorded event satisfies predicate; returns it."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for ev in self.events:
                if predicate(ev):
                    return ev
            try:
                select.select([handle.fileno()], [], [], 0.5)
                handle.dispatch(DISPATCH_ONE_NONBLOCKING)
            except CsError as exc:
                if exc.name != "CS_ERR_TRY_AGAIN":
                    raise
        raise TimeoutError(f"no {what} within {WAIT_S} s; events: {self.events}")


def peer(group: str) -> None:
    rec = Recorder()
    me = os.getpid()
    with Cpg(rec.deliver, rec.confchg) as b:
        b.join(group)
        rec.wait_for(b, lambda e: e["kind"] == "confchg" and [b.local_get(), me, 1]
                     in e["joined"], "own join")
        print("joined", flush=True)
        rec.wait_for(b, lambda e: e["kind"] == "deliver" and e["pid"] != me
                     and e["text"] != "hello world", "big message")
        b.mcast_joined(cpgmod.TYPE_AGREED, b"from-", b"b")
        rec.wait_for(b, lambda e: e["kind"] == "deliver" and e["text"] == "from-b", "own msg")
        sys.stdin.readline()  # "leave"
        b.leave(group)
        rec.wait_for(b, lambda e: e["kind"] == "confchg" and any(
            a[1] == me for a in e["left"]), "own leave")
    print(json.dumps(rec.events), flush=True)


def main(group: str) -> None:
    rec = Recorder()
    me = os.getpid()
    report = {"pid": me}
    with Cpg(rec.deliver, rec.confchg, rec.totem,
             model_v1_flags=cpgmod.MODEL_V1_DELIVER_INITIAL_TOTEM_CONF) as a:
        nodeid = a.local_get()
        report["nodeid"] = nodeid
        report["max_atomic"] = a.max_atomic_msgsize_get()
        report["fc_state"] = a.flow_control_state_get()
        a.join(group)
        try:
            a.join(group)
        except CsError as exc:
            report["second_join"] = exc.name
        rec.wait_for(a, lambda e: e["kind"] == "confchg" and [nodeid, me, 1] in e["joined"],
                     "own join")
        rec.wait_for(a, lambda e: e["kind"] == "totem", "totem confchg")
        child = subprocess.Popen([sys.executable, __file__, "--peer", group],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "joined"
            report["peer_pid"] = child.pid
            rec.wait_for(a, lambda e: e["kind"] == "confchg" and [nodeid, child.pid, 1]
                         in e["joined"], "peer join")
            report["membership"] = sorted(list(m) for m in a.membership_get(group))
            report["iter_all"] = sorted([d.group.decode(), d.nodeid, d.pid]
                                        for d in a.iteration(cpgmod.ITERATION_ALL))
            report["iter_names"] = sorted({d.group.decode() for d in
                                           a.iteration(cpgmod.ITERATION_NAME_ONLY)})
            report["iter_one"] = sorted([d.group.decode(), d.nodeid, d.pid] for d in
                                        a.iteration(cpgmod.ITERATION_ONE_GROUP, group))
            a.mcast_joined(cpgmod.TYPE_AGREED, b"hello ", b"world")
            big = big_message() if SEND_BIG else b"small stand-in"
            report["big_sha256"] = hashlib.sha256(big).hexdigest()
            a.mcast_joined(cpgmod.TYPE_AGREED, big)
            rec.wait_for(a, lambda e: e["kind"] == "deliver" and e["text"] == "from-b",
                         "peer message")
            child.stdin.write("leave\n")
            child.stdin.flush()
            rec.wait_for(a, lambda e: e["kind"] == "confchg" and any(
                x[1] == child.pid for x in e["left"]), "peer leave")
            report["peer_events"] = json.loads(child.stdout.readline())
            report["peer_rc"] = child.wait(timeout=WAIT_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        a.leave(group)
        rec.wait_for(a, lambda e: e["kind"] == "confchg" and any(
            x[1] == me for x in e["left"]), "own leave")
        report["membership_after"] = [list(m) for m in a.membership_get(group)]
    report["events"] = rec.events
    print(json.dumps(report))


SEND_BIG = "--no-big" not in sys.argv

if __name__ == "__main__":
    if sys.argv[1] == "--peer":
        peer(sys.argv[2])
    else:
        main(sys.argv[1])
