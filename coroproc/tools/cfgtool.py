"""`coroproc-cfgtool`: corosync-cfgtool's options, output and exit codes, plus --json.

    coroproc-cfgtool [[-i <interface ip>] [-b] -s] [-n] [-R] [-L] [-k nodeid] [-a nodeid]
                     [-h] [-H [--force]] [--suffix S] [--json]

Byte for byte as tools/corosync-cfgtool.c of Corosync 3.1.7 prints: -s link status per
link (the node list from cmap nodelist.node.N.nodeid, each node's status from
corosync_cfg_node_status_get), -b brief digits, -n per-node view, -R reload ("Done", or
the cs_error number as exit code), -L reopen logs, -k kill node, -a addresses, -H
shut down (REQUEST; --force: REGARDLESS; CS_ERR_TRY_AGAIN retried 30 times a second
apart). As in 3.1.7, -i is accepted and ignored and the last action given wins.
--json prints the same facts as one JSON object.
"""
from __future__ import annotations

import getopt
import json
import sys
import time

from coroproc.client.cfg import (
    SHUTDOWN_FLAG_REGARDLESS,
    SHUTDOWN_FLAG_REQUEST,
    Cfg,
    NodeStatus,
)
from coroproc.client.cmap import Cmap
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CsError, name_of, strerror

EXIT_OK, EXIT_FAILURE = 0, 1
UINT_MAX = 2**32 - 1
TRY_AGAIN_REPEATS = 30          # cs_repeat(result, 30, ...) in shutdown_do
TRY_AGAIN_PAUSE_S = 1.0
USAGE = """corosync-cfgtool [[-i <interface ip>] [-b] -s] [-R] [-L] [-k nodeid] [-a nodeid] [-h] [-H]

A tool for displaying and configuring active parameters within corosync.
options:
\t-i\tFinds only information about the specified interface IP address or link id when used with -s..
\t-s\tDisplays the status of the current links on this node.
\t-n\tDisplays the status of the connected nodes and their links.
\t-b\tDisplays the brief status of the current links on this node when used with -s.
\t-R\tTell all instances of corosync in this cluster to reload corosync.conf.
\t-L\tTell corosync to reopen all logging files.
\t-k\tKill a node identified by node id.
\t-a\tDisplay the IP address(es) of a node
\t-h\tPrint basic usage.
\t-H\tShutdown corosync cleanly on this node.
\t\t--force will shut down corosync regardless of daemon vetos
"""


class ToolExit(Exception):
    def __init__(self, code: int, stderr: str = ""):
        super().__init__(stderr)
        self.code, self.stderr = code, stderr


def _connect_cfg(suffix: str, error_by_name: bool = False) -> Cfg:
    """-R and -L print the error as cs_strerror, the other actions as a number."""
    try:
        return Cfg(suffix=suffix)
    except CsError as exc:
        shown = strerror(exc.code) if error_by_name else str(exc.code)
        raise ToolExit(EXIT_FAILURE, f"Could not initialize corosync configuration API "
                                     f"error {shown}\n") from None


# ---- -s / -n -------------------------------------------------------------------------------
def gather(cfg: Cfg, cmap: Cmap) -> dict:
    """What nodestatusget_do reads: transport, local id, sorted node ids, link transports
    and every node's status (None where the call failed, with its error for stderr)."""
    try:
        transport = cmap.get_string("totem.transport")
    except CsError:
        transport = "knet"
    knet = transport not in ("udpu", "udp")
    try:
        local = cfg.local_get()
    except CsError as exc:
        raise ToolExit(EXIT_FAILURE, f"Could not get the local node id, the error is: "
                                     f"{exc.code}\n") from None
    nodeids = []
    for entry in cmap.iter("nodelist.node."):
        parts = entry.key.split(".")
        if len(parts) == 4 and parts[3] == "nodeid" and parts[2].isdigit():
            try:
                nodeids.append(cmap.get_uint32(entry.key))
            except CsError:
                pass
    if not nodeids:
        raise ToolExit(EXIT_FAILURE, "No nodes found in nodelist\n")
    link_transport = ["udp" if knet else ""] * 8
    for entry in cmap.iter("totem.interface."):
        parts = entry.key.split(".")
        if len(parts) == 4 and parts[3] == "knet_transport" and parts[2].isdigit() \
                and int(parts[2]) < 8:
            try:
                link_transport[int(parts[2])] = cmap.get_string(entry.key)
            except CsError:
                pass
    statuses, errors = {}, {}
    for nodeid in sorted(nodeids):
        try:
            statuses[nodeid] = cfg.node_status_get(nodeid)
        except CsError as exc:
            statuses[nodeid], errors[nodeid] = None, exc.code
    return {"transport": transport, "knet": knet, "local": local, "nodeids": sorted(nodeids),
            "link_transport": link_transport, "status": statuses, "errors": errors}


