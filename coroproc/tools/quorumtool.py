"""`coroproc-quorumtool`: corosync-quorumtool's options, output and exit codes, plus --json.

    coroproc-quorumtool [-s|-l|-m|-e N|-v N [-n nodeid]|-f] [-a] [-p] [-H] [-i]
                        [-o a|n|i] [-V] [-h] [--suffix S] [--json]

Prints what tools/corosync-quorumtool.c of Corosync 3.1.7 prints: "Quorum information"
(date, provider, nodes, node id, ring id, quorate), "Votequorum information" (expected,
highest expected, total votes, quorum, flags) and "Membership information" (node id,
votes, qdevice state, name). Exit status: 0 quorate, 2 not quorate (-s), 1 on error.
--json prints the same facts as one JSON object (with -m, one object per change).
"""

import getopt
import json
import socket
import sys
import time

from coroproc.client.cmap import Cmap
from coroproc.client.quorum import QUORUM_FREE, Quorum
from coroproc.client.votequorum import Votequorum
from coroproc.ipc import votequorum_structs as V
from coroproc.ipc.cserror import CS_TRACK_CHANGES, CS_TRACK_CURRENT, CsError, strerror
from coroproc.tools.cfg_node_addrs import CfgAddrs

EXIT_OK, EXIT_FAILURE, EXIT_NOT_QUORATE = 0, 1, 2
VERSION = "3.1.7 (coroproc)"
FLAG_WORDS = ((V.INFO_TWONODE, "2Node"), (V.INFO_QUORATE, "Quorate"),
              (V.INFO_WAIT_FOR_ALL, "WaitForAll"), (V.INFO_LAST_MAN_STANDING, "LastManStanding"),
              (V.INFO_AUTO_TIE_BREAKER, "AutoTieBreaker"),
              (V.INFO_ALLOW_DOWNSCALE, "AllowDownscale"), (V.INFO_QDEVICE_REGISTERED, "Qdevice"))
USAGE = """usage: 
{0} <options>

  options:

  -s             show quorum status
  -m             constantly monitor quorum status
  -l             list nodes
  -a             show all names or addresses for each node
  -p             when used with -s or -l, generates machine parsable output
  -v <votes>     change the number of votes for a node (*)
  -n <nodeid>    optional nodeid of node for -v
  -e <expected>  change expected votes for the cluster (*)
  -H             show nodeids in hexadecimal rather than decimal
  -i             show node IP addresses instead of the resolved name
  -o <a|n|i>     order by [a] IP address (default), [n] name, [i] nodeid
  -f             forcefully unregister a quorum device *DANGEROUS* (*)
  -h             show this help text
  -V             show version and exit
  --json         print the status as JSON (coroproc addition)
  --suffix S     IPC service name suffix of the node (coroproc addition)

  (*) Starred items only work if votequorum is the quorum provider for corosync
"""


