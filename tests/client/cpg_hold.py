"""Join CPG groups and hold them until stdin closes (for the cpgtool comparisons).

argv: group names with Python backslash escapes ("b\\x80" is the byte 0x80). Prints
"held <pid>" once every join is confirmed by its own confchg.
"""

import os
import select
import sys
import time

from coroproc.client import DISPATCH_ALL, Cpg

WAIT_S = 30.0


def main(names):
    joined, handles = set(), []
    on_confchg = lambda h, group, members, left, joined_list: joined.update(
        group for a in joined_list if a.pid == os.getpid())
    for text in names:
        group = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
        handle = Cpg(confchg_fn=on_confchg)
        handle.join(group)
        handles.append((group, handle))
    deadline = time.monotonic() + WAIT_S
    while len(joined) < len(handles) and time.monotonic() < deadline:
        ready, _, _ = select.select([h.fileno() for _, h in handles], [], [], 0.5)
        for _, handle in handles:
            if handle.fileno() in ready:
                handle.dispatch(DISPATCH_ALL)
    if len(joined) < len(handles):
        sys.exit(f"joins not confirmed within {WAIT_S} s: {joined}")
    print(f"held {os.getpid()}", flush=True)
    sys.stdin.read()
    for _, handle in handles:
        handle.finalize()


if __name__ == "__main__":
    main(sys.argv[1:])
