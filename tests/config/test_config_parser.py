"""corosync.conf syntax as exec/coroparse.c (Corosync 3.1.7) reads it: key naming,
duplicates, comments, separators, and the one error type for every syntax fault."""
from __future__ import annotations

import pytest

from coroproc.config import ConfigParseError, parse_bytes, parse_file, parse_text


def values(text: str) -> dict[str, str]:
    return {k: e.value for k, e in parse_text(text).keys.items()}


def test_sections_nest_into_dotted_keys_with_lines():
    result = parse_text("totem {\n  version: 2\n}\nquorum {\n\tprovider: corosync_votequorum\n}\n")
    assert list(result.keys) == ["totem.version", "quorum.provider"]
    assert result.keys["quorum.provider"].line == 5
    assert result.sections == [("totem", 1), ("quorum", 4)]


def test_value_is_rest_of_line_split_at_first_colon():
    got = values("nodelist {\n node {\n  ring0_addr: fe80::1:2\n }\n}\n")
    assert got == {"nodelist.node.0.ring0_addr": "fe80::1:2"}


def test_no_trailing_comments_and_hash_lines_are_comments():
    got = values("totem {\n  # a comment\n\t  #indented comment\n  token: 3000 # ms\n}\n")
    assert got == {"totem.token": "3000 # ms"}


def test_duplicate_key_last_wins_in_first_position():
    result = parse_text("totem {\n token: 1\n join: 50\n token: 2\n}\n")
    assert list(result.keys) == ["totem.token", "totem.join"]
    assert result.keys["totem.token"].value == "2"
    assert result.keys["totem.token"].line == 4


def test_crlf_blank_lines_and_missing_final_newline():
    assert values("totem {\r\n\r\n  version: 2  \t\r\n}") == {"totem.version": "2"}


def test_colon_and_brace_after_section_name_are_trimmed():
    assert values("totem: {\n version: 2\n}\n") == {"totem.version": "2"}


def test_empty_value_is_kept():
    assert values("totem {\n cluster_name:\n}\n") == {"totem.cluster_name": ""}


def test_interface_keys_numbered_by_linknumber_wherever_it_appears():
    got = values("totem {\n interface {\n  mcastport: 6000\n  linknumber: 3\n  ttl: 2\n"
                 "  foo: bar\n }\n interface {\n  mcastaddr: 239.1.1.1\n }\n}\n")
    assert got == {"totem.interface.foo": "bar", "totem.interface.3.mcastport": "6000",
                   "totem.interface.3.ttl": "2", "totem.interface.0.mcastaddr": "239.1.1.1"}


def test_members_are_numbered_last_first_like_coroparse():
    got = values("totem {\n interface {\n  member {\n   memberaddr: 10.0.0.1\n  }\n"
                 "  member {\n   memberaddr: 10.0.0.2\n  }\n }\n}\n")
    assert got == {"totem.interface.0.member.0": "10.0.0.2",
                   "totem.interface.0.member.1": "10.0.0.1"}


def test_nodes_are_numbered_and_a_second_nodelist_restarts_at_zero():
    text = ("nodelist {\n node {\n  nodeid: 1\n }\n node {\n  nodeid: 2\n }\n}\n"
            "nodelist {\n node {\n  nodeid: 9\n }\n}\n")
    assert values(text) == {"nodelist.node.0.nodeid": "9", "nodelist.node.1.nodeid": "2"}


def test_logger_subsys_keys_are_named_by_subsys():
    got = values("logging {\n logger_subsys {\n  debug: on\n  subsys: QUORUM\n }\n}\n")
    assert got == {"logging.logger_subsys.QUORUM.debug": "on",
                   "logging.logger_subsys.QUORUM.subsys": "QUORUM"}


def test_logging_daemon_named_corosync_maps_onto_logging():
    got = values("logging {\n logging_daemon {\n  name: corosync\n  subsys: CPG\n"
                 "  debug: on\n }\n logging_daemon {\n  name: other\n  to_syslog: no\n }\n}\n")
    assert got == {"logging.logger_subsys.CPG.debug": "on",
                   "logging.logger_subsys.CPG.subsys": "CPG",
                   "logging.logging_daemon.other.to_syslog": "no",
                   "logging.logging_daemon.other.name": "other"}


def test_uidgid_resolves_names_to_ids():
    result = parse_text("uidgid {\n uid: root\n gid: 0\n}\n")
    assert {k: (e.value, e.cmap_type) for k, e in result.keys.items()} == {
        "uidgid.config.uid.0": ("1", "u8"), "uidgid.config.gid.0": ("1", "u8")}


def test_unknown_uidgid_user_is_an_error():
    with pytest.raises(ConfigParseError, match="is not found in /etc/passwd"):
        parse_text("uidgid {\n uid: no-such-user-coroproc-test\n}\n")


def test_line_of_510_bytes_is_accepted_and_511_refused():
    ok = "totem {\n cluster_name: " + "x" * (510 - len(" cluster_name: ")) + "\n}\n"
    assert len(values(ok)["totem.cluster_name"]) == 510 - len(" cluster_name: ")
    with pytest.raises(ConfigParseError, match="Line too long") as info:
        parse_text(ok.replace("x", "xx", 1))
    assert info.value.line == 2


def test_key_name_longer_than_cmap_allows_is_refused():
    with pytest.raises(ConfigParseError, match="longer than 255 bytes"):
        parse_text("totem {\n " + "k" * 250 + ": 1\n}\n")


def test_nul_byte_is_refused():
    with pytest.raises(ConfigParseError, match="NUL"):
        parse_bytes(b"totem {\n version: 2\x00\n}\n", "x.conf")


def test_error_str_names_file_line_and_key():
    error = ConfigParseError("corosync.conf", 12, "totem.token", "'abc' is not an integer")
    assert str(error) == "corosync.conf:12: totem.token: 'abc' is not an integer"
    assert str(ConfigParseError("c.conf", None, None, "bad")) == "c.conf: bad"


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigParseError, match="Can't read file"):
        parse_file(str(tmp_path / "missing.conf"))
