"""NodePlan: everything the children of one node need, decided once by the supervisor.

The plan names every shm ring (cluster name + node id + role, so nodes share a host),
sizes it, and records which eventfd wakes its consumer. The supervisor creates the
rings and doorbells before forking, so every child inherits the same plan object and
the same descriptors; a restarted child attaches to the same rings.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from coroproc.config.model import NodeConfig
from coroproc.logsys import LogSettings
from coroproc.netproc.secure_spec import SecureSettings
from coroproc.netproc.spec import LinkSpec
from coroproc.ringproc.config import TotemConfig
from coroproc.shm.names import segment_name

from .placement import ring_cpus

# rx/tx rings hold frames (≤ rx_limit_bytes = netmtu + 64 each): 4 MiB is ~2,600 full
# 1,500-byte frames; with knet's 64 KiB frames a ring holds FRAME_RING_FRAMES_MIN of them,
# more than a whole window (window_size 50) plus a token visit of every member. Delivery
# rings hold ordered messages until the engine has handled them; the ring process keeps
# a headroom free before reading a frame (docs/executive.md, back-pressure).
FRAME_RING_BYTES = 4 << 20
FRAME_RING_FRAMES_MIN = 128
SUBMIT_RING_BYTES = 4 << 20
DELIVERY_RING_BYTES = 32 << 20
DEFAULT_RUN_ROOT = "/run/coroproc"


@dataclass
class LinkPlan:
    linknumber: int
    spec: LinkSpec
    rx_name: str
    tx_name: str
    wake_fd: int = -1          # the network process's doorbell (consumer of tx)
    secure: SecureSettings | None = None   # transport knet: the secure link's settings


@dataclass
class EnginePlan:
    name: str
    submit_name: str
    delivery_name: str
    wake_fd: int = -1          # the engine's doorbell (consumer of its delivery ring)
    options: dict = field(default_factory=dict)
    target: str = ""           # what registry.resolve() loads ("" = the name)
    service_id: int = -1       # Corosync service id (-1: no exec messages, e.g. load)
    has_sync: bool = False     # takes part in the sync protocol
    wants_all_groups: bool = False   # every ordered message of every group (load)
    # engines run in this process too (Engine.hosted_with), e.g. quorum with votequorum
    hosted: list = field(default_factory=list)          # their registry targets
    hosted_options: dict = field(default_factory=dict)  # name -> options
    hosted_services: list = field(default_factory=list) # their service ids
    hosted_sync: list = field(default_factory=list)     # those of them in sync

    @property
    def service_ids(self) -> list[int]:
        return ([self.service_id] if self.service_id >= 0 else []) + list(self.hosted_services)


@dataclass
class NodePlan:
    cluster_name: str
    nodeid: int
    totem: TotemConfig
    state_dir: str
    run_dir: str
    log: LogSettings
    links: list[LinkPlan]
    engines: list[EnginePlan]
    incarnation_us: int
    ring_wake_fd: int = -1     # the ring process's doorbell (consumer of rx and submits)
    config_path: str = ""
    heartbeat_timeout_ms: int = 10000
    service_suffix: str = ""   # appended to IPC service names (several nodes, one netns)
    foreground: bool = True    # -f: stderr logging allowed
    config: NodeConfig | None = None   # engines read their settings (and cmap its keys) here
    link_table_name: str = ""  # transport knet: the links' shared health table
    link_table_peers: tuple = ()   # its peer slots (nodeids, sorted)
    ring_cpus: frozenset | None = None  # the ring and link processes' CPU (placement.py)

    @property
    def sync_services(self) -> list[int]:
        """Service ids of the node's engines that take part in sync (same in every process)."""
        return sorted([e.service_id for e in self.engines if e.has_sync]
                      + [s for e in self.engines for s in e.hosted_sync])

    def ring_sizes(self) -> dict[str, int]:
        sizes = {}
        for link in self.links:
            frame_ring_bytes = FRAME_RING_BYTES        # rings are a power of two
            while frame_ring_bytes < FRAME_RING_FRAMES_MIN * link.spec.rx_limit_bytes:
                frame_ring_bytes *= 2
            sizes[link.rx_name] = frame_ring_bytes
            sizes[link.tx_name] = frame_ring_bytes
        for eng in self.engines:
            sizes[eng.submit_name] = SUBMIT_RING_BYTES
            sizes[eng.delivery_name] = DELIVERY_RING_BYTES
        return sizes


