"""corosync.conf → initial cmap content for the config corpus: every file key with
coroparse's name and type, the daemon's runtime.config.totem.* effective values,
totem.config_version, the service keys, and runtime.members.*.ip formatting."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from coroproc.config import load
from coroproc.engineprocs.api import CONFIG_REGULAR, Configuration, RingId
from coroproc.engineprocs.cmap import keys as K

from .cmap_helpers import new_engine

CORPUS = Path(__file__).parent.parent / "config" / "corpus" / "good"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
LOADABLE = sorted(name for name, spec in EXPECTED.items()
                  if not name.startswith("_") and "refused" not in spec)


def engine_for(name, options=None, node_engines=None):
    config, _warnings = load(str(CORPUS / name), EXPECTED[name].get("nodeid_override"))
    engine, _ctx = new_engine(config, options, nodeid=config.local_nodeid,
                              node_engines=node_engines)
    return engine, config


@pytest.mark.parametrize("name", LOADABLE)
def test_every_file_key_is_in_cmap_with_its_type(name):
    engine, config = engine_for(name)
    assert config.keys, name
    for key, entry in config.keys.items():
        value_type = K.TYPE_BY_NAME[entry.cmap_type]
        assert engine.store.get(key) is not None, key
        assert engine.store.get(key)[0] == value_type, key
        value = engine.store.get_value(key)
        assert value == (int(entry.value) if value_type in K.INTEGER_TYPES else entry.value)
    assert engine.store.get("totem.config_version")[0] == K.UINT64
    assert engine.store.get_value("runtime.services.cmap.service_id") == 0
    assert engine.store.get("runtime.services.cmap.service_id")[0] == K.UINT16
    assert engine.store.get_value("internal_configuration.service.0.name") == "corosync_cmap"
    assert engine.store.get_value("runtime.blackbox.dump_flight_data") == "no"


def test_all_sections_types_and_runtime_values():
    engine, _ = engine_for("all-sections.conf")
    get = engine.store.get
    expect = {
        "totem.token": (K.UINT32, 2000), "totem.window_size": (K.UINT32, 60),
        "totem.cluster_name": (K.STRING, "everything"),
        "totem.block_unlisted_ips": (K.STRING, "no"),
        "totem.config_version": (K.UINT64, 0),
        "nodelist.node.2.nodeid": (K.UINT32, 3), "nodelist.node.1.name": (K.STRING, "every-2"),
        "nodelist.node.0.ring0_addr": (K.STRING, "127.0.0.1"),
        "nodelist.local_node_pos": (K.UINT32, 1),
        "quorum.wait_for_all": (K.UINT8, 1), "quorum.last_man_standing_window": (K.UINT32, 20000),
        "quorum.auto_tie_breaker_node": (K.STRING, "3 2"),
        "logging.logger_subsys.CPG.debug": (K.STRING, "on"),
        "logging.logger_subsys.CPG.subsys": (K.STRING, "CPG"),
        "resources.watchdog_timeout": (K.UINT32, 10),
        "nozzle.name": (K.STRING, "noz01"),
        "coroproc.nodeid": (K.UINT32, 2), "coroproc.service_suffix": (K.STRING, "-n2"),
        # totemconfig.c: token + (3 - 2) * coefficient 0; explicit values; yes/no → u32
        "runtime.config.totem.token": (K.UINT32, 2000),
        "runtime.config.totem.token_retransmit": (K.UINT32, int(2000 / 10.2)),
        "runtime.config.totem.consensus": (K.UINT32, 2400),
        "runtime.config.totem.downcheck": (K.UINT32, 2000),
        "runtime.config.totem.send_join": (K.UINT32, 80),
        "runtime.config.totem.token_warning": (K.UINT32, 50),
        "runtime.config.totem.max_network_delay": (K.UINT32, 50),
        "runtime.config.totem.block_unlisted_ips": (K.UINT32, 0),
        "runtime.config.totem.cancel_token_hold_on_retransmit": (K.UINT32, 1),
        "runtime.config.totem.knet_compression_level": (K.INT32, 0),
        "runtime.config.totem.knet_compression_model": (K.STRING, "none"),
    }
    for key, (value_type, value) in expect.items():
        assert get(key) == (value_type, K.encode(value_type, value)), key


def test_five_nodes_effective_token_and_config_version():
    engine, _ = engine_for("five-node-udpu.conf")
    value = engine.store.get_value
    assert engine.store.get("totem.config_version") == (K.UINT64, K.encode(K.UINT64, 7))
    assert value("runtime.config.totem.token") == 4950
    assert value("runtime.config.totem.consensus") == 5940
    assert value("runtime.config.totem.token_retransmit") == 1178
    assert value("runtime.config.totem.hold") == 932
    assert value("totem.token", None) in (None, 3000)     # the file's value, not the effective


def test_service_list_from_the_nodes_engines():
    engine, _ = engine_for("two-node.conf",
                           node_engines={0: "cmap", 2: "cpg", 5: "votequorum"})
    value = engine.store.get_value
    assert value("runtime.services.cpg.service_id") == 2
    assert value("internal_configuration.service.2.name") == "corosync_cpg"
    assert value("internal_configuration.service.5.ver") == 0
    assert value("runtime.services.cpg.6.rx") == 0
    assert engine.store.get("runtime.services.cpg.3.tx")[0] == K.UINT64


def test_member_ip_is_totem_ifaces_print():
    engine, _ = engine_for("two-node.conf")
    engine.on_confchg(Configuration(CONFIG_REGULAR, RingId(1, 4), (1, 2), (), (1, 2)))
    assert engine.store.get_value("runtime.members.2.ip") == "r(0) ip(127.0.0.2) "
    assert engine.store.get_value("runtime.members.1.ip") == "r(0) ip(127.0.0.1) "
    assert engine.store.get_value("runtime.members.1.status") == "joined"
