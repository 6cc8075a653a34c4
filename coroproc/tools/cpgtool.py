"""`coroproc-cpgtool`: corosync-cpgtool's options, output and exit codes, plus --json.

    coroproc-cpgtool [-d delimiter] [-e] [-n] [-h] [--suffix S] [--json]

Lists every CPG group cluster-wide with its members (pid, node id and the node's link
addresses from CFG), or with -n only the group names, byte for byte as
tools/corosync-cpgtool.c of Corosync 3.1.7 prints them: group names are escaped
("\\\\", "\\x%02X" of a signed char, so 0x80..0xFF print as \\xFFFFFF80..) unless -e.
--json prints [{"group", "pid", "nodeid", "addrs"}] (or a list of names with -n);
names are UTF-8 with undecodable bytes as \\x escapes.
"""

import getopt
import json
import os
import sys

from coroproc.client.cpg import ITERATION_ALL, ITERATION_NAME_ONLY, Cpg
from coroproc.ipc.cserror import CsError
from coroproc.tools.cfg_node_addrs import CfgAddrs

EXIT_OK, EXIT_FAILURE = 0, 1


def escape_group(name: bytes, escape: bool) -> bytes:
    if not escape:
        return bytes(name)
    out = bytearray()
    for b in name:
        if 0x20 <= b < 0x7F and b != 0x5C:
            out.append(b)
        elif b == 0x5C:
            out += b"\\\\"
        else:  # fprintf("\\x%02X", c) with a signed char
            out += b"\\x%02X" % (b if b < 0x80 else b + 0xFFFFFF00)
    return bytes(out)


def format_addrs(addrs) -> bytes:
    """fprint_addrs(): skip empty slots, but a space goes before every slot index != 0."""
    out = []
    for i, addr in enumerate(addrs):
        if addr is None:
            continue
        out.append((" " if i != 0 else "") + addr)
    return "".join(out).encode()


def _node_addrs(cfg, nodeid, cache):
    if nodeid not in cache:
        try:
            cache[nodeid] = cfg.node_addrs(nodeid)
        except CsError:
            cache[nodeid] = []  # the C tool prints nothing when the call fails
    return cache[nodeid]


def names_only(cpg, out, delimiter, escape, as_json) -> bool:
    try:
        descriptions = list(cpg.iteration(ITERATION_NAME_ONLY))
    except CsError as exc:
        print(f"Cannot initialize cpg iterator error {exc.code}", file=sys.stderr)
        return False
    if as_json:
        out.write(json.dumps([d.group.decode(errors="backslashreplace")
                              for d in descriptions]).encode() + b"\n")
        return True
    for d in descriptions:
        out.write(escape_group(d.group, escape) + (delimiter or b"\n"))
    if delimiter:
        out.write(b"\n")
    return True


def with_members(cpg, cfg, out, delimiter, escape, as_json) -> bool:
    descriptions, failure = [], None
    try:
        descriptions.extend(cpg.iteration(ITERATION_ALL))  # keeps rows read before a failure
    except CsError as exc:
        if exc.call == "cpg_iteration_initialize":
            print(f"Cannot initialize cpg iterator error {exc.code}", file=sys.stderr)
            return False
        failure = exc  # the C tool has printed what it got so far, then complains
    cache, rows, old_group = {}, [], None
    if not as_json:
        out.write(b"GRP_NAME%sPID%sNODEID\n" % (delimiter, delimiter) if delimiter else
                  b"Group Name\t%10s\t%10s\n" % (b"PID", b"Node ID"))
    for d in descriptions:
        if as_json:
            rows.append({"group": d.group.decode(errors="backslashreplace"), "pid": d.pid,
                         "nodeid": d.nodeid,
                         "addrs": [a for a in _node_addrs(cfg, d.nodeid, cache) if a]})
        elif delimiter:
            out.write(escape_group(d.group, escape)
                      + b"%s%u%s%u\n" % (delimiter, d.pid, delimiter, d.nodeid))
        else:
            if d.group != old_group:
                out.write(escape_group(d.group, escape) + b"\n")
                old_group = d.group
            out.write(b"\t\t%10u\t%10u (" % (d.pid, d.nodeid)
                      + format_addrs(_node_addrs(cfg, d.nodeid, cache)) + b")\n")
    if as_json:
        out.write(json.dumps(rows).encode() + b"\n")
    if failure is not None:
        out.flush()
        print(f"cpg iteration error {failure.code}", file=sys.stderr)
        return False
    return True


def usage(prog: str) -> None:
    print(f"{prog} [-d delimiter] [-e] [-n] [-h]\n")
    print("A tool for displaying cpg groups and members.")
    print("options:")
    print("\t-d\tDelimiter between fields.")
    print("\t-e\tDon't escape unprintable characters in group name.")
    print("\t-n\tDisplay only all existing group names.")
    print("\t-h\tDisplay this help.")
    print("\t--suffix S\tIPC service-name suffix (coroproc { service_suffix }).")
    print("\t--json\tMachine-readable output.")


def run(argv, prog="coroproc-cpgtool") -> int:
    try:
        pairs, _args = getopt.getopt(argv, "hd:ne", ["json", "suffix="])
    except getopt.GetoptError as exc:
        what = "option requires an argument" if "requires" in exc.msg else "invalid option"
        print(f"{prog}: {what} -- '{exc.opt}'", file=sys.stderr)
        return EXIT_FAILURE
    delimiter, escape, names, as_json, suffix = b"", True, False, False, ""
    for opt, val in pairs:
        if opt == "-d":
            delimiter = os.fsencode(val)[:1]
        elif opt == "-n":
            names = True
        elif opt == "-e":
            escape = False
        elif opt == "-h":
            usage(prog)
            return EXIT_OK
        elif opt == "--json":
            as_json = True
        elif opt == "--suffix":
            suffix = val
    try:
        cpg = Cpg(suffix=suffix)
    except CsError as exc:
        print(f"Could not initialize corosync cpg API error {exc.code}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        cfg = CfgAddrs(suffix=suffix)
    except CsError as exc:
        cpg.close()
        print(f"Could not initialize corosync configuration API error {exc.code}",
              file=sys.stderr)
        return EXIT_FAILURE
    out = sys.stdout.buffer
    try:
        if names:
            ok = names_only(cpg, out, delimiter, escape, as_json)
        else:
            ok = with_members(cpg, cfg, out, delimiter, escape, as_json)
        out.flush()
    finally:
        cpg.close()
        cfg.close()
    return EXIT_OK if ok else EXIT_FAILURE


def main() -> None:
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "coroproc-cpgtool"
    sys.exit(run(sys.argv[1:], prog))


if __name__ == "__main__":
    main()
