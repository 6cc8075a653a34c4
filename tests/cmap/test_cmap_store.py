"""icmap semantics of the CMAP Store (exec/icmap.c): types, names, no-op sets, deletes,
inc/dec wrapping, sorted prefix walks that survive concurrent changes, and tracking."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.engineprocs.cmap import keys as K
from coroproc.engineprocs.cmap.store import (
    TRACK_ADD,
    TRACK_DELETE,
    TRACK_MODIFY,
    TRACK_PREFIX,
    Store,
)


def recorder():
    seen = []
    return seen, lambda event, key, new, old: seen.append((event, key, new, old))


def walk(store, prefix=""):
    out, last = [], None
    while (found := store.iter_next(prefix, last)) is not None:
        out.append(found[0])
        last = found[0]
    return out


def test_get_returns_the_stored_type_and_bytes():
    s = Store()
    for value_type, value in ((K.INT8, -3), (K.UINT8, 200), (K.INT16, -300), (K.UINT16, 60000),
                              (K.INT32, -7), (K.UINT32, 4000000000), (K.INT64, -2**40),
                              (K.UINT64, 2**63), (K.FLOAT, 1.5), (K.DOUBLE, -2.25)):
        assert s.set_value(f"k.{value_type}", value_type, value) == K.CS_OK
        assert s.get(f"k.{value_type}") == (value_type, K.encode(value_type, value))
        assert s.get_value(f"k.{value_type}") == value
    assert s.set("k.str", K.STRING, b"abc\0") == K.CS_OK
    assert s.get("k.str") == (K.STRING, b"abc\0")
    assert s.set("k.bin", K.BINARY, b"\0\1\2") == K.CS_OK
    assert s.get("k.bin") == (K.BINARY, b"\0\1\2")


def test_string_without_nul_is_stored_with_one():
    s = Store()
    assert s.set("a.b", K.STRING, b"xyz") == K.CS_OK
    assert s.get("a.b") == (K.STRING, b"xyz\0")


def test_value_length_must_match_the_type():
    s = Store()
    assert s.set("a.b", K.UINT32, b"\0\0") == K.CS_ERR_INVALID_PARAM
    assert s.set("a.b", K.UINT8, b"\0\0") == K.CS_ERR_INVALID_PARAM
    assert s.set("a.b", 13, b"") == K.CS_ERR_INVALID_PARAM
    assert s.set("a.b", 0, b"") == K.CS_ERR_INVALID_PARAM
    # a string length past the string's NUL + 1 is refused, as icmap_check_value_len
    assert s.set("a.b", K.STRING, b"ab\0\0\0") == K.CS_ERR_INVALID_PARAM
    assert s.set("a.b", K.BINARY, b"x" * (K.VALUE_MAX_BYTES + 1)) == K.CS_ERR_INVALID_PARAM
    assert s.set("a.b", K.BINARY, b"x" * K.VALUE_MAX_BYTES) == K.CS_OK
    assert "a.c" not in s


@pytest.mark.parametrize("key", ["ab", "x" * 256, "a b", "a\tb", "ké.y", "a*b", "a,b", ""])
def test_bad_names_are_name_too_long(key):
    s = Store()
    assert s.set_value(key, K.UINT8, 1) == K.CS_ERR_NAME_TOO_LONG
    assert len(s) == 0


@pytest.mark.parametrize("key", ["abc", "x" * 255, "a-b_c.d/e:f", "A.Z.09"])
def test_good_names(key):
    s = Store()
    assert s.set_value(key, K.UINT8, 1) == K.CS_OK


def test_type_change_is_a_modify():
    s = Store()
    seen, cb = recorder()
    s.set_value("a.b", K.UINT8, 1)
    s.track_add("a.b", TRACK_MODIFY, cb)
    assert s.set_value("a.b", K.UINT16, 1) == K.CS_OK
    assert s.get("a.b") == (K.UINT16, b"\1\0")
    assert seen == [(TRACK_MODIFY, "a.b", (K.UINT16, b"\1\0"), (K.UINT8, b"\1"))]


def test_same_value_is_no_event():
    s = Store()
    seen, cb = recorder()
    s.set_value("a.b", K.STRING, "v")
    s.track_add("a", TRACK_ADD | TRACK_MODIFY | TRACK_DELETE | TRACK_PREFIX, cb)
    assert s.set_value("a.b", K.STRING, "v") == K.CS_OK
    assert s.set("a.b", K.STRING, b"v\0") == K.CS_OK
    assert seen == []


def test_delete_missing_and_delete_events():
    s = Store()
    seen, cb = recorder()
    assert s.delete("no.such") == K.CS_ERR_NOT_EXIST
    s.set_value("a.b", K.UINT32, 5)
    s.track_add("a.b", TRACK_DELETE, cb)
    assert s.delete("a.b") == K.CS_OK
    assert s.delete("a.b") == K.CS_ERR_NOT_EXIST
    assert seen == [(TRACK_DELETE, "a.b", None, (K.UINT32, struct.pack("<I", 5)))]


@pytest.mark.parametrize("value_type,start,step,expect", [
    (K.UINT8, 255, 1, 0), (K.UINT8, 0, -1, 255), (K.INT8, 127, 1, -128),
    (K.UINT16, 65535, 1, 0), (K.INT32, -1, 1, 0), (K.UINT32, 0, -1, 2**32 - 1),
    (K.UINT64, 2**64 - 1, 1, 0), (K.INT64, 5, -10, -5), (K.UINT32, 7, 100, 107)])
def test_adjust_wraps_like_c(value_type, start, step, expect):
    s = Store()
    s.set_value("n.x", value_type, start)
    assert s.adjust_int("n.x", step) == K.CS_OK
    assert s.get_value("n.x") == expect
    assert s.get("n.x")[0] == value_type


@pytest.mark.parametrize("value_type,value", [(K.FLOAT, 1.0), (K.DOUBLE, 1.0),
                                              (K.STRING, "1"), (K.BINARY, b"\1")])
def test_adjust_only_on_integers(value_type, value):
    s = Store()
    s.set_value("n.x", value_type, value)
    assert s.adjust_int("n.x", 1) == K.CS_ERR_INVALID_PARAM
    assert s.adjust_int("n.missing", 1) == K.CS_ERR_NOT_EXIST


def test_prefix_walk_is_sorted_and_live():
    s = Store()
    for key in ("b.2", "a.1", "b.10", "b.1", "c.0", "b-x"):
        s.set_value(key, K.UINT8, 0)
    assert walk(s) == ["a.1", "b-x", "b.1", "b.10", "b.2", "c.0"]
    assert walk(s, "b.") == ["b.1", "b.10", "b.2"]
    assert walk(s, "zz") == []
    # delete the key the walk stands on and add one ahead: the walk sees the new one
    first = s.iter_next("b.", None)[0]
    s.delete(first)
    s.set_value("b.15", K.UINT8, 0)
    rest, last = [], first
    while (found := s.iter_next("b.", last)) is not None:
        rest.append(found[0])
        last = found[0]
    assert rest == ["b.10", "b.15", "b.2"]


def test_track_exact_key_and_prefix():
    s = Store()
    exact, cb_exact = recorder()
    pref, cb_pref = recorder()
    every, cb_every = recorder()
    s.track_add("a.b", TRACK_ADD | TRACK_MODIFY | TRACK_DELETE, cb_exact)
    s.track_add("a.", TRACK_ADD | TRACK_PREFIX, cb_pref)
    s.track_add(None, TRACK_ADD | TRACK_DELETE | TRACK_PREFIX, cb_every)
    s.set_value("a.b", K.UINT8, 1)
    s.set_value("a.bc", K.UINT8, 1)
    s.set_value("x.y", K.UINT8, 1)
    s.set_value("a.b", K.UINT8, 2)
    s.delete("a.b")
    assert [(e, k) for e, k, _, _ in exact] == [(TRACK_ADD, "a.b"), (TRACK_MODIFY, "a.b"),
                                                (TRACK_DELETE, "a.b")]
    assert [k for _, k, _, _ in pref] == ["a.b", "a.bc"]
    assert [(e, k) for e, k, _, _ in every] == [(TRACK_ADD, "a.b"), (TRACK_ADD, "a.bc"),
                                                (TRACK_ADD, "x.y"), (TRACK_DELETE, "a.b")]
    assert exact[0][2:] == ((K.UINT8, b"\1"), None)
    assert exact[1][2:] == ((K.UINT8, b"\2"), (K.UINT8, b"\1"))


def test_track_without_key_or_prefix_sees_nothing_and_delete_stops_events():
    s = Store()
    seen, cb = recorder()
    silent = s.track_add(None, TRACK_ADD, cb)
    s.set_value("a.b", K.UINT8, 1)
    assert seen == []
    track = s.track_add("a.b", TRACK_MODIFY, cb)
    assert s.track_delete(track) and not s.track_delete(track)
    s.set_value("a.b", K.UINT8, 2)
    assert seen == [] and s.track_delete(silent)
    with pytest.raises(ValueError):
        s.track_add("a.b", 16, cb)


def test_callback_may_delete_tracks_while_notified():
    s = Store()
    seen = []
    tracks = []

    def first(event, key, new, old):
        seen.append("first")
        s.track_delete(tracks[1])

    tracks.append(s.track_add("a.b", TRACK_ADD, first))
    tracks.append(s.track_add("a.b", TRACK_ADD, lambda *a: seen.append("second")))
    s.set_value("a.b", K.UINT8, 1)
    assert seen == ["first"]


def test_fast_adjust_reports_no_old_value():
    s = Store()
    seen, cb = recorder()
    s.set_value("n.x", K.UINT64, 1)
    s.track_add("n.x", TRACK_MODIFY, cb)
    assert s.adjust_int("n.x", 1, fast=True) == K.CS_OK
    assert seen == [(TRACK_MODIFY, "n.x", (K.UINT64, struct.pack("<Q", 2)), None)]


def test_key_count_is_bounded():
    s = Store(keys_max=2)
    assert s.set_value("a.a", K.UINT8, 1) == K.CS_OK
    assert s.set_value("a.b", K.UINT8, 1) == K.CS_OK
    assert s.set_value("a.c", K.UINT8, 1) == K.CS_ERR_NO_RESOURCES
    assert s.set_value("a.a", K.UINT8, 2) == K.CS_OK      # updates still work


# ---- the Store against a plain dict model -------------------------------------------------
_names = st.sampled_from(["a.a", "a.b", "a.bb", "b.a", "ab.c", "zzz", "a/b:c-d_e"])
_typed = st.one_of(
    st.tuples(st.just(K.UINT8), st.integers(0, 255)),
    st.tuples(st.just(K.INT32), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just(K.UINT64), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(K.STRING), st.text("abc", max_size=4)),
    st.tuples(st.just(K.BINARY), st.binary(max_size=4)))
_ops = st.lists(st.one_of(
    st.tuples(st.just("set"), _names, _typed),
    st.tuples(st.just("delete"), _names, st.none()),
    st.tuples(st.just("adjust"), _names, st.integers(-3, 3))), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_ops, st.sampled_from(["", "a", "a.", "a.b", "b", "z"]))
def test_store_matches_dict_model(ops, prefix):
    store, model, events, expected = Store(), {}, [], []
    store.track_add(prefix or None, TRACK_ADD | TRACK_DELETE | TRACK_MODIFY | TRACK_PREFIX,
                    lambda e, k, new, old: events.append((e, k, new, old)))
    for op, key, arg in ops:
        old = model.get(key)
        if op == "set":
            new = (arg[0], K.encode(*arg))
            assert store.set_value(key, *arg) == K.CS_OK
            if old != new:
                model[key] = new
                expected.append((TRACK_MODIFY if old else TRACK_ADD, key, new, old))
        elif op == "delete":
            assert store.delete(key) == (K.CS_OK if old else K.CS_ERR_NOT_EXIST)
            if old:
                del model[key]
                expected.append((TRACK_DELETE, key, None, old))
        else:
            err = store.adjust_int(key, arg)
            if old is None:
                assert err == K.CS_ERR_NOT_EXIST
            elif old[0] not in K.INTEGER_TYPES:
                assert err == K.CS_ERR_INVALID_PARAM
            else:
                assert err == K.CS_OK
                value = K.wrap_integer(old[0], K.decode(*old) + arg)
                new = (old[0], K.encode(old[0], value))
                if new != old:
                    model[key] = new
                    expected.append((TRACK_MODIFY, key, new, old))
    assert {k: store.get(k) for k in store.names()} == model
    assert walk(store, prefix) == sorted(k for k in model if k.startswith(prefix))
    assert events == [e for e in expected if e[1].startswith(prefix)]