class Tool:
    def __init__(self, opts):
        self.o = opts
        sfx = opts["suffix"]
        self.cmap = Cmap(suffix=sfx)
        self.view = []
        self.quorate = False
        self.ring_seq = 0
        self.ring_rep = 0
        self.called = self.vq_called = False
        self.q = Quorum(notify_fn=self._q_notify, suffix=sfx)
        self.cfg = CfgAddrs(suffix=sfx)
        self.v = None
        self.our_nodeid = 0
        if self.provider() == "corosync_votequorum":
            self.v = Votequorum(nodelist_fn=self._vq_nodelist, suffix=sfx)
            self.our_nodeid = self.cmap.get("runtime.votequorum.this_node_id")[1]

    def close(self):
        for h in (self.cmap, self.q, self.cfg, self.v):
            if h is not None:
                h.close()

    def provider(self):
        if self.q.quorum_type == QUORUM_FREE:
            return None
        try:
            return self.cmap.get("quorum.provider")[1]
        except CsError:
            return None

    def _q_notify(self, _h, quorate, ring_seq, view):
        self.called, self.quorate, self.ring_seq, self.view = True, quorate, ring_seq, view

    def _vq_nodelist(self, _h, _context, ring_id, _nodeids):
        self.ring_rep, self.vq_called = ring_id[0], True

    # ---- names -------------------------------------------------------------------------
    def nodelist_name(self, nodeid):
        positions = {}
        for key, _t, _l in self.cmap.iter("nodelist.node."):
            parts = key.split(".")
            if len(parts) == 4 and parts[3] == "nodeid":
                positions[parts[2]] = key
        for pos, key in positions.items():
            try:
                if self.cmap.get(key)[1] == nodeid:
                    return self.cmap.get(f"nodelist.node.{pos}.name")[1]
            except CsError:
                continue
        return ""

    def node_name(self, nodeid):
        parts, start = [], 0
        if not self.o["ip"]:
            name = self.nodelist_name(nodeid)
            if name:
                parts, start = [name], 1
        try:
            addrs = self.cfg.node_addrs(nodeid)
        except CsError as exc:
            sys.stderr.write(f"Unable to get node address for nodeid {nodeid}: "
                             f"{strerror(exc.error)}\n")
            return ""
        count = len(addrs) if self.o["all"] else 1
        for addr in addrs[start:count]:
            if addr is None:
                continue
            flags = socket.NI_NUMERICHOST if self.o["ip"] else 0
            try:
                parts.append(socket.getnameinfo((addr, 0), flags)[0])
            except OSError:
                parts.append(addr)
        return ", ".join(parts)

    # ---- gathering ---------------------------------------------------------------------
    def gather(self, track_flags=CS_TRACK_CURRENT):
        self.called = False
        self.q.trackstart(track_flags)
        while not self.called:
            self.q.dispatch(1)
        if track_flags == CS_TRACK_CURRENT:
            self.q.trackstop()
        if self.v is not None:
            self.vq_called = False
            self.v.trackstart(0, track_flags)
            while not self.vq_called:
                self.v.dispatch(1)
            # CS_TRACK_CURRENT registers no tracker: there is nothing to stop (as the C tool)

    def nodes(self):
        rows = []
        for nodeid in self.view:
            info = None
            if self.v is not None:
                try:
                    info = self.v.getinfo(nodeid)
                except CsError:
                    print(f"Unable to get node {nodeid} info")
            rows.append({"nodeid": nodeid, "info": info, "name": self.node_name(nodeid)})
        order = self.o["order"]
        if order == "i":
            rows.sort(key=lambda r: r["nodeid"])
        elif order == "n":
            rows.sort(key=lambda r: r["name"])
        return rows


def pad(text) -> str:
    return f"{text:>10} "


def fmt_id(nodeid, hexa) -> str:
    return f"0x{nodeid:08x} " if hexa else pad(nodeid)


def print_nodes(tool, rows):
    o = tool.o
    show_qdev = any(r["info"] and r["info"].flags & V.INFO_QDEVICE_REGISTERED for r in rows)
    print("\nMembership information")
    print("----------------------")
    head = pad("Nodeid")
    if tool.v is not None:
        head += pad("Votes")
        if show_qdev or o["parsable"]:
            head += pad("Qdevice")
    print(head + "Name")
    our_flags, first = 0, rows[0]["info"] if rows else None
    for r in rows:
        line = fmt_id(r["nodeid"], o["hex"])
        info = r["info"]
        if tool.v is not None:
            line += pad(info.node_votes if info else 0)
            if show_qdev or o["parsable"]:
                if info and info.flags & V.INFO_QDEVICE_REGISTERED:
                    f = info.flags
                    line += pad(",".join(("A" if f & V.INFO_QDEVICE_ALIVE else "NA",
                                          "V" if f & V.INFO_QDEVICE_CAST_VOTE else "NV",
                                          "MW" if f & V.INFO_QDEVICE_MASTER_WINS else "NMW")))
                else:
                    line += pad("NR")
        line += r["name"]
        if r["nodeid"] == tool.our_nodeid:
            line += " (local)"
            our_flags = info.flags if info else 0
        print(line)
    if show_qdev and first is not None:
        cast = our_flags & V.INFO_QDEVICE_CAST_VOTE
        line = fmt_id(0, o["hex"]) + pad(first.qdevice_votes if cast else 0)
        line += f"           {first.qdevice_name}"
        print(line if cast else line + f" (votes {first.qdevice_votes})")