def link_specs(cfg: NodeConfig) -> list[LinkSpec]:
    specs = []
    for link in cfg.links:
        local = cfg.local_addrs[link.linknumber]
        family = socket.AF_INET6 if ":" in local else socket.AF_INET
        peers = {n.nodeid: (n.addrs[link.linknumber], link.mcastport)
                 for n in cfg.nodes if link.linknumber in n.addrs}
        specs.append(LinkSpec(
            linknumber=link.linknumber, transport=cfg.transport, family=family,
            local_nodeid=cfg.local_nodeid, bind_addr=local, port=link.mcastport, peers=peers,
            mcast_addr=link.mcastaddr if cfg.transport == "udp" else None,
            mcast_port=link.mcastport if cfg.transport == "udp" else None, ttl=link.ttl,
            netmtu=cfg.netmtu, block_unlisted_ips=cfg.block_unlisted_ips,
            udp_gso=cfg.coroproc.udp_gso))
    return specs


def read_authkey(cfg: NodeConfig) -> bytes | None:
    """The authkey when crypto is on (config/knet.py already checked it exists)."""
    crypto = cfg.knet.crypto
    if not crypto.enabled:
        return None
    if crypto.inline_key is not None:
        from coroproc.netproc.secure.authkey import inline_authkey
        return inline_authkey(crypto.inline_key)
    from coroproc.netproc.secure.authkey import load_authkey
    return load_authkey(crypto.keyfile)


class LinkUnavailable(RuntimeError):
    """A configured link cannot run on this host (e.g. knet_transport rdma, no device)."""


def check_rdma_links(cfg: NodeConfig) -> None:
    """Links with knet_transport rdma need a usable device now: refuse to start with the
    reason rather than crash-loop a network process (docs/rdma.md)."""
    for link in cfg.links:
        if link.carrier != "rdma":
            continue
        from coroproc.netproc.rdma.devices import pick_device, pick_gid
        from coroproc.netproc.rdma.errors import RdmaError
        try:
            device, port = pick_device(None, None)
            pick_gid(device, port, cfg.local_addrs[link.linknumber], None)
        except RdmaError as exc:
            raise LinkUnavailable(f"link {link.linknumber} (knet_transport rdma): {exc}") \
                from None


def secure_settings(cfg: NodeConfig, link, table_name: str,
                    authkey: bytes | None) -> SecureSettings:
    knet = cfg.knet
    return SecureSettings(
        cluster_name=cfg.cluster_name, link_mode=knet.link_mode, cipher=knet.crypto.cipher,
        hash=knet.crypto.hash, authkey=authkey, table_name=table_name,
        priority=link.priority, ping_interval_ms=link.ping_interval_ms,
        ping_timeout_ms=link.ping_timeout_ms, pong_count=link.pong_count,
        ping_precision=link.ping_precision, mtu_bytes=knet.mtu_bytes,
        pmtud_interval_s=knet.pmtud_interval_s, carrier=link.carrier,
        session_file=os.path.join(cfg.state_dir, f"linksession_{link.linknumber}"))


def log_settings(cfg: NodeConfig, foreground: bool) -> LogSettings:
    """The logging { } section as every process of the node logs (docs/logging.md)."""
    from coroproc.logsys import settings_from_config
    return settings_from_config(cfg.logging, foreground)


