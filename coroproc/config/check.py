"""`coroproc -t -c FILE`: check a configuration the way `corosync -t` does.

Exit status follows Corosync's exec/util.h: 0 (COROSYNC_DONE_EXIT) when the file is
usable, 8 (COROSYNC_DONE_MAINCONFIGREAD) for configuration errors, 7
(COROSYNC_DONE_LOGCONFIGREAD) when the bad key is a logging one (Corosync rejects
those while setting up logging). Warnings are printed either way.
"""
from __future__ import annotations

import sys
from typing import TextIO

from coroproc.config.errors import ConfigParseError
from coroproc.config.loader import load

EXIT_OK = 0
EXIT_LOGCONFIGREAD = 7  # ConfigParseError.exit_status for bad logging values
EXIT_MAINCONFIGREAD = 8  # ... for everything else


def check_main(path: str, nodeid_override: int | None = None,
               out: TextIO = sys.stdout) -> int:
    """Load ``path``, print warnings and the verdict to ``out``, return the exit status."""
    try:
        config, warnings = load(path, nodeid_override)
    except ConfigParseError as exc:
        print(f"error: {exc}", file=out)
        return exc.exit_status
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    local = config.local_node
    name = f" ({local.name})" if local.name else ""
    addrs = ", ".join(f"link {k}: {v}" for k, v in sorted(config.local_addrs.items()))
    print(f"Configuration is OK: cluster {config.cluster_name!r}, transport "
          f"{config.transport}, {len(config.nodes)} nodes, local node id "
          f"{config.local_nodeid}{name} ({addrs}), token {config.totem.effective_token_ms} ms",
          file=out)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """`python -m coroproc.config.check -c FILE [--nodeid N]` until the daemon's -t lands."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m coroproc.config.check",
                                     description="Check a corosync.conf as `corosync -t` does.")
    parser.add_argument("-c", dest="path", default="/etc/corosync/corosync.conf",
                        help="configuration file (default: %(default)s)")
    parser.add_argument("--nodeid", type=int, default=None,
                        help="this node's id when several nodelist entries are local")
    args = parser.parse_args(argv)
    return check_main(args.path, args.nodeid)


if __name__ == "__main__":
    sys.exit(main())