def print_status(tool, rows, info):
    o = tool.o
    print("Quorum information")
    print("------------------")
    print(f"Date:             {time.ctime()}")
    print(f"Quorum provider:  {tool.provider() or 'Not configured'}")
    print(f"Nodes:            {len(tool.view)}")
    print("Node ID:          " + (f"0x{tool.our_nodeid:08x}" if o["hex"] else f"{tool.our_nodeid}"))
    if tool.v is not None:
        print(f"Ring ID:          {tool.ring_rep}.{tool.ring_seq:x}")
    else:
        print(f"Ring ID:          {tool.ring_seq:x}")
    print(f"Quorate:          {'Yes' if tool.quorate else 'No'}")
    if tool.v is None:
        return
    print("\nVotequorum information")
    print("----------------------")
    print(f"Expected votes:   {info.node_expected_votes}")
    print(f"Highest expected: {info.highest_expected}")
    print(f"Total votes:      {info.total_votes}")
    print(f"Quorum:           {info.quorum} "
          f"{' ' if info.flags & V.INFO_QUORATE else 'Activity blocked'}")
    print("Flags:            " + "".join(w + " " for bit, w in FLAG_WORDS if info.flags & bit))
    print_nodes(tool, rows)


def as_json(tool, rows, info) -> dict:
    out = {"quorum_provider": tool.provider(), "nodes": len(tool.view),
           "node_id": tool.our_nodeid, "ring_id": [tool.ring_rep, tool.ring_seq],
           "quorate": tool.quorate,
           "members": [{"nodeid": r["nodeid"], "name": r["name"],
                        "votes": r["info"].node_votes if r["info"] else None,
                        "local": r["nodeid"] == tool.our_nodeid} for r in rows]}
    if info is not None:
        out["votequorum"] = {
            "expected_votes": info.node_expected_votes, "highest_expected": info.highest_expected,
            "total_votes": info.total_votes, "quorum": info.quorum,
            "flags": [w for bit, w in FLAG_WORDS if info.flags & bit],
            "qdevice_name": info.qdevice_name, "qdevice_votes": info.qdevice_votes}
    return out


def show(tool, status: bool) -> int:
    tool.gather()
    rows = tool.nodes()
    info = tool.v.getinfo(tool.our_nodeid) if tool.v is not None else None
    if tool.o["json"]:
        print(json.dumps(as_json(tool, rows, info), indent=2))
    elif status:
        print_status(tool, rows, info)
    else:
        print_nodes(tool, rows)
    if not status:
        return EXIT_OK
    return EXIT_OK if tool.quorate else EXIT_NOT_QUORATE


def monitor(tool) -> int:
    if tool.q.quorum_type == QUORUM_FREE:
        print("\nQuorum is not configured - cannot monitor")
        return show(tool, True)
    tool.gather(CS_TRACK_CHANGES)
    while True:
        rows = tool.nodes()
        info = tool.v.getinfo(tool.our_nodeid) if tool.v is not None else None
        if tool.o["json"]:
            print(json.dumps(as_json(tool, rows, info)), flush=True)
        else:
            print_status(tool, rows, info)
            print(flush=True)
        tool.called = False
        while not tool.called:
            tool.q.dispatch(1)
        if tool.v is not None:
            tool.vq_called = False
            while not tool.vq_called:
                tool.v.dispatch(1)


