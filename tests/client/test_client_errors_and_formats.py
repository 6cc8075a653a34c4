"""cs_error_t names/texts, CsError, and the tools' text formats (pure unit tests)."""

import errno
import pickle

import pytest

from coroproc.client import errors
from coroproc.ipc import cserror
from coroproc.tools import cmap_format as F
from coroproc.tools.cpgtool import escape_group, format_addrs


def test_numbers_and_names_follow_corotypes():
    assert (cserror.CS_OK, cserror.CS_ERR_TRY_AGAIN, cserror.CS_ERR_TOO_MANY_GROUPS,
            cserror.CS_ERR_SECURITY) == (1, 6, 30, 100)
    assert cserror.name_of(6) == "CS_ERR_TRY_AGAIN"
    assert cserror.name_of(29) == "CS_ERR_UNKNOWN(29)"
    assert cserror.strerror(1) == "success"
    assert cserror.strerror(12) == "CS_ERR_NOT_EXIST"
    assert cserror.strerror(29) == "unknown error"
    assert errors.CS_ERR_ACCESS == 11 and errors.CsError is cserror.CsError


def test_cs_error_says_which_call_failed_and_pickles():
    exc = cserror.CsError(cserror.CS_ERR_EXIST, "cpg_join('g')", "already joined")
    assert (exc.code, exc.name, exc.call) == (14, "CS_ERR_EXIST", "cpg_join('g')")
    assert str(exc) == "cpg_join('g') failed: CS_ERR_EXIST (14): already joined"
    again = pickle.loads(pickle.dumps(exc))
    assert (again.code, again.call) == (14, "cpg_join('g')")
    with pytest.raises(cserror.CsError):
        cserror.check(cserror.CS_ERR_BUSY, "x")
    cserror.check(cserror.CS_OK, "x")


@pytest.mark.parametrize("err,code", [(0, 1), (-errno.EAGAIN, 6), (errno.EAGAIN, 6),
                                      (-errno.ENOENT, 12), (-errno.EMSGSIZE, 26),
                                      (-errno.ECONNREFUSED, 2), (-errno.EACCES, 11)])
def test_errno_mapping_as_qb_to_cs_error(err, code):
    assert cserror.from_errno(err) == code


@pytest.mark.parametrize("type_name,text,expected", [
    ("u8", "255", 255), ("i8", " -128x", -128), ("u64", "-1", 2**64 - 1),
    ("u64", "99999999999999999999999", 2**64 - 1), ("i64", "-99999999999999999999", -(2**63)),
    ("flt", "1e39", float("inf")), ("dbl", ".5e1", 5.0), ("str", "a b", "a b"),
])
def test_values_parse_like_sscanf(type_name, text, expected):
    assert F.parse_value(type_name, text)[1] == expected


@pytest.mark.parametrize("type_name,text,message", [
    ("u8", "256", "256 is not valid u8 integer"), ("u8", "-1", "-1 is not valid u8 integer"),
    ("i16", "x", "x is not valid i16 type value"), ("q", "1", "Unknown type q"),
])
def test_value_errors_use_the_c_tools_messages(type_name, text, message):
    with pytest.raises(F.ValueTextError) as err:
        F.parse_value(type_name, text)
    assert str(err.value) == message


def test_key_lines():
    assert F.format_key("a.b", 6, 5, quiet=False, show_binary=False) == "a.b (u32) = 5"
    assert F.format_key("a.b", 10, 0.5, quiet=True, show_binary=False) == "0.500000"
    assert F.format_key("a.b", 12, b"\x80\\", quiet=False, show_binary=False) == "a.b (bin)"
    assert F.format_key("a.b", 12, b"\x80\\a\x7f", quiet=True, show_binary=True) == \
        "bin) = \\xFFFFFF80\\\\a\\x7F"
    assert F.json_value(12, b"\x01\xff") == "01ff"


def test_cpgtool_group_escaping_and_address_spacing():
    assert escape_group(b"a\\\x01\xff", True) == b"a\\\\\\x01\\xFFFFFFFF"
    assert escape_group(b"a\\\x01", False) == b"a\\\x01"
    assert format_addrs(["10.0.0.1", None, "10.0.1.1"]) == b"10.0.0.1 10.0.1.1"
    assert format_addrs([None, "10.0.1.1"]) == b" 10.0.1.1"  # the C tool's quirk
