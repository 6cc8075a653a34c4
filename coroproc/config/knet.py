"""transport knet → KnetConfig: link mode, crypto, MTU, and the links' ping timers.

coroproc runs Corosync 3's knet configurations on its own secure multi-link layer
(docs/secure-links.md); the keys and defaults here are Corosync 3.1's (totemconfig.c):
link_mode passive, knet_pong_count 2, knet_ping_timeout = token / pong_count and
knet_ping_interval = token / (pong_count * 2) with the effective (node-count adjusted)
token timeout, both written back as runtime.config.totem.interface.N.* keys as Corosync
does. Compression is not implemented: a knet_compression_model other than none is
accepted with a warning (traffic goes uncompressed) so a Corosync file loads unchanged.
"""
from __future__ import annotations

import dataclasses

from coroproc.config.context import Keys
from coroproc.config.model import CryptoConfig, KnetConfig, LinkConfig, NodeEntry
from coroproc.ringproc.config import TotemConfig

KNET_MAX_HOST = 65536               # knet host ids are u16: nodeid must be below this
# Totem frame size when totem.netmtu is not set: as Corosync's knet, frames of (almost)
# 64 KiB, cut by the link into fragments of the discovered path MTU (carrier_udp.py), so
# a token visit's max_messages frames carry up to 17 x 64 KiB and no frame relies on IP
# fragmentation. 65,000 is the largest netmtu coroproc takes (netproc/spec.py); the sort
# queues shrink to stay within the memory of 16 KiB frames (sections.queue_slots_for).
KNET_NETMTU_BYTES = 65000
DEFAULT_KEYFILE = "/etc/corosync/authkey"


def crypto_config(keys: Keys) -> CryptoConfig:
    """The crypto keys as Corosync resolves them; loader already checked cipher ⇒ hash."""
    cipher, hash_ = "none", "none"
    if keys.get("totem.secauth") == "on":
        cipher, hash_ = "aes256", "sha256"
    cipher = keys.get("totem.crypto_cipher", cipher)
    hash_ = keys.get("totem.crypto_hash", hash_)
    return CryptoConfig(cipher=cipher, hash=hash_,
                        model=keys.get("totem.crypto_model", "nss"),
                        keyfile=keys.get("totem.keyfile", DEFAULT_KEYFILE),
                        inline_key=keys.get("totem.key"))


def check_authkey(keys: Keys, crypto: CryptoConfig) -> None:
    """With crypto on, the key must exist and have a valid length (Corosync's keyread);
    a key file others may read is a warning (Corosync wants it 0400)."""
    from coroproc.netproc.secure.authkey import AuthkeyError, inline_authkey, load_authkey
    if not crypto.enabled:
        return
    key = "totem.keyfile" if "totem.keyfile" in keys.entries else "totem.crypto_cipher"
    try:
        if crypto.inline_key is not None:
            key = "totem.key"
            inline_authkey(crypto.inline_key)
        else:
            load_authkey(crypto.keyfile, warn=lambda message: keys.warn(key, message))
    except AuthkeyError as exc:
        raise keys.fail(key, f"{exc} (crypto is on: crypto_cipher {crypto.cipher}, "
                        f"crypto_hash {crypto.hash})") from None


def check_nodeids(keys: Keys, nodes: list[NodeEntry]) -> None:
    for node in nodes:
        key = f"nodelist.node.{node.position}.nodeid"
        addr = node.addrs.get(0) or next(iter(node.addrs.values()))
        if node.nodeid_generated:
            raise keys.fail(key, "Knet requires an explicit nodeid to be specified for "
                            f"address '{addr}'.")
        if node.nodeid >= KNET_MAX_HOST:
            raise keys.fail(key, f"Knet requires nodeid to be less than {KNET_MAX_HOST} "
                            f"for address '{addr}'.")


def with_ping_defaults(keys: Keys, links: list[LinkConfig],
                       totem: TotemConfig) -> list[LinkConfig]:
    token_ms = totem.effective_token_ms
    out = []
    for link in links:
        timeout = link.ping_timeout_ms or token_ms // link.pong_count
        interval = link.ping_interval_ms or token_ms // (link.pong_count * 2)
        if interval <= 0 or timeout <= 0:
            raise keys.fail(f"totem.interface.{link.linknumber}.knet_ping_interval",
                            f"ping interval {interval} ms / timeout {timeout} ms must be > 0")
        prefix = f"runtime.config.totem.interface.{link.linknumber}."
        keys.derive(prefix + "knet_ping_timeout", str(timeout), "u32")
        keys.derive(prefix + "knet_ping_interval", str(interval), "u32")
        out.append(dataclasses.replace(link, ping_timeout_ms=timeout,
                                       ping_interval_ms=interval))
    return out


def build_knet(keys: Keys, nodes: list[NodeEntry]) -> KnetConfig:
    check_nodeids(keys, nodes)
    crypto = crypto_config(keys)
    check_authkey(keys, crypto)
    model = keys.get("totem.knet_compression_model", "none")
    if model != "none":
        keys.warn("totem.knet_compression_model", f"knet_compression_model {model} is not "
                  "implemented by coroproc's secure links; traffic is sent uncompressed")
    return KnetConfig(link_mode=keys.get("totem.link_mode", "passive"), crypto=crypto,
                      mtu_bytes=keys.get("totem.knet_mtu", 0) or 0,
                      pmtud_interval_s=keys.get("totem.knet_pmtud_interval", 30) or 30)


def link_overhead_bytes(crypto: CryptoConfig) -> int:
    """Bytes a link frame adds to a Totem frame with this crypto (the codec's own figure)."""
    from coroproc.netproc.secure.suite import CryptoSuite
    return CryptoSuite(crypto.cipher, crypto.hash).overhead_bytes
