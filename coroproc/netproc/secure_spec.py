"""SecureSettings: what a secure (transport knet) link process needs beyond its LinkSpec.

Built by the supervisor from corosync.conf (config/knet.py: KnetConfig and the link's
knet_* options); tests build one directly. The authkey travels in memory (the link
process is forked from the supervisor), never through a file or socket of ours.
"""
from __future__ import annotations

from dataclasses import dataclass, field

LINK_MODES = ("passive", "active", "rr")
CARRIERS = ("udp", "rdma")


@dataclass(frozen=True)
class SecureSettings:
    cluster_name: str
    link_mode: str                       # passive | active | rr
    cipher: str                          # crypto_cipher: none | aes128 | aes192 | aes256
    hash: str                            # crypto_hash: none | md5 | sha1 | sha256 | ...
    authkey: bytes | None                # None when crypto is off
    table_name: str                      # the node's shared link table (linktable.py)
    priority: int = 1                    # knet_link_priority
    ping_interval_ms: int = 250
    ping_timeout_ms: int = 500
    pong_count: int = 2
    ping_precision: int = 2048
    mtu_bytes: int = 0                   # knet_mtu: 0 = discover
    pmtud_interval_s: int = 30
    carrier: str = "udp"                 # knet_transport: udp | rdma
    session_file: str | None = None      # state_dir/linksession_<link>
    rdma: dict = field(default_factory=dict)   # carrier options for knet_transport rdma
    jit_data_path: bool = True           # crypto off over UDP: DATA frames in jitted code

    def __post_init__(self):
        if self.link_mode not in LINK_MODES:
            raise ValueError(f"link_mode {self.link_mode!r} is not one of {LINK_MODES}")
        if self.carrier not in CARRIERS:
            raise ValueError(f"knet_transport {self.carrier!r} is not one of {CARRIERS}")
        if (self.cipher != "none" or self.hash != "none") and not self.authkey:
            raise ValueError("crypto is on (crypto_cipher/crypto_hash) but no authkey was given")
        for name in ("ping_interval_ms", "ping_timeout_ms", "pong_count", "ping_precision"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def __repr__(self) -> str:      # never print the key
        return (f"SecureSettings(cluster_name={self.cluster_name!r}, link_mode="
                f"{self.link_mode!r}, cipher={self.cipher!r}, hash={self.hash!r}, "
                f"carrier={self.carrier!r}, priority={self.priority})")
