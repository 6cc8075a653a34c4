"""Corosync 3.1.7 defaults and derived values (exec/totemconfig.c), worked out by hand:
timers, "0 means default", ip_version, ports, the udp group address, node ids."""
from __future__ import annotations

import os
import textwrap

import pytest

from coroproc.config import ConfigParseError, load
from coroproc.config.links import derived_mcastaddr

NODES_LOCAL_FIRST = """
nodelist {
    node {
        ring0_addr: 127.0.0.1
        nodeid: 1
    }
%s}
"""


def _conf(tmp_path, totem_body: str, extra_nodes: int = 1, tail: str = "") -> str:
    more = "".join(f"    node {{\n        ring0_addr: 203.0.113.{100 + i}\n"
                   f"        nodeid: {2 + i}\n    }}\n" for i in range(extra_nodes))
    text = "totem {\n    version: 2\n" + textwrap.dedent(totem_body) + "}\n" \
        + NODES_LOCAL_FIRST % more + tail
    path = tmp_path / "corosync.conf"
    path.write_text(text)
    return str(path)


def test_two_node_defaults(tmp_path):
    config, warnings = load(_conf(tmp_path, "transport: udpu\n"))
    totem = config.totem
    assert warnings == []
    assert (totem.effective_token_ms, totem.effective_token_retransmit_ms,
            totem.effective_hold_ms, totem.effective_consensus_ms) == (3000, 714, 561, 3600)
    assert (totem.join_ms, totem.merge_ms, totem.window_size, totem.max_messages,
            totem.miss_count_const, totem.fail_recv_const, totem.seqno_unchanged_const,
            totem.send_join_ms, totem.token_warning_pct) == (50, 200, 50, 17, 5, 2500, 30, 0, 75)
    assert totem.extra == {"downcheck_ms": 1000, "max_network_delay_ms": 50,
                           "heartbeat_failures_allowed": 0}
    assert config.ip_version == "ipv6-4" and config.netmtu == 1500
    assert config.block_unlisted_ips is True and totem.cancel_token_hold_on_retransmit is False
    assert config.links[0].mcastport == 5405 and config.links[0].ttl == 1
    assert config.logging.timestamp == "hires" and config.logging.to_syslog is True
    assert config.quorum.provider is None
    assert config.state_dir == os.environ.get("STATE_DIRECTORY", "/var/lib/corosync")


def test_token_coefficient_applies_from_three_nodes(tmp_path):
    config, _ = load(_conf(tmp_path, "transport: udpu\ntoken: 1000\n", extra_nodes=3))
    # 4 nodes: 1000 + 2 × 650; retransmit = int(2300 / 4.2); hold = int(547 × 0.8 − 10)
    assert config.totem.effective_token_ms == 2300
    assert config.totem.effective_token_retransmit_ms == 547
    assert config.totem.effective_hold_ms == 427
    assert config.totem.effective_consensus_ms == 2760


@pytest.mark.parametrize("key", ["token", "join", "merge", "window_size", "max_messages",
                                 "consensus", "hold", "token_retransmit", "downcheck"])
def test_zero_means_default(tmp_path, key):
    default, _ = load(_conf(tmp_path, "transport: udpu\n"))
    zero, _ = load(_conf(tmp_path, f"transport: udpu\n{key}: 0\n"))
    assert zero.totem == default.totem and zero.totem.extra == default.totem.extra


def test_explicit_timers_are_used(tmp_path):
    config, _ = load(_conf(tmp_path, "transport: udpu\ntoken_retransmit: 400\nhold: 300\n"
                                     "consensus: 5000\n"))
    assert (config.totem.effective_token_retransmit_ms, config.totem.effective_hold_ms,
            config.totem.effective_consensus_ms) == (400, 300, 5000)


def test_udp_defaults_ipv4_and_derives_group_from_cluster_name(tmp_path):
    config, _ = load(_conf(tmp_path, "transport: udp\ncluster_name: ab\n"))
    # generate_cluster_id("ab") = 97 × 2 + 98 = 292 → 239.192.(292 >> 8).(292 % 255)
    assert config.ip_version == "ipv4"
    assert config.links[0].mcastaddr == "239.192.1.37"
    assert config.keys["totem.interface.0.mcastaddr"].value == "239.192.1.37"
    assert config.keys["totem.interface.0.mcastport"].cmap_type == "u16"


