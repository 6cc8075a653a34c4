"""What `corosync-cfgtool -R` may change at run time (exec/cfg.c remove_ro_entries, 3.1.7).

A reload re-reads corosync.conf on every node; keys below keep their running value when
the file changes them, and Corosync logs, per key, at NOTICE:
    Modified entry 'totem.transport' in corosync.conf cannot be changed at run-time
Everything else (token and other timers, nodelist, logging, quorum votes, uidgid) is
applied. Crypto keys are read-only here as in a Corosync built without knet crypto
reconfiguration — and udpu/udp carry no crypto anyway.

`readonly_changes(old, new)` is shared by whoever applies a reload (the supervisor and
the CMAP engine keep the old values of these keys; the CFG engine logs the lines).
"""
from __future__ import annotations

import re

READONLY_KEYS = frozenset((
    "totem.secauth", "totem.crypto_hash", "totem.crypto_cipher", "totem.keyfile", "totem.key",
    "totem.version", "totem.threads", "totem.ip_version", "totem.rrp_mode", "totem.netmtu",
    "totem.transport", "totem.cluster_name", "quorum.provider",
    "system.move_to_root_cgroup", "system.allow_knet_handle_fallback", "system.sched_rr",
    "system.priority", "system.qb_ipc_type", "system.state_dir",
))
# Corosync names these without the link number ("totem.interface.bindnetaddr"); the keys
# really are per link, and for udpu/udp link sockets are bound once at start-up
_READONLY_INTERFACE = re.compile(
    r"^totem\.interface\.\d+\.(ringnumber|bindnetaddr|mcastaddr|broadcast|mcastport|ttl)$")
# prefixes whose keys are deleted from the running map when the file no longer has them
RELOADED_PREFIXES = ("logging.", "totem.", "nodelist.", "quorum.", "uidgid.config.", "nozzle.")


def is_readonly(key: str) -> bool:
    return key in READONLY_KEYS or _READONLY_INTERFACE.match(key) is not None


def _value(entry):
    return getattr(entry, "value", entry)


def readonly_changes(old_keys: dict, new_keys: dict) -> list[str]:
    """Sorted read-only keys the new file sets to another value than the running one
    (added or modified; Corosync says nothing about a read-only key the file dropped).
    Maps are NodeConfig.keys (key -> Entry) or plain key -> value."""
    return sorted(k for k in new_keys if is_readonly(k)
                  and _value(old_keys.get(k)) != _value(new_keys[k]))


def notice_line(key: str) -> str:
    return f"Modified entry '{key}' in corosync.conf cannot be changed at run-time"
