"""coroproc-cmapctl and coroproc-cpgtool print what corosync-cmapctl/-cpgtool print.

Both tools run against the same real Corosync 3.1.7 daemon with the same arguments;
stdout, stderr and exit codes must match (stderr up to the program name in getopt's
messages). Only statistics values, which change between two runs, are compared by
key and type alone.
"""

import json
import os
import re
import sys
from pathlib import Path
from subprocess import PIPE

import pytest

CMAPCTL = [sys.executable, "-m", "coroproc.tools.cmapctl"]
CPGTOOL = [sys.executable, "-m", "coroproc.tools.cpgtool"]
PREFIX = f"tooltest{os.getpid()}."
_LINE_RE = re.compile(r"^(\S+) \((\w+)\)")


def both(daemon, c_tool, ours, args, **kw):
    return daemon.run([c_tool, *args], **kw), daemon.run([*ours, *args], **kw)


def assert_same(c, py):
    assert (py.returncode, py.stdout) == (c.returncode, c.stdout), (c.stderr, py.stderr)
    assert py.stderr.replace("cmapctl.py", "x").replace("cpgtool.py", "x") == \
        c.stderr.replace("corosync-cmapctl", "x").replace("corosync-cpgtool", "x")


def keys_and_types(text):
    return [_LINE_RE.match(line).groups() for line in text.splitlines()]


@pytest.fixture(scope="module")
def keys(daemon):
    """A few keys of every type, set with the C tool, removed afterwards."""
    raw = bytes([0x61, 0x80, 0xFF, 0x5C, 0x01, 0x7A])
    setters = [("u8", "u8", "7"), ("i16", "i16", "-300"), ("u64", "u64", "18446744073709551615"),
               ("flt", "flt", "1.25"), ("dbl", "dbl", "-0.5"), ("str", "str", "a\tb")]
    for name, type_name, value in setters:
        daemon.run(["corosync-cmapctl", "-s", "--", PREFIX + name, type_name, value],
                   check=True)
    daemon.run(["corosync-cmapctl", "-s", PREFIX + "bin", "bin", "-"], input=raw,
               text=False, check=True)
    yield
    daemon.run(["corosync-cmapctl", "-D", PREFIX])


@pytest.mark.parametrize("args", [
    [], ["-b"], ["totem."], ["totem.", "nodelist."], ["no.such.prefix"],
    ["no.such.prefix", "totem."], ["-q", "totem.token"],
], ids=repr)
def test_cmapctl_dump_matches(daemon, keys, args):
    assert_same(*both(daemon, "corosync-cmapctl", CMAPCTL, args))


@pytest.mark.parametrize("args", [
    ["P"], ["-b", "P"], ["-g", "Pu8"], ["-q", "-g", "Pu64"], ["-g", "Pbin"], ["-b", "-g", "Pbin"],
    ["-q", "-b", "-g", "Pbin"], ["-g", "Pstr", "Pflt", "Pdbl"], ["-g", "Pmissing"], ["-g"],
    ["-d", "Pmissing"], ["-s", "k"], ["-x"], ["-m", "nope"], ["-C", "nope"], ["-m"],
], ids=repr)  # "P…" stands for PREFIX…: ids must not vary between xdist workers
def test_cmapctl_get_and_errors_match(daemon, keys, args):
    args = [PREFIX + a[1:] if a.startswith("P") else a for a in args]
    assert_same(*both(daemon, "corosync-cmapctl", CMAPCTL, args))


@pytest.mark.parametrize("type_name,text", [
    ("u8", "255"), ("u8", "256"), ("i8", "-129"), ("i8", "12abc"), ("u32", "x"),
    ("u64", "18446744073709551616"), ("i64", "-9223372036854775809"), ("flt", "1e39"),
    ("dbl", "2.5e-3"), ("str", "hello world"), ("u33", "1"), ("i32", " 42"),
], ids=repr)
def test_cmapctl_set_parses_values_as_corosync(daemon, type_name, text):
    key = f"{PREFIX}set.{type_name}"
    results = []
    for tool in (["corosync-cmapctl"], CMAPCTL):
        setter = daemon.run([*tool, "-s", "--", key, type_name, text])
        getter = daemon.run(["corosync-cmapctl", "-g", key])
        daemon.run(["corosync-cmapctl", "-d", key])
        results.append((setter.returncode, setter.stdout, setter.stderr, getter.stdout))
    assert results[1] == results[0]


def test_cmapctl_delete_prefix_and_batch_file(daemon, tmp_path):
    batch = tmp_path / "batch.txt"
    batch.write_text(f"# comment\n\n  {PREFIX}p.a u32 1\n{PREFIX}p.b str x\n"
                     f"{PREFIX}p.c i8 -1\n^{PREFIX}p.a\n^{PREFIX}p.missing\n")
    outputs = []
    for tool in (["corosync-cmapctl"], CMAPCTL):
        load = daemon.run([*tool, "-p", str(batch)])
        dump = daemon.run(["corosync-cmapctl", PREFIX + "p."])
        delete = daemon.run([*tool, "-D", PREFIX + "p."])
        after = daemon.run(["corosync-cmapctl", PREFIX + "p."])
        outputs.append([(p.returncode, p.stdout, p.stderr) for p in (load, dump, delete, after)])
    assert outputs[1] == outputs[0]
    assert outputs[0][1][1].count("\n") == 2