def test_group_address_vectors():
    assert derived_mcastaddr("ab", 1, 4) == "239.192.1.38"
    assert derived_mcastaddr("ab", 0, 6) == "ff15::124"
    assert derived_mcastaddr("", 0, 4) == "239.192.0.0"  # an empty name hashes to 0


def test_udp_broadcast_uses_all_ones_and_port_5405(tmp_path):
    config, _ = load(_conf(tmp_path, "transport: udp\ncluster_name: b\n"
                                     "interface {\n    broadcast: yes\n}\n"))
    assert config.links[0].broadcast and config.links[0].mcastaddr == "255.255.255.255"
    assert config.links[0].mcastport == 5405


def test_nodeid_generated_from_ipv4_ring0_and_high_bit_cleared(tmp_path):
    path = tmp_path / "c.conf"
    path.write_text("totem {\n version: 2\n transport: udpu\n clear_node_high_bit: yes\n}\n"
                    "nodelist {\n node {\n  ring0_addr: 203.0.113.9\n }\n"
                    " node {\n  ring0_addr: 127.0.0.1\n }\n}\n")
    config, _ = load(str(path))
    # 203.0.113.9 = 0xCB007109 → high bit cleared 0x4B007109; 127.0.0.1 = 0x7F000001
    assert [n.nodeid for n in config.nodes] == [0x4B007109, 0x7F000001]
    assert config.local_nodeid == 0x7F000001
    assert config.keys["nodelist.node.0.nodeid"].value == str(0x4B007109)


def test_warnings_for_unknown_keys_sections_and_obsolete_options(tmp_path):
    path = _conf(tmp_path, "transport: udpu\nrrp_mode: passive\nbogus: 1\nnodeid: 4\n"
                           "block_unlisted_ips: maybe\n",
                 tail="frobnicate {\n    x: 1\n}\ncoroproc {\n    color: blue\n}\n")
    _, warnings = load(path)
    text = "\n".join(str(w) for w in warnings)
    assert "totem.rrp_mode: rrp_mode was removed in Corosync 3" in text
    assert "totem.bogus: unknown key; ignored" in text
    assert "totem.nodeid: nodeid in totem section is deprecated" in text
    assert "totem.block_unlisted_ips: 'maybe' is neither yes nor no" in text
    assert "frobnicate: unknown section" in text
    assert "coroproc.color: unknown coroproc key" in text
    assert all(w.line for w in warnings)


def test_consensus_below_join_is_refused_with_line(tmp_path):
    with pytest.raises(ConfigParseError, match="may not be less than join timeout") as info:
        load(_conf(tmp_path, "transport: udpu\ntoken: 1000\njoin: 200\nconsensus: 100\n"))
    assert info.value.line == 6


def test_consensus_below_derived_value_is_accepted_like_corosync(tmp_path):
    config, _ = load(_conf(tmp_path, "transport: udpu\ntoken: 1000\nconsensus: 1100\n"))
    assert config.totem.effective_consensus_ms == 1100


def test_two_node_ignored_above_two_nodes(tmp_path):
    config, warnings = load(_conf(tmp_path, "transport: udpu\n", extra_nodes=2,
                                  tail="quorum {\n    provider: corosync_votequorum\n"
                                       "    two_node: 1\n}\n"))
    assert config.quorum.two_node is False and config.quorum.wait_for_all is False
    assert any("two_node is ignored" in str(w) for w in warnings)


def test_window_beyond_coroproc_queue_is_refused_at_its_line(tmp_path):
    with pytest.raises(ConfigParseError, match="queue_slots") as info:
        load(_conf(tmp_path, "transport: udpu\nwindow_size: 5000\n"))
    assert info.value.key == "totem.window_size" and info.value.line == 4


