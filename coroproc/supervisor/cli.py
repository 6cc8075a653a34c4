"""`coroproc`: the node daemon's command line, with `corosync`'s flags.

    coroproc [-f] [-c FILE] [-t] [-v] [-l PIDFILE] [--nodeid N]
             [--workload RATE] [--workload-bytes N] [--event-log PATH]

-c/-f/-t/-v are Corosync's; -l names a pid file; --nodeid picks the local node when several
nodelist addresses are local (several nodes on one host); --workload runs the `load`
engine (RATE messages/s, written to --event-log as JSON lines for the EVS checker).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


DEFAULT_CONFIG = "/etc/corosync/corosync.conf"
VERSION = "0.1.0"
EXIT_LOG_CONFIG = 7      # COROSYNC_DONE_LOGCONFIGREAD
EXIT_CONFIG = 8          # COROSYNC_DONE_MAINCONFIGREAD
EXIT_ALREADY_RUNNING = 10  # COROSYNC_DONE_ALREADY_RUNNING


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coroproc", description="Corosync-compatible cluster engine")
    p.add_argument("-c", dest="config", default=DEFAULT_CONFIG, help="Corosync config file path")
    p.add_argument("-f", dest="foreground", action="store_true", help="Start in foreground")
    p.add_argument("-t", dest="test", action="store_true", help="Test configuration and exit")
    p.add_argument("-v", dest="version", action="store_true", help="Display version and exit")
    p.add_argument("-l", dest="pidfile", default=None, help="pid file (default: <run_dir>/coroproc.pid)")
    p.add_argument("--nodeid", type=int, default=None,
                   help="the local node's id (when several nodelist addresses are local)")
    p.add_argument("--workload", type=float, default=None, metavar="RATE",
                   help="run the load engine at RATE messages/s")
    p.add_argument("--workload-bytes", type=int, default=64, metavar="N")
    p.add_argument("--event-log", default=None, metavar="PATH",
                   help="JSON-lines event log of the load engine (for the EVS checker)")
    return p


def _daemonize() -> None:
    """Corosync's background mode: detach from the terminal and the session."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        print(f"coroproc Cluster Engine, version '{VERSION}' (Corosync 3.1 compatible)")
        return 0
    from coroproc.config.check import check_main
    if args.test:
        return check_main(args.config, args.nodeid)
    from coroproc.config.errors import ConfigParseError
    from coroproc.config.loader import load
    try:
        cfg, warnings = load(args.config, args.nodeid)
    except ConfigParseError as exc:
        print(f"coroproc: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for w in warnings:
        print(f"coroproc: warning: {w}", file=sys.stderr)
    from coroproc.logsys import Log
    from .daemon import AlreadyRunning, Supervisor
    from .placement import PlacementError
    from .plan import LinkUnavailable, build_plan
    engines, options = [], {}
    if args.workload is not None:
        engines.append("load")
        options["load"] = {"rate_msgs_per_s": args.workload, "msg_bytes": args.workload_bytes,
                           "event_log": args.event_log}
    from coroproc.engineprocs.registry import EngineLoadError
    from coroproc.logsys import LogConfigError
    try:
        plan = build_plan(cfg, time.time_ns() // 1000, foreground=args.foreground,
                          engines=engines, engine_options=options)
    except (EngineLoadError, LinkUnavailable, PlacementError) as exc:
        print(f"coroproc: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except LogConfigError as exc:
        print(f"coroproc: {exc}", file=sys.stderr)
        return EXIT_LOG_CONFIG
    os.makedirs(plan.state_dir, exist_ok=True)
    if not args.foreground:
        _daemonize()
    try:
        log = Log(plan.log)
    except LogConfigError as exc:       # e.g. a logfile that cannot be opened
        print(f"coroproc: {exc}", file=sys.stderr)
        return EXIT_LOG_CONFIG
    pidfile = args.pidfile or os.path.join(plan.run_dir, "coroproc.pid")
    try:
        return Supervisor(plan, log, pidfile).run()
    except AlreadyRunning as exc:
        log.error("MAIN", str(exc))
        if not log.settings.to_stderr:
            print(f"coroproc: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING


if __name__ == "__main__":
    sys.exit(main())