def run_dir_of(cfg: NodeConfig) -> str:
    """Where the node keeps its lock, pid file and control socket."""
    return cfg.coroproc.run_dir or os.path.join(DEFAULT_RUN_ROOT,
                                                f"{cfg.cluster_name}.{cfg.local_nodeid}")


def engine_plans(cfg: NodeConfig, engines: list[str], engine_options: dict) -> list[EnginePlan]:
    """The node's engines: the built-in services, `service { name }` sections, then
    `engines` (e.g. the load engine); each resolved now, so a bad name stops the start."""
    from coroproc.engineprocs import registry
    wanted: dict[str, tuple[str, dict]] = {
        n: (n, {}) for n in registry.node_engine_names(cfg)}
    for svc in cfg.services:
        wanted[svc.name] = (svc.name, dict(svc.options))
    for name in engines:
        wanted.setdefault(name, (name, {}))
    classes = {name: registry.resolve(target) for name, (target, _o) in wanted.items()
               if name != registry.LOAD_ENGINE}
    registry.check_set(classes)
    # an engine with hosted_with runs inside that engine's process when it is present
    host_of = {name: cls.hosted_with for name, cls in classes.items()
               if cls.hosted_with and cls.hosted_with in classes and cls.hosted_with != name}
    plans = {}
    for name, (target, options) in wanted.items():
        if name in host_of:
            continue
        cls = classes.get(name)
        options.update((engine_options or {}).get(name, {}))
        plans[name] = EnginePlan(
            name, segment_name(cfg.cluster_name, cfg.local_nodeid, f"submit.{name}"),
            segment_name(cfg.cluster_name, cfg.local_nodeid, f"delivery.{name}"),
            options=options, target=target,
            service_id=cls.service_id if cls else -1, has_sync=bool(cls and cls.has_sync),
            wants_all_groups=cls is None)
    for name, host in host_of.items():
        target, options = wanted[name]
        options.update((engine_options or {}).get(name, {}))
        cls, p = classes[name], plans[host]
        p.hosted.append(target)
        p.hosted_options[cls.name] = options
        p.hosted_services.append(cls.service_id)
        if cls.has_sync:
            p.hosted_sync.append(cls.service_id)
    return list(plans.values())


def build_plan(cfg: NodeConfig, incarnation_us: int, foreground: bool = True,
               engines: list[str] = (), engine_options: dict | None = None) -> NodePlan:
    cluster, nodeid = cfg.cluster_name, cfg.local_nodeid
    run_dir = run_dir_of(cfg)
    links = [LinkPlan(spec.linknumber, spec,
                      segment_name(cluster, nodeid, f"rx{spec.linknumber}"),
                      segment_name(cluster, nodeid, f"tx{spec.linknumber}"))
             for spec in link_specs(cfg)]
    table_name, peers = "", ()
    if cfg.transport == "knet":
        check_rdma_links(cfg)
        table_name = segment_name(cluster, nodeid, "links")
        peers = tuple(sorted(n.nodeid for n in cfg.nodes))
        authkey = read_authkey(cfg)
        by_number = {link.linknumber: link for link in cfg.links}
        for lp in links:
            lp.secure = secure_settings(cfg, by_number[lp.linknumber], table_name, authkey)
    return NodePlan(cluster_name=cluster, nodeid=nodeid, totem=cfg.totem,
                    state_dir=cfg.state_dir, run_dir=run_dir,
                    log=log_settings(cfg, foreground), links=links,
                    engines=engine_plans(cfg, list(engines), engine_options or {}),
                    incarnation_us=incarnation_us, config_path=cfg.path,
                    heartbeat_timeout_ms=cfg.coroproc.heartbeat_timeout_ms,
                    service_suffix=cfg.coroproc.service_suffix, config=cfg,
                    foreground=foreground, link_table_name=table_name,
                    link_table_peers=peers, ring_cpus=ring_cpus(cfg.coroproc.ring_cpu))
