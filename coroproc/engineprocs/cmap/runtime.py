"""The keys the daemon itself writes into icmap at start and as membership changes.

Owns, as Corosync 3.1.7 writes them:
* runtime.config.totem.* — totemconfig.c totem_volatile_config_read: the effective
  values (token after token_coefficient, derived token_retransmit/hold/consensus,
  defaults for anything unset), all u32 except knet_compression_level (i32) and
  knet_compression_model (string);
* internal_configuration.service.<id>.{name,ver} and runtime.services.<name>.service_id
  (u16) plus runtime.services.<name>.<fn>.{tx,rx} (u64) — service.c, per running engine;
* runtime.blackbox.dump_flight_data / dump_state and runtime.force_gather ("no");
* runtime.votequorum.this_node_id at load when the node runs votequorum (below);
* runtime.members.<nodeid>.{ip, join_count, status} — main.c member_object_joined/left.
runtime.votequorum.* belongs to the votequorum engine, not here.
"""
from __future__ import annotations

from . import keys as K

# totemconfig.c defaults for the timers coroproc's TotemConfig does not model
_DEFAULTS = {"max_network_delay": 50, "downcheck": 1000, "knet_pmtud_interval": 30,
             "knet_mtu": 0, "send_join": 0, "heartbeat_failures_allowed": 0,
             "knet_compression_threshold": 0}

# Corosync's engines by service id: (internal name, exec message count) — service.c.
COROSYNC_SERVICES = {0: ("corosync_cmap", 1), 1: ("corosync_cfg", 5),
                     2: ("corosync_cpg", 7), 3: ("corosync_quorum", 0),
                     4: ("corosync_pload", 2), 5: ("corosync_votequorum", 4),
                     6: ("corosync_mon", 0), 7: ("corosync_wd", 0)}


def _raw_int(entries: dict, key: str, default: int, allow_zero: bool) -> int:
    entry = entries.get(key)
    try:
        value = int(entry.value, 10) if entry is not None else default
    except ValueError:
        value = default
    return default if value == 0 and not allow_zero else value


def _raw_yesno(entries: dict, key: str, default: int) -> int:
    entry = entries.get(key)
    if entry is None:
        return default
    return {"yes": 1, "no": 0}.get(entry.value, default)


def runtime_config_items(config) -> list[tuple[str, int, object]]:
    """runtime.config.totem.* for a coroproc.config.model.NodeConfig."""
    totem, entries = config.totem, config.keys
    u32 = {
        "token_retransmits_before_loss_const": totem.token_retransmits_before_loss_const,
        "token": totem.effective_token_ms,
        "token_warning": totem.token_warning_pct,
        "window_size": totem.window_size,
        "max_messages": totem.max_messages,
        "miss_count_const": totem.miss_count_const,
        "token_retransmit": totem.effective_token_retransmit_ms,
        "hold": totem.effective_hold_ms,
        "join": totem.join_ms,
        "consensus": totem.effective_consensus_ms,
        "merge": totem.merge_ms,
        "fail_recv_const": totem.fail_recv_const,
        "seqno_unchanged_const": totem.seqno_unchanged_const,
        "send_join": totem.send_join_ms,
    }
    for key in ("max_network_delay", "downcheck", "knet_pmtud_interval", "knet_mtu"):
        u32[key] = _raw_int(entries, f"totem.{key}", _DEFAULTS[key], False)
    for key in ("heartbeat_failures_allowed", "knet_compression_threshold"):
        u32[key] = _raw_int(entries, f"totem.{key}", _DEFAULTS[key], True)
    u32["block_unlisted_ips"] = _raw_yesno(entries, "totem.block_unlisted_ips", 1)
    u32["cancel_token_hold_on_retransmit"] = _raw_yesno(
        entries, "totem.cancel_token_hold_on_retransmit", 0)
    items = [(f"runtime.config.totem.{k}", K.UINT32, v) for k, v in u32.items()]
    level = _raw_int(entries, "totem.knet_compression_level", 0, True)
    items.append(("runtime.config.totem.knet_compression_level", K.INT32, level))
    model = entries.get("totem.knet_compression_model")
    items.append(("runtime.config.totem.knet_compression_model", K.STRING,
                  model.value if model is not None else "none"))
    return items


def service_items(services: dict[int, str]) -> list[tuple[str, int, object]]:
    """service.c's keys for each running engine; `services` maps service id → engine name.

    Corosync names the runtime.services entry after the part of the internal name past
    its last '_' (corosync_cpg → cpg); coroproc engines are named that way already.
    """
    items = []
    for service_id in sorted(services):
        name = services[service_id]
        internal, exec_fns = COROSYNC_SERVICES.get(service_id, (f"coroproc_{name}", 0))
        items.append((f"internal_configuration.service.{service_id}.name", K.STRING,
                      internal))
        items.append((f"internal_configuration.service.{service_id}.ver", K.UINT32, 0))
        items.append((f"runtime.services.{name}.service_id", K.UINT16, service_id))
        for fn in range(exec_fns):
            items.append((f"runtime.services.{name}.{fn}.tx", K.UINT64, 0))
            items.append((f"runtime.services.{name}.{fn}.rx", K.UINT64, 0))
    return items


def votequorum_items(services: dict[int, str], nodeid: int) -> list[tuple[str, int, object]]:
    """runtime.votequorum.this_node_id, which votequorum's exec_init sets before Corosync
    admits a client: corosync-qdevice reads it as it starts and gives up without it. The
    votequorum engine here is another process that can publish only once this engine
    admits clients, so this engine writes the one key nothing changes at load (the engine
    publishes the same value, and the rest, after the first sync)."""
    return [("runtime.votequorum.this_node_id", K.UINT32, nodeid)] \
        if "votequorum" in services.values() else []


def fixed_runtime_items() -> list[tuple[str, int, object]]:
    return [("runtime.blackbox.dump_flight_data", K.STRING, "no"),
            ("runtime.blackbox.dump_state", K.STRING, "no"),
            ("runtime.force_gather", K.STRING, "no")]


def ifaces_print(config, nodeid: int) -> str:
    """totempg_ifaces_print: "r(0) ip(10.0.0.1) " per configured link of `nodeid`, the r()
    index counting the node's interfaces in link order; "" for a node not in the list."""
    for node in getattr(config, "nodes", ()):
        if node.nodeid == nodeid:
            addrs = [node.addrs[link] for link in sorted(node.addrs)]
            return "".join(f"r({i}) ip({addr}) " for i, addr in enumerate(addrs))
    return ""


def member_joined(store, config, nodeid: int) -> None:
    """main.c member_object_joined: first join sets ip/join_count=1, later ones inc."""
    prefix = f"runtime.members.{nodeid}"
    if f"{prefix}.ip" in store:
        store.adjust_int(f"{prefix}.join_count", 1)
    else:
        store.set_value(f"{prefix}.ip", K.STRING, ifaces_print(config, nodeid))
        store.set_value(f"{prefix}.join_count", K.UINT32, 1)
    store.set_value(f"{prefix}.status", K.STRING, "joined")


def member_left(store, nodeid: int) -> None:
    store.set_value(f"runtime.members.{nodeid}.status", K.STRING, "left")
