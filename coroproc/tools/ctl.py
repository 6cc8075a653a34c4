"""`coroproc-ctl`: ask a running node's supervisor over its control socket.

    coroproc-ctl [-c FILE] [--nodeid N] [--json] status
    coroproc-ctl [-c FILE] [--nodeid N] restart ROLE      (ring, net0, load, …)

`status` prints the node, each child's pid and restart count, and the ring's membership
as it reports them. `restart` stops one child; the supervisor starts it again (an
engine restarts without the node leaving the ring; the ring process rejoins).
"""
from __future__ import annotations

import argparse
import os
import sys

import orjson
import zmq

from coroproc.config.errors import ConfigParseError
from coroproc.config.loader import load
from coroproc.supervisor.control import control_endpoint
from coroproc.supervisor.placement import cpu_list
from coroproc.supervisor.plan import run_dir_of

REPLY_TIMEOUT_MS = 5000


def ask(run_dir: str, msg: dict) -> dict:
    if not os.path.exists(os.path.join(run_dir, "control.sock")):
        raise ConnectionError(f"no coroproc node is running here (no {run_dir}/control.sock)")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, f"ctl-{os.getpid()}".encode())
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(control_endpoint(run_dir))
    try:
        sock.send(orjson.dumps(msg))
        if not sock.poll(REPLY_TIMEOUT_MS):
            raise TimeoutError(f"the supervisor at {run_dir} did not answer in "
                               f"{REPLY_TIMEOUT_MS} ms")
        return orjson.loads(sock.recv())
    finally:
        sock.close()


def _print_status(st: dict) -> None:
    ring = st["children"].get("ring", {}).get("counters", {})
    print(f"node {st['nodeid']} of cluster '{st['cluster']}' (supervisor pid {st['pid']}): "
          f"{'ready' if st['ready'] else 'not ready'}")
    if ring.get("ring_id"):
        rep, seq = ring["ring_id"]
        print(f"ring id {rep:x}.{seq:x}, members: {' '.join(map(str, ring.get('members', [])))}")
    for role, c in st["children"].items():
        cpus = c.get("cpus")
        where = f"  CPU {cpu_list(cpus)}" if cpus else ""
        sched = f"  {c['sched']}" if c.get("sched") else ""
        if c.get("slice_ns") and not c.get("sched", "").startswith("SCHED_"):
            sched += f"  slice {c['slice_ns'] / 1000:.0f} us"   # EEVDF; RR tasks have none
        print(f"  {c['title']:<24} pid {c['pid']:<8} restarts {c['restarts']}{where}{sched}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coroproc-ctl", description=__doc__.splitlines()[0])
    p.add_argument("-c", dest="config", default="/etc/corosync/corosync.conf")
    p.add_argument("--nodeid", type=int, default=None)
    p.add_argument("--json", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status")
    r = sub.add_parser("restart")
    r.add_argument("role")
    a = p.parse_args(argv)
    try:
        cfg, _ = load(a.config, a.nodeid)
        msg = {"op": "status"} if a.cmd == "status" else {"op": "restart", "role": a.role}
        reply = ask(run_dir_of(cfg), msg)
    except (ConfigParseError, ConnectionError, TimeoutError) as exc:
        print(f"coroproc-ctl: {exc}", file=sys.stderr)
        return 1
    if a.json:
        print(orjson.dumps(reply, option=orjson.OPT_INDENT_2).decode())
    elif not reply.get("ok"):
        print(f"coroproc-ctl: {reply.get('error')}", file=sys.stderr)
    elif a.cmd == "status":
        _print_status(reply)
    else:
        print(f"restarting {reply['restarting']}")
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