def test_udp_gso_is_on_by_default_and_coroproc_section_turns_it_off(tmp_path):
    from coroproc.supervisor.plan import link_specs
    config, _ = load(_conf(tmp_path, "transport: udpu\n"))
    assert config.coroproc.udp_gso is True
    assert [s.udp_gso for s in link_specs(config)] == [True]
    config, warnings = load(_conf(tmp_path, "transport: udpu\n",
                                  tail="coroproc {\n    udp_gso: no\n}\n"))
    assert warnings == [] and config.coroproc.udp_gso is False
    assert [s.udp_gso for s in link_specs(config)] == [False]
    config, warnings = load(_conf(tmp_path, "transport: udpu\n",
                                  tail="coroproc {\n    udp_gso: maybe\n}\n"))
    assert config.coroproc.udp_gso is True
    assert [(w.key, w.line) for w in warnings] == [("coroproc.udp_gso", 17)]
    assert "maybe" in str(warnings[0])


def test_idle_token_pace_defaults_to_a_ms_and_the_coroproc_section_sets_it(tmp_path):
    from coroproc.ringproc.config import C_IDLE_TOKEN_PACE_US
    config, _ = load(_conf(tmp_path, "transport: udpu\n"))
    assert config.totem.idle_token_pace_us == 1000
    assert config.totem.to_array()[C_IDLE_TOKEN_PACE_US] == 1000
    config, warnings = load(_conf(tmp_path, "transport: udpu\n",
                                  tail="coroproc {\n    idle_token_pace_us: 0\n}\n"))
    assert warnings == [] and config.totem.idle_token_pace_us == 0
    for bad in ("100001", "-1", "fast"):
        with pytest.raises(ConfigParseError) as info:
            load(_conf(tmp_path, "transport: udpu\n",
                       tail=f"coroproc {{\n    idle_token_pace_us: {bad}\n}}\n"))
        assert info.value.key == "coroproc.idle_token_pace_us" and info.value.line == 17


def test_knet_frames_are_64_kib_with_sort_queues_sized_to_match(tmp_path):
    """knet's default netmtu is 65,000 (fragmented by the links at the path MTU); the sort
    queues then hold 1,024 frames, not 4,096, so their memory stays what 16 KiB frames
    cost — unless the window needs more slots."""
    from coroproc.config.sections import SORT_QUEUE_BYTES_MAX, queue_slots_for
    config, _ = load(_conf(tmp_path, "transport: knet\n"))
    assert config.netmtu == 65000
    assert config.totem.queue_slots == 1024
    assert config.totem.queue_slots * config.totem.frame_bytes <= SORT_QUEUE_BYTES_MAX
    config, _ = load(_conf(tmp_path, "transport: udpu\n"))
    assert config.totem.queue_slots == 4096
    config, _ = load(_conf(tmp_path, "transport: knet\nwindow_size: 500\n"))
    assert config.totem.queue_slots == 2048
    assert queue_slots_for(65000, 5000) == 4096          # validate() refuses that window


def test_netmtu_above_one_datagram_is_knet_clamped_and_udpu_refused(tmp_path):
    """Corosync's knet takes netmtu 65,536; coroproc's links carry at most 65,000-byte
    frames: a knet file loads with a warning naming the key, a udpu one is refused."""
    config, warnings = load(_conf(tmp_path, "transport: knet\nnetmtu: 65536\n"))
    assert config.netmtu == 65000
    assert [w.key for w in warnings] == ["totem.netmtu"]
    with pytest.raises(ConfigParseError, match="does not fit one UDP datagram") as info:
        load(_conf(tmp_path, "transport: udpu\nnetmtu: 65536\n"))
    assert info.value.key == "totem.netmtu" and info.value.line == 4


@pytest.mark.parametrize("value, loaded", [(None, "auto"), ("auto", "auto"), ("none", "none"),
                                           ("1", "1"), ("01", "1")])
def test_ring_cpu_loads_auto_none_or_a_cpu_number(tmp_path, value, loaded):
    tail = f"coroproc {{\n    ring_cpu: {value}\n}}\n" if value else ""
    config, warnings = load(_conf(tmp_path, "transport: udpu\n", tail=tail))
    assert warnings == [] and config.coroproc.ring_cpu == loaded


@pytest.mark.parametrize("value, says", [("last", "'last' is not allowed"),
                                         ("-1", "'-1' is not allowed"),
                                         ("9000", "CPU 9000 is above 8191")])
def test_ring_cpu_refuses_anything_else_at_its_line(tmp_path, value, says):
    with pytest.raises(ConfigParseError, match=says) as info:
        load(_conf(tmp_path, "transport: udpu\n", tail=f"coroproc {{\n    ring_cpu: {value}\n}}\n"))
    assert info.value.key == "coroproc.ring_cpu" and info.value.line == 17


