"""libcfg calls through coroproc.client.cfg against a live single-node daemon, run inside
its namespaces by test_cfg_client.py; prints one JSON report of what came back.

The shutdown votes run trackers in threads (each with its own handle, dispatching until
told to stop); every wait is bounded so a broken daemon fails the test instead of
hanging it. The node is never actually shut down here (tests/cfg/test_cfg_netns.py does).
"""

import json
import select
import sys
import threading
import time

from coroproc.client.cfg import (
    SHUTDOWN_FLAG_REQUEST,
    SHUTDOWN_REPLY_NO,
    SHUTDOWN_REPLY_YES,
    Cfg,
)
from coroproc.client.cmap import UINT32, Cmap
from coroproc.ipc.cserror import CS_DISPATCH_ALL, CsError

WAIT_S = 30.0
SHUTDOWN_TIMEOUT_MS = 1000


def error_name(fn, *args):
    try:
        fn(*args)
    except CsError as exc:
        return exc.name
    return "CS_OK"


class Tracker(threading.Thread):
    """A trackstart'ed handle that answers every shutdown callback with `answer` (None:
    stays silent) and records the flags it was called with."""

    def __init__(self, answer):
        super().__init__(daemon=True)
        self.answer, self.seen, self.stop = answer, [], threading.Event()
        self.cfg = Cfg(shutdown_callback=self._called)
        self.cfg.trackstart(0)

    def _called(self, cfg, flags):
        self.seen.append(flags)
        if self.answer is not None:
            cfg.replyto_shutdown(self.answer)

    def run(self):
        deadline = time.monotonic() + WAIT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            select.select([self.cfg.fileno()], [], [], 0.05)
            self.cfg.dispatch(CS_DISPATCH_ALL)

    def finish(self):
        self.stop.set()
        self.join(WAIT_S)
        self.cfg.trackstop()
        self.cfg.finalize()


def wait_seen(tracker, count):
    deadline = time.monotonic() + WAIT_S
    while len(tracker.seen) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def vote(answer, callbacks_expected, flags=SHUTDOWN_FLAG_REQUEST):
    """try_shutdown's answer and the flags of every callback the tracker got (it waits
    for `callbacks_expected` of them: the timeout's event comes after the answer)."""
    tracker = Tracker(answer)
    tracker.start()
    with Cfg() as asker:
        result = error_name(asker.try_shutdown, flags)
    wait_seen(tracker, callbacks_expected)
    tracker.finish()
    return result, tracker.seen


def busy_while_pending():
    """A second try_shutdown while the first waits for a silent tracker: CS_ERR_EXIST."""
    tracker = Tracker(None)
    tracker.start()
    first = {}
    with Cfg() as a1, Cfg() as a2:
        t = threading.Thread(target=lambda: first.update(r=error_name(a1.try_shutdown, 0)))
        t.start()
        wait_seen(tracker, 1)
        second = error_name(a2.try_shutdown, 0)
        t.join(WAIT_S)
    tracker.finish()
    return first.get("r"), second


def main():
    report = {}
    with Cfg() as cfg:
        local = cfg.local_get()
        report["local"] = local
        report["addrs"] = cfg.node_addrs(0)
        st = cfg.node_status_get(local)
        report["status"] = [st.nodeid, st.reachable, [list(ln) for ln in st.links if ln.enabled]]
        report["unknown_status"] = list(cfg.node_status_get(4242)[:7])
        report["ring"] = cfg.ring_status_get()
        report["kill_unknown"] = error_name(cfg.kill_node, 4242, "test")
        report["reply_no_vote"] = error_name(cfg.replyto_shutdown, SHUTDOWN_REPLY_YES)
        report["reopen"] = error_name(cfg.reopen_log_files)
        report["reload"] = error_name(cfg.reload_config)
    with Cmap() as cmap:
        cmap.set("cfg.shutdown_timeout", SHUTDOWN_TIMEOUT_MS, UINT32)
    report["veto"] = vote(SHUTDOWN_REPLY_NO, 1)
    report["silent"] = vote(None, 1)
    report["exist"] = busy_while_pending()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
