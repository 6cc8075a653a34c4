"""The typed, validated configuration of one node, as the supervisor and engines use it.

Plain frozen dataclasses, built by loader.py; nothing here reads files or sockets.
Totem timers live in TotemConfig (coroproc.ringproc.config), which owns Corosync's
derivations (effective token, token_retransmit, hold, consensus); ``keys`` keeps the
flat cmap-style mapping with Corosync's key names and value strings for the CMAP engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from coroproc.config.errors import Entry
from coroproc.logsys import SubsysSettings
from coroproc.ringproc.config import TotemConfig

DEFAULT_STATE_DIR = "/var/lib/corosync"
DEFAULT_PORT = 5405


@dataclass(frozen=True)
class LinkConfig:
    """One totem link (udp/udpu have exactly one, link 0; knet up to 8)."""

    linknumber: int
    mcastport: int
    ttl: int = 1
    mcastaddr: str | None = None  # udp: given or derived from cluster_name; udpu: None
    bindnetaddr: str | None = None  # the local node's address on this link
    broadcast: bool = False
    # knet only (Corosync's defaults; ping interval/timeout derive from the token timeout)
    priority: int = 1                 # knet_link_priority, 0 read as 1
    ping_interval_ms: int = 0
    ping_timeout_ms: int = 0
    pong_count: int = 2
    ping_precision: int = 2048
    carrier: str = "udp"              # knet_transport: udp | rdma (a coroproc extension)


@dataclass(frozen=True)
class CryptoConfig:
    """totem crypto keys as Corosync resolves them (secauth on = aes256 + sha256)."""

    cipher: str = "none"              # none | aes128 | aes192 | aes256
    hash: str = "none"                # none | md5 | sha1 | sha256 | sha384 | sha512
    model: str = "nss"                # Corosync's crypto library; coroproc uses OpenSSL
    keyfile: str = "/etc/corosync/authkey"
    inline_key: str | None = None     # totem.key (Corosync: "not recommended")

    @property
    def enabled(self) -> bool:
        return self.cipher != "none" or self.hash != "none"


@dataclass(frozen=True)
class KnetConfig:
    """Node-wide settings of coroproc's secure multi-link transport (transport knet)."""

    link_mode: str = "passive"        # passive | active | rr
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    mtu_bytes: int = 0                # knet_mtu: 0 = discover the path MTU
    pmtud_interval_s: int = 30


@dataclass(frozen=True)
class NodeEntry:
    """One nodelist { node { } } entry; addrs maps linknumber → resolved IP string."""

    position: int  # N of nodelist.node.N
    nodeid: int
    name: str | None
    addrs: dict[int, str]
    quorum_votes: int = 1
    nodeid_generated: bool = False  # udp/udpu: derived from ring0_addr as Corosync does


# Overrides from one logger_subsys { } (None = "as the top level"): the logging module's
# own type, so a parsed section is what the loggers use.
SubsysLogging = SubsysSettings


@dataclass(frozen=True)
class LoggingConfig:
    to_stderr: bool = True
    to_logfile: bool = False
    to_syslog: bool = True
    logfile: str | None = None
    logfile_priority: str = "info"
    syslog_priority: str = "info"
    syslog_facility: str = "daemon"
    timestamp: str = "hires"  # off | on | hires
    debug: str = "off"  # off | on | trace
    fileline: bool = False
    function_name: bool = False
    blackbox: bool = True
    subsys: dict[str, SubsysLogging] = field(default_factory=dict)


@dataclass(frozen=True)
class QuorumConfig:
    """quorum { } as votequorum reads it; provider None = quorum type FREE (always quorate)."""

    provider: str | None = None
    expected_votes: int | None = None
    two_node: bool = False
    wait_for_all: bool = False
    last_man_standing: bool = False
    last_man_standing_window_ms: int = 10000
    auto_tie_breaker: bool = False
    auto_tie_breaker_node: str = "lowest"
    allow_downscale: bool = False
    expected_votes_tracking: bool = False


# coroproc { own_delivery_spin_us } when unset (docs/executive.md "Own-delivery spin")
OWN_DELIVERY_SPIN_US_DEFAULT = 200


@dataclass(frozen=True)
class CoroprocSection:
    """coroproc { }: keys only coroproc reads, so the file stays loadable by Corosync."""

    nodeid: int | None = None  # force the local node (several nodes on one host)
    run_dir: str | None = None
    service_suffix: str = ""  # appended to IPC service names (cpg → cpg<suffix>)
    # a child silent this long after its hello is stuck: killed and restarted
    heartbeat_timeout_ms: int = 10000
    # udpu/udp links send runs of full frames as one segmentation-offload datagram train
    # and receive trains whole (UDP GSO / GRO; netproc/jit/link_loop.py)
    udp_gso: bool = True
    # the CPU of the token's path — the ring process and the link processes: "auto"
    # (the highest of two or more allowed), "none", or a CPU number (supervisor/placement.py)
    ring_cpu: str = "auto"
    # how long the CPG engine polls its delivery ring for the messages it just handed to
    # the ring process before it sleeps; 0: never (engineprocs/cpg/jit/loop.py)
    own_delivery_spin_us: int = OWN_DELIVERY_SPIN_US_DEFAULT


@dataclass(frozen=True)
class ServiceSection:
    """service { name: NAME  key: value … }: one more engine; the other keys are its options."""

    name: str
    options: dict
    line: int


@dataclass(frozen=True)
class SchedulingConfig:
    """system { sched_rr, priority, move_to_root_cgroup } and coroproc { sched_slice_us }:
    what the node asks of the kernel's scheduler (supervisor/scheduling.py, supervisor/cgroup.py)."""

    # SCHED_RR at the highest priority for the token's path; off unless `sched_rr: yes`
    # (Corosync's default is yes; supervisor/scheduling.py says why coroproc's is not)
    sched_rr: bool = False
    nice: int | None = None    # system.priority as a nice value (max -20, min 19); unset: None
    # yes: always; auto (Corosync's default): when SCHED_RR is refused, then try again; no
    move_to_root_cgroup: str = "auto"
    # coroproc.sched_slice_us: the EEVDF slice every process asks for (supervisor/slice.py);
    # 0: the kernel's default
    slice_us: int = 100


@dataclass(frozen=True)
class NodeConfig:
    path: str
    cluster_name: str
    transport: str  # knet | udpu | udp
    ip_version: str  # ipv4 | ipv6 | ipv4-6 | ipv6-4
    totem: TotemConfig
    links: tuple[LinkConfig, ...]
    nodes: tuple[NodeEntry, ...]
    local_nodeid: int
    local_addrs: dict[int, str]  # linknumber → this node's address
    block_unlisted_ips: bool
    netmtu: int
    config_version: int
    logging: LoggingConfig
    quorum: QuorumConfig
    state_dir: str
    coroproc: CoroprocSection
    keys: dict[str, Entry]
    services: tuple[ServiceSection, ...] = ()
    knet: KnetConfig | None = None    # transport knet only
    scheduling: SchedulingConfig = SchedulingConfig()

    def node(self, nodeid: int) -> NodeEntry:
        for entry in self.nodes:
            if entry.nodeid == nodeid:
                return entry
        raise KeyError(f"nodeid {nodeid} is not in the nodelist of {self.path}")

    @property
    def local_node(self) -> NodeEntry:
        return self.node(self.local_nodeid)