def change(tool, opts) -> int:
    what = opts["command"]
    if tool.v is None:
        noun = {"votes": "change node votes", "expected": "change expected votes",
                "unregister": "unregister quorum device"}[what]
        sys.stderr.write(f"You cannot {noun}, corosync is not using votequorum\n")
        return EXIT_FAILURE
    try:
        if what == "votes":
            nodeid = opts["nodeid"] if opts["nodeid"] is not None else tool.our_nodeid
            try:
                tool.v.setvotes(nodeid, opts["value"])
            except CsError as exc:
                sys.stderr.write(f"Unable to set votes {opts['value']} for nodeid: {nodeid}: "
                                 f"{strerror(exc.error)}\n")
                return EXIT_FAILURE
        elif what == "expected":
            try:
                tool.v.setexpected(opts["value"])
            except CsError as exc:
                sys.stderr.write(f"Unable to set expected votes: {strerror(exc.error)}\n")
                return EXIT_FAILURE
        else:
            info = tool.v.getinfo(tool.our_nodeid)
            if info.flags & V.INFO_QDEVICE_REGISTERED:
                tool.v.qdevice_unregister(info.qdevice_name)
    except CsError as exc:
        sys.stderr.write(f"Unable to unregister quorum device: {strerror(exc.error)}\n")
        return EXIT_FAILURE
    return EXIT_OK


def parse(argv):
    opts = {"command": "status", "all": False, "parsable": False, "hex": False, "ip": False,
            "order": "a", "nodeid": None, "value": 0, "json": False, "suffix": ""}
    try:
        pairs, _rest = getopt.getopt(argv, "VHaslpmfe:v:hin:o:", ["json", "suffix="])
    except getopt.GetoptError as exc:
        sys.stderr.write(f"{exc}\n" + USAGE.format("coroproc-quorumtool"))
        raise SystemExit(EXIT_FAILURE)
    for opt, arg in pairs:
        if opt in ("-e", "-v", "-n"):
            low = 0 if opt == "-v" else 1
            if not arg.isdigit() or int(arg) < low or int(arg) > 2**31 - 1:
                msg = {"-e": "New expected votes value was not valid, try a positive number",
                       "-v": "New votes value was not valid, try a positive number or zero",
                       "-n": "The nodeid was not valid, try a positive number"}[opt]
                sys.stderr.write(msg + "\n")
                raise SystemExit(EXIT_FAILURE)
            if opt == "-n":
                opts["nodeid"] = int(arg)
            else:
                opts["value"] = int(arg)
                opts["command"] = "expected" if opt == "-e" else "votes"
        elif opt == "-o":
            if arg not in ("a", "n", "i"):
                sys.stderr.write("Invalid ordering option. valid orders are a(address), "
                                 "i(node ID) or n(name)\n")
                raise SystemExit(EXIT_FAILURE)
            opts["order"] = arg
        elif opt == "-V":
            print(f"corosync-quorumtool version: {VERSION}")
            raise SystemExit(EXIT_OK)
        elif opt == "-h":
            print(USAGE.format("coroproc-quorumtool"), end="")
            raise SystemExit(EXIT_OK)
        else:
            key = {"-f": ("command", "unregister"), "-s": ("command", "status"),
                   "-a": ("all", True), "-m": ("command", "monitor"), "-i": ("ip", True),
                   "-H": ("hex", True), "-l": ("command", "nodes"), "-p": ("parsable", True),
                   "--json": ("json", True)}.get(opt)
            if opt == "--suffix":
                opts["suffix"] = arg
            elif key is not None:
                opts[key[0]] = key[1]
    return opts


def main(argv=None) -> int:
    opts = parse(sys.argv[1:] if argv is None else argv)
    try:
        tool = Tool(opts)
    except CsError as exc:
        sys.stderr.write(f"Cannot initialize the quorum tool's services: {exc}\n")
        return EXIT_FAILURE
    try:
        cmd = opts["command"]
        if cmd in ("status", "nodes"):
            return show(tool, cmd == "status")
        if cmd == "monitor":
            return monitor(tool)
        return change(tool, opts)
    except CsError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    finally:
        tool.close()


if __name__ == "__main__":
    sys.exit(main())
