"""A SAM application for the tests: `python sam_app.py SCENARIO LOGFILE [suffix]`.

Each scenario is a small program written against coroproc.client.sam; it appends one
JSON line per event to LOGFILE (O_APPEND: the supervisor and every instance share it),
so the test reads what happened in which instance, in order. The process's exit status
is the supervisor's (the application's status passed through, as libsam does).
"""
import json
import os
import signal
import sys
import time

from coroproc.client import sam as S

LOG = sys.argv[2]
SUFFIX = sys.argv[3] if len(sys.argv) > 3 else ""


def log(event, **kw):
    line = json.dumps(dict(kw, event=event, pid=os.getpid())) + "\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, line.encode())
    os.close(fd)


def wait_forever():
    while True:
        time.sleep(3600)


def restart_counts():
    sam = S.Sam(5000, S.RESTART)
    instance = sam.register()
    log("instance", n=instance)
    sam.start()
    if instance < 3:
        os._exit(1)                 # dies while started: a failure, restarted
    sam.stop()
    sam.finalize()
    sys.exit(5)                     # ends while stopped: the supervisor quits with 5


def quit_policy():
    S.sam_initialize(5000, S.RECOVERY_POLICY_QUIT)
    instance = S.sam_register()
    log("instance", n=instance)
    S.sam_start()
    os._exit(7)                     # failure under QUIT: supervisor exits with 7


def warn_then_kill():
    sam = S.Sam(300, S.RESTART)
    instance = sam.register()
    log("instance", n=instance)
    if instance == 1:
        sam.warn_signal_set(signal.SIGUSR1)
        signal.signal(signal.SIGUSR1, lambda *_: log("warned", n=instance))
        sam.start()
        wait_forever()              # no health checks: warned, then SIGKILLed
    sam.start()
    sam.hc_send()
    sam.stop()
    sys.exit(0)


def warn_default_term():
    sam = S.Sam(300, S.RESTART)
    instance = sam.register()
    log("instance", n=instance, warn=int(sam.warn_signal))
    if instance == 1:
        sam.start()
        wait_forever()              # the default warn signal (SIGTERM) ends us
    sys.exit(0)


def data_survives():
    sam = S.Sam(5000, S.RESTART)
    instance = sam.register()
    before = sam.data_restore()
    log("instance", n=instance, data=before.decode(), size=sam.data_getsize())
    sam.data_store(f"count={instance}".encode() + b"\0" * instance)
    sam.start()
    if instance < 3:
        os._exit(1)
    sam.data_store(None)
    log("cleared", size=sam.data_getsize())
    sam.stop()
    sys.exit(0)


def hc_callback():
    sam = S.Sam(400, S.RESTART)
    instance = sam.register()
    log("instance", n=instance)
    calls = []

    def check():
        calls.append(1)
        log("cb", n=instance, calls=len(calls))
        return 0 if len(calls) < 3 else 1     # third call reports failure
    if instance == 1:
        sam.hc_callback_register(check)
        sam.start()
        wait_forever()
    sys.exit(0)


def cmap_policy():
    sam = S.Sam(1000, S.QUIT | S.CMAP, suffix=SUFFIX)
    instance = sam.register()
    log("instance", n=instance, supervisor=os.getppid())
    sam.start()
    sam.hc_send()
    log("started")
    # the test looks at cmap, then asks for mark_failed (SIGUSR1) or a clean end (SIGUSR2);
    # handlers only record the wish: SAM calls take a lock the interrupted loop may hold
    wish = []
    signal.signal(signal.SIGUSR1, lambda *_: wish.append("fail"))
    signal.signal(signal.SIGUSR2, lambda *_: wish.append("end"))
    while True:
        time.sleep(0.1)
        if "fail" in wish:
            log("mark_failed")
            sam.mark_failed()
            wait_forever()          # the supervisor kills us
        if "end" in wish:
            sam.stop()
            log("stopped")
            sys.exit(0)
        sam.hc_send()


def quorum_policy():
    sam = S.Sam(2000, S.QUIT | S.QUORUM | S.CMAP, suffix=SUFFIX)
    instance = sam.register()
    log("instance", n=instance, supervisor=os.getppid())
    wish = []
    signal.signal(signal.SIGTERM, lambda *_: wish.append("warned"))
    sam.start()                      # returns once the node is quorate
    log("started")
    while not wish:
        time.sleep(0.2)
        sam.hc_send()
    log("warned")
    sys.exit(3)            # a normal interpreter exit: inherited handles must not close


if __name__ == "__main__":
    globals()[sys.argv[1]]()