def format_links(facts: dict, brief: bool) -> tuple[str, str]:
    """-s output and its stderr lines."""
    out = [f"Local node ID {facts['local']}, transport {facts['transport']}\n"]
    err = [f"Could not get the node status for nodeid {n}, the error is: {code}\n"
           for n, code in facts["errors"].items()]
    ids = facts["nodeids"]
    info = [facts["status"][n] or NodeStatus(0) for n in ids]
    local_i = other_i = 0
    for i, n in enumerate(ids):
        if n == facts["local"]:
            local_i = i
        else:
            other_i = i
    for link in range(8):
        if not info[other_i].links[link].enabled:
            continue
        out.append(f"LINK ID {link} {facts['link_transport'][link]}\n")
        out.append(f"\taddr\t= {info[other_i].links[link].src_ipaddr}\n")
        if brief:
            chars = ["n" if j == local_i else
                     chr(int(st.links[link].enabled) + (int(st.links[link].connected) << 1) + 48)
                     for j, st in enumerate(info)]
            out.append(f"\tstatus\t= {''.join(chars)}\n")
        else:
            out.append("\tstatus:\n")
            for j, st in enumerate(info):
                state = ("localhost" if j == local_i else
                         "connected" if st.links[link].connected else "disconnected")
                out.append(f"\t\tnodeid: {st.nodeid:10d}:\t{state}\n")
    return "".join(out), "".join(err)


def format_nodes(facts: dict) -> str:
    """-n output (Corosync built without knet's onwire version prints no onwire part;
    it is knet-only anyway)."""
    out = [f"Local node ID {facts['local']}, transport {facts['transport']}\n"]
    for nodeid in facts["nodeids"]:
        st = facts["status"][nodeid]
        if st is None or not st.reachable or st.nodeid == facts["local"]:
            continue
        out.append(f"nodeid: {st.nodeid} reachable" + (" remote" if st.remote else "")
                   + (" external" if st.external else "") + "\n")
        for j, ln in enumerate(st.links):
            if not ln.enabled:
                continue
            arrow = "->" if facts["knet"] else ""
            out.append(f"   LINK: {j} {facts['link_transport'][j]} "
                       f"({ln.src_ipaddr}{arrow}{ln.dst_ipaddr}) enabled"
                       + (" connected" if ln.connected else "")
                       + (" dynconnected" if ln.dynconnected else "") + f" mtu: {ln.mtu}\n")
        out.append("\n")
    return "".join(out)


def facts_json(facts: dict) -> dict:
    return {"local_nodeid": facts["local"], "transport": facts["transport"],
            "nodes": [{"nodeid": n, "error": name_of(facts["errors"][n])}
                      if facts["status"][n] is None else
                      {"nodeid": n, "reachable": facts["status"][n].reachable,
                       "local": n == facts["local"],
                       "links": [dict(ln._asdict(), link=i)
                                 for i, ln in enumerate(facts["status"][n].links)
                                 if ln.enabled]}
                      for n in facts["nodeids"]]}


def status_do(suffix: str, nodes_view: bool, brief: bool, as_json: bool, out) -> int:
    cfg = _connect_cfg(suffix)
    try:
        try:
            cmap = Cmap(suffix=suffix)
        except CsError as exc:
            raise ToolExit(EXIT_FAILURE, f"Could not initialize corosync cmap API error "
                                         f"{exc.code}\n") from None
        with cmap:
            facts = gather(cfg, cmap)
    finally:
        cfg.close()
    if as_json:
        out.write(json.dumps(facts_json(facts)) + "\n")
        return EXIT_OK
    if nodes_view:
        out.write(format_nodes(facts))
    else:
        text, err = format_links(facts, brief)
        sys.stderr.write(err)
        out.write(text)
    return EXIT_OK


# ---- the other actions -------------------------------------------------------------------
def _simple(suffix, as_json, out, call, fail_fmt, fail_exit=None, before="", after="",
            before_connect=True):
    """Run one libcfg call; print like the C tool (or JSON); return the exit code."""
    if before and before_connect and not as_json:
        out.write(before)
        out.flush()
    cfg = _connect_cfg(suffix, error_by_name=fail_exit is None)
    if before and not before_connect and not as_json:
        out.write(before)
        out.flush()
    try:
        call(cfg)
    except CsError as exc:
        if as_json:
            out.write(json.dumps({"ok": False, "error": name_of(exc.code)}) + "\n")
        else:
            sys.stderr.write(fail_fmt.replace("%s", strerror(exc.code))
                             .replace("%d", str(exc.code)))
        return exc.code if fail_exit is None else fail_exit
    finally:
        cfg.close()
    out.write(json.dumps({"ok": True}) + "\n" if as_json else after)
    return EXIT_OK


