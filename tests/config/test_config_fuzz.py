"""Garbage in gives a model or ConfigParseError, never another exception (h11's rule).

Two generators: raw bytes/text for the parser, and near-valid configurations (known
sections and keys, values from a pool of good and bad words) for the whole load, so the
schema, nodelist, link and timer code see deep inputs. Address values come from a fixed
pool of literals and "localhost": no DNS traffic. Derandomized, so every run tries
the same examples.
"""
from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coroproc.config import ConfigParseError, NodeConfig, load, parse_bytes, parse_text

FUZZ = settings(derandomize=True, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow])

_ALPHABET = st.sampled_from(list("{}:#= \t\r\nabcxyz019.-_/") + ["\x00", "é", "totem",
                                                                 "version: 2", "node {"])


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise(data):
    try:
        result = parse_bytes(data, "fuzz.conf")
    except ConfigParseError as exc:
        assert exc.file == "fuzz.conf" and str(exc).startswith("fuzz.conf")
    else:
        assert all(entry.line >= 1 for entry in result.keys.values())


@FUZZ
@given(st.lists(_ALPHABET, max_size=200).map("".join))
def test_arbitrary_text_parses_or_raises(text):
    try:
        parse_text(text)
    except ConfigParseError:
        pass


# Per key: mostly values Corosync accepts, so loads get past the schema; the shared bad
# words then probe every check.
_BAD = ["", "-1", "abc", "99999999999", "2 # c"]
_GOOD = {
    "totem": {"version": ["2", "2", "3"], "transport": ["udpu", "udp", "knet"],
              "cluster_name": ["ab", "fuzz", "x" * 40], "token": ["0", "50", "1000", "3000"],
              "join": ["0", "10", "50", "100"], "consensus": ["0", "40", "1200", "5000"],
              "hold": ["0", "10", "100"], "token_retransmit": ["0", "30", "300"],
              "token_coefficient": ["0", "650"], "ip_version": ["ipv4", "ipv6", "ipv6-4"],
              "netmtu": ["0", "500", "1500", "9000"], "window_size": ["0", "10", "50", "5000"],
              "max_messages": ["0", "17", "100"], "crypto_cipher": ["none", "aes256"],
              "crypto_hash": ["none", "sha256"], "secauth": ["on", "off"],
              "clear_node_high_bit": ["yes", "no"], "token_warning": ["0", "75", "100"],
              "downcheck": ["0", "10", "1000"], "bogus": ["1"]},
    "interface": {"linknumber": ["0", "0", "1"], "mcastaddr": ["239.192.0.1", "ff15::1",
                  "127.0.0.1"], "mcastport": ["0", "5405", "6000"], "ttl": ["1", "4"],
                  "broadcast": ["yes", "no"], "bindnetaddr": ["127.0.0.0"],
                  "knet_link_priority": ["1", "2"]},
    "node": {"ring0_addr": ["127.0.0.1", "127.0.0.2", "::1", "203.0.113.9", "2001:db8::1",
                            "localhost", "0.0.0.0"], "ring1_addr": ["127.0.0.1"],
             "nodeid": ["0", "1", "2", "2130706433"], "name": ["n1", "n2"],
             "quorum_votes": ["1", "2"]},
    "quorum": {"provider": ["corosync_votequorum", "corosync_ykd"], "two_node": ["0", "1"],
               "wait_for_all": ["0", "1"], "expected_votes": ["2", "3"],
               "auto_tie_breaker_node": ["lowest", "1 2", "x"]},
    "logging": {"to_stderr": ["yes", "off"], "timestamp": ["hires", "on"],
                "debug": ["trace", "off"], "logfile": ["/tmp/x"], "to_logfile": ["yes"]},
    "coroproc": {"nodeid": ["1", "2"], "service_suffix": ["-a", "bad suffix"],
                 "run_dir": ["/tmp/x", "relative"]},
}


def _items(section: str, max_size: int, min_size: int = 0):
    goods = _GOOD[section]
    pair = st.sampled_from(sorted(goods)).flatmap(
        lambda k: st.tuples(st.just(k), st.sampled_from(
            goods[k] if k.endswith("_addr") else goods[k] * 9 + _BAD)))
    return st.lists(pair, min_size=min_size, max_size=max_size).map(
        lambda kv: "".join(f"  {k}: {v}\n" for k, v in kv))


_config = st.tuples(
    _items("totem", 6),
    st.lists(_items("interface", 3), max_size=2),
    st.lists(st.tuples(st.sampled_from(_GOOD["node"]["ring0_addr"]), _items("node", 3)),
             min_size=1, max_size=4),
    _items("quorum", 3),
    _items("logging", 3),
    _items("coroproc", 2),
).map(lambda p: ("totem {\n  version: 2\n  transport: udpu\n" + p[0]
                 + "".join(" interface {\n" + i + " }\n" for i in p[1]) + "}\n"
                 + "nodelist {\n"
                 + "".join(f" node {{\n  ring0_addr: {a}\n{n} }}\n" for a, n in p[2]) + "}\n"
                 + "quorum {\n" + p[3] + "}\nlogging {\n" + p[4] + "}\n"
                 + "coroproc {\n" + p[5] + "}\n"))


@FUZZ
@given(_config, st.one_of(st.none(), st.sampled_from([1, 2, 2130706433])))
def test_near_valid_configs_load_or_raise(text, nodeid_override):
    fd, path = tempfile.mkstemp(suffix=".conf", prefix=f"coroproc-fuzz-{os.getpid()}-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            config, warnings = load(path, nodeid_override)
        except ConfigParseError as exc:
            assert str(exc).startswith(path)
        else:
            assert isinstance(config, NodeConfig)
            assert config.local_nodeid in {n.nodeid for n in config.nodes}
            config.totem.to_array()
    finally:
        os.unlink(path)
