"""Shared by the quorum tests: corosync.conf text for N nodes, a simbus of votequorum +
quorum nodes built from it, and readers of what a node decided."""
from __future__ import annotations

import os
import struct
import tempfile

from coroproc.config.loader import load
from coroproc.engineprocs.api import SERVICE_QUORUM, SERVICE_VOTEQUORUM
from coroproc.engineprocs.cmap.engine import CmapEngine
from coroproc.engineprocs.quorum.engine import QuorumEngine
from coroproc.engineprocs.simbus import SimBus
from coroproc.engineprocs.votequorum.engine import VotequorumEngine
from coroproc.ipc import votequorum_structs as V


def conf_text(n_nodes: int, quorum: str, votes: dict | None = None, cluster: str = "q",
              addr_base: str = "127.0.0.", extra: str = "", state_dir: str | None = None) -> str:
    nodes = []
    for i in range(1, n_nodes + 1):
        qv = f"\n\t\tquorum_votes: {votes[i]}" if votes and i in votes else ""
        nodes.append(f"\tnode {{\n\t\tring0_addr: {addr_base}{i}\n\t\tnodeid: {i}\n"
                     f"\t\tname: node{i}{qv}\n\t}}\n")
    system = f"system {{\n\tstate_dir: {state_dir}\n}}\n" if state_dir else ""
    return (f"totem {{\n\tversion: 2\n\tcluster_name: {cluster}\n\ttransport: udpu\n"
            f"\tip_version: ipv4\n}}\n\nnodelist {{\n{''.join(nodes)}}}\n\n"
            f"quorum {{\n{quorum}\n}}\n{system}{extra}")


def configs(n_nodes: int, quorum: str, **kw) -> dict:
    """nodeid -> NodeConfig, one per node of the same file."""
    text = conf_text(n_nodes, quorum, **kw)
    fd, path = tempfile.mkstemp(suffix=".conf", prefix=f"quorum-{os.getpid()}-")
    try:
        os.write(fd, text.encode())
        os.close(fd)
        return {i: load(path, i)[0] for i in range(1, n_nodes + 1)}
    finally:
        os.unlink(path)


VQ_PROVIDER = "\tprovider: corosync_votequorum"


def make_bus(n_nodes: int, quorum_lines: str = "", *, seed: int = 0, nodeids=None,
             with_provider: bool = True, cmap_run_dir: str | None = None, **kw) -> SimBus:
    """cmap_run_dir: run the CMAP engine on every node too (its journal of client writes
    goes under that directory)."""
    text = (VQ_PROVIDER + "\n" if with_provider else "") + quorum_lines
    if cmap_run_dir is not None:
        kw["extra"] = kw.get("extra", "") + f"coroproc {{\n\trun_dir: {cmap_run_dir}\n}}\n"
    cfgs = configs(n_nodes, text, **kw)
    engines = [QuorumEngine, VotequorumEngine] if with_provider else [QuorumEngine]
    if cmap_run_dir is not None:
        engines.insert(0, CmapEngine)
    return SimBus(engines, nodeids or list(cfgs), seed=seed, config_for=lambda n: cfgs[n])


def vq(bus, nodeid):
    return bus.engine(nodeid, SERVICE_VOTEQUORUM)


def q(bus, nodeid):
    return bus.engine(nodeid, SERVICE_QUORUM)


def quorate(bus, nodeid) -> bool:
    return q(bus, nodeid).quorate()


def info(bus, nodeid, about: int = 0) -> V.Info:
    c = bus.connect(nodeid, SERVICE_VOTEQUORUM, pid=4242)
    try:
        rid, err, body = bus.request(c, V.REQ_GETINFO, struct.pack("<i4x", about))
        assert (rid, err) == (V.RES_GETINFO, 1), (rid, err)
        return V.unpack_res_getinfo(body)
    finally:
        bus.disconnect(c)


def logs(bus, nodeid, engine: str | None = None) -> list[str]:
    return [m for name, _p, m in bus.nodes[nodeid].log if engine is None or name == engine]