@pytest.mark.parametrize("value, loaded", [(None, 100), ("0", 0), ("100", 100),
                                           ("2500", 2500), ("100000", 100000)])
def test_sched_slice_us_loads_100_by_default_0_or_a_kernel_slice(tmp_path, value, loaded):
    tail = f"coroproc {{\n    sched_slice_us: {value}\n}}\n" if value else ""
    config, warnings = load(_conf(tmp_path, "transport: udpu\n", tail=tail))
    assert warnings == [] and config.scheduling.slice_us == loaded


@pytest.mark.parametrize("value, says", [("50", "50 us is below the kernel's shortest slice, "
                                                 "100 us"),
                                         ("100001", "100001"), ("fast", "fast")])
def test_sched_slice_us_refuses_what_the_kernel_cannot_take_at_its_line(tmp_path, value, says):
    with pytest.raises(ConfigParseError, match=says) as info:
        load(_conf(tmp_path, "transport: udpu\n",
                   tail=f"coroproc {{\n    sched_slice_us: {value}\n}}\n"))
    assert info.value.key == "coroproc.sched_slice_us" and info.value.line == 17


@pytest.mark.parametrize("value, loaded", [(None, 200), ("0", 0), ("50", 50),
                                           ("10000", 10000)])
def test_own_delivery_spin_us_loads_200_by_default_0_or_up_to_10_ms(tmp_path, value, loaded):
    tail = f"coroproc {{\n    own_delivery_spin_us: {value}\n}}\n" if value else ""
    config, warnings = load(_conf(tmp_path, "transport: udpu\n", tail=tail))
    assert warnings == [] and config.coroproc.own_delivery_spin_us == loaded


@pytest.mark.parametrize("value", ["10001", "-1", "long"])
def test_own_delivery_spin_us_refuses_anything_else_at_its_line(tmp_path, value):
    with pytest.raises(ConfigParseError, match=value) as info:
        load(_conf(tmp_path, "transport: udpu\n",
                   tail=f"coroproc {{\n    own_delivery_spin_us: {value}\n}}\n"))
    assert info.value.key == "coroproc.own_delivery_spin_us" and info.value.line == 17


@pytest.mark.parametrize("body, sched_rr, nice", [
    ("", False, None), ("sched_rr: yes", True, None), ("sched_rr: no", False, None),
    ("sched_rr: no\n    priority: max", False, -20), ("priority: min", False, 19),
    ("sched_rr: yes\n    priority: -5", True, -5), ("priority: +7", False, 7),
    ("priority: 0", False, 0)])
def test_system_sched_rr_and_priority_load_off_by_default(tmp_path, body, sched_rr,
                                                                  nice):
    tail = f"system {{\n    {body}\n}}\n" if body else ""
    config, warnings = load(_conf(tmp_path, "transport: udpu\n", tail=tail))
    assert warnings == []
    assert (config.scheduling.sched_rr, config.scheduling.nice) == (sched_rr, nice)
    assert config.scheduling.move_to_root_cgroup == "auto"      # Corosync's default


@pytest.mark.parametrize("value", ["yes", "no", "auto"])
def test_system_move_to_root_cgroup_loads_as_written(tmp_path, value):
    config, _ = load(_conf(tmp_path, "transport: udpu\n",
                           tail=f"system {{\n    move_to_root_cgroup: {value}\n}}\n"))
    assert config.scheduling.move_to_root_cgroup == value


@pytest.mark.parametrize("body, key, says", [
    ("sched_rr: maybe", "system.sched_rr", "maybe"),
    ("move_to_root_cgroup: always", "system.move_to_root_cgroup", "always"),
    ("priority: 20", "system.priority", "'20' is not allowed"),
    ("priority: high", "system.priority", "'high' is not allowed")])
def test_system_sched_rr_and_priority_refuse_anything_else_at_their_line(tmp_path, body, key,
                                                                         says):
    with pytest.raises(ConfigParseError, match=says) as info:
        load(_conf(tmp_path, "transport: udpu\n", tail=f"system {{\n    {body}\n}}\n"))
    assert info.value.key == key and info.value.line == 17