def test_cmapctl_missing_batch_file_and_clear_stats(daemon, tmp_path):
    assert_same(*both(daemon, "corosync-cmapctl", CMAPCTL, ["-p", str(tmp_path / "none")]))
    assert_same(*both(daemon, "corosync-cmapctl", CMAPCTL, ["-C", "ipc"]))


def test_cmapctl_stats_map_lists_the_same_keys(daemon):
    c, py = both(daemon, "corosync-cmapctl", CMAPCTL, ["-m", "stats", "stats.ipcs.global."])
    assert (py.returncode, c.returncode) == (0, 0)
    assert keys_and_types(py.stdout) == keys_and_types(c.stdout)
    assert len(keys_and_types(c.stdout)) >= 2


def test_cmapctl_tracking_prints_the_same_changes(daemon):
    prefix = PREFIX + "trk."
    # stdbuf: the C tool's stdout is a pipe, so without it nothing shows before exit
    trackers = [daemon.popen(argv + ["-T", prefix], stdin=PIPE, stdout=PIPE, text=True)
                for argv in (["stdbuf", "-oL", "corosync-cmapctl"], CMAPCTL)]
    try:
        for proc in trackers:
            assert proc.stdout.readline() == 'Type "q" to finish\n'
        for args in (["-s", prefix + "a", "u32", "5"], ["-s", prefix + "a", "u32", "6"],
                     ["-s", prefix + "s", "str", "x y"], ["-d", prefix + "a"],
                     ["-s", prefix + "end", "u8", "1"]):
            daemon.run(["corosync-cmapctl", *args], check=True)
        seen = []
        for proc in trackers:
            lines = []
            while not lines or not lines[-1].startswith("create> " + prefix + "end"):
                line = proc.stdout.readline()
                assert line, f"tracker exited early after {lines}"
                lines.append(line)
            proc.stdin.write("q\n")
            proc.stdin.flush()
            seen.append(lines)
            assert proc.wait(timeout=60) == 0
    finally:
        for proc in trackers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        daemon.run(["corosync-cmapctl", "-D", prefix])
    assert seen[1] == seen[0]
    assert seen[0] == [f"create> {prefix}a (u32) = 5\n", f"modify> {prefix}a (u32) = 6\n",
                       f"create> {prefix}s (str) = x y\n", f"delete> {prefix}a (u32) = 6\n",
                       f"create> {prefix}end (u8) = 1\n"]


def test_cmapctl_json(daemon, keys):
    py = daemon.run([*CMAPCTL, "--json", PREFIX])
    assert py.returncode == 0, py.stderr
    rows = {r["key"]: (r["type"], r["value"]) for r in json.loads(py.stdout)}
    assert rows[PREFIX + "u64"] == ("u64", 2**64 - 1)
    assert rows[PREFIX + "bin"] == ("bin", "6180ff5c017a")
    assert rows[PREFIX + "str"] == ("str", "a\tb")


@pytest.fixture(scope="module")
def groups(daemon):
    """Three groups held by one helper process, one with bytes that need escaping."""
    names = ["alpha", "b\\x01\\x80\\\\z", f"zeta{os.getpid()}"]
    holder = daemon.popen([sys.executable, str(Path(__file__).with_name("cpg_hold.py")), *names],
                          stdin=PIPE, stdout=PIPE, text=True)
    try:
        line = holder.stdout.readline()
        assert line.startswith("held "), line
        yield int(line.split()[1])
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


@pytest.mark.parametrize("args", [
    [], ["-n"], ["-d", ","], ["-n", "-d", ":"], ["-e"], ["-e", "-n"], ["-d", ";", "-e"],
    ["-x"], ["-d"],
], ids=repr)
def test_cpgtool_matches(daemon, groups, args):
    c, py = both(daemon, "corosync-cpgtool", CPGTOOL, args, text=False)
    assert (py.returncode, py.stdout) == (c.returncode, c.stdout)


def test_cpgtool_escapes_high_bytes_as_sign_extended_hex(daemon, groups):
    py = daemon.run([*CPGTOOL, "-n"], text=False)
    assert b"b\\x01\\xFFFFFF80\\\\z\n" in py.stdout


def test_cpgtool_json(daemon, groups):
    py = daemon.run([*CPGTOOL, "--json"])
    assert py.returncode == 0, py.stderr
    rows = json.loads(py.stdout)
    alpha = [r for r in rows if r["group"] == "alpha"]
    assert [(r["pid"], r["nodeid"]) for r in alpha] == [(groups, 1)]
    assert len(alpha[0]["addrs"]) == 1