def shutdown(cfg: Cfg, force: bool) -> None:
    flags = SHUTDOWN_FLAG_REGARDLESS if force else SHUTDOWN_FLAG_REQUEST
    for attempt in range(TRY_AGAIN_REPEATS):
        try:
            cfg.try_shutdown(flags)
            return
        except CsError as exc:
            if exc.code != CS_ERR_TRY_AGAIN or attempt == TRY_AGAIN_REPEATS - 1:
                raise
            time.sleep(TRY_AGAIN_PAUSE_S)


def showaddrs_do(suffix: str, nodeid: int, as_json: bool, out) -> int:
    cfg = _connect_cfg(suffix)
    try:
        addrs = cfg.node_addrs(nodeid)
    except CsError:
        raise ToolExit(EXIT_FAILURE, f"Could not get node address for nodeid {nodeid}\n") \
            from None
    finally:
        cfg.close()
    out.write(json.dumps({"nodeid": nodeid, "addrs": addrs}) + "\n" if as_json
              else " ".join(addrs) + "\n")
    return EXIT_OK


def _nodeid_arg(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if not 1 <= value <= UINT_MAX:
        raise ToolExit(EXIT_FAILURE, "The nodeid was not valid, try a positive number\n")
    return value


def run(argv: list[str], out) -> int:
    try:
        pairs, _rest = getopt.gnu_getopt(argv, "i:snbrRLk:a:hH", [
            "if=", "status", "nodes", "brief", "reload", "reopen", "kill=", "address=",
            "shutdown", "force", "json", "suffix="])
    except getopt.GetoptError as exc:
        sys.stderr.write(f"coroproc-cfgtool: {exc.msg}\n")
        return EXIT_FAILURE
    action, nodeid, brief, force, as_json, suffix = None, 0, False, False, False, ""
    long_action = {"--status": "s", "--nodes": "n", "--reload": "R", "--reopen": "L",
                   "--kill": "k", "--address": "a", "--shutdown": "H", "--brief": "b",
                   "--if": "i"}
    for opt, val in pairs:
        flag = long_action.get(opt, opt.lstrip("-"))
        if flag in ("s", "n", "R", "L", "H"):
            action = flag
        elif flag in ("k", "a"):
            nodeid, action = _nodeid_arg(val), flag
        elif flag == "b":
            brief = True
        elif opt == "--force":
            force = True
        elif opt == "--json":
            as_json = True
        elif opt == "--suffix":
            suffix = val
    if action in ("s", "n"):
        return status_do(suffix, action == "n", brief, as_json, out)
    if action == "R":
        return _simple(suffix, as_json, out, lambda c: c.reload_config(),
                       "Could not reload configuration. Error %s\n",
                       before="Reloading corosync.conf...\n", after="Done\n")
    if action == "L":
        return _simple(suffix, as_json, out, lambda c: c.reopen_log_files(),
                       "Could not reopen corosync logging files. Error %s\n")
    if action == "k":
        return _simple(suffix, as_json, out,
                       lambda c: c.kill_node(nodeid, "Killed by corosync-cfgtool"),
                       "Could not kill node (error = %s)\n", fail_exit=EXIT_FAILURE,
                       before=f"Killing node {nodeid}\n")
    if action == "H":
        return _simple(suffix, as_json, out, lambda c: shutdown(c, force),
                       "Could not shutdown (error = %d)\n", fail_exit=EXIT_OK,
                       before="Shutting down corosync\n", before_connect=False)
    if action == "a":
        return showaddrs_do(suffix, nodeid, as_json, out)
    out.write(USAGE)
    return EXIT_OK


def restart_engine(argv: list[str]) -> int:
    """coroproc-only: `--restart-engine NAME [-c CONF] [--nodeid N]` restarts one engine
    process of the local node through its supervisor (the node stays in the ring)."""
    import argparse

    from coroproc.tools import ctl
    p = argparse.ArgumentParser(prog="coroproc-cfgtool --restart-engine")
    p.add_argument("--restart-engine", dest="name", required=True)
    p.add_argument("-c", dest="config", default="/etc/corosync/corosync.conf")
    p.add_argument("--nodeid", type=int, default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    extra = (["--nodeid", str(a.nodeid)] if a.nodeid is not None else []) + \
        (["--json"] if a.json else [])
    return ctl.main(["-c", a.config, *extra, "restart", a.name])


def main() -> None:
    if any(arg == "--restart-engine" or arg.startswith("--restart-engine=")
           for arg in sys.argv[1:]):
        sys.exit(restart_engine(sys.argv[1:]))
    try:
        code = run(sys.argv[1:], sys.stdout)
    except ToolExit as exc:
        sys.stdout.flush()
        sys.stderr.write(exc.stderr)
        code = exc.code
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
