"""The simulator's command line: ranges, the summary line, replay, --jobs independence.

These run the CLI over the toy core (tests/sim/sim_fakes.py), whose singleton rings the
real checker rejects, so every seed "fails": exactly what the failure path needs.
"""
import argparse
import re

import pytest

from coroproc.sim import __main__ as cli
from coroproc.sim import world
from sim_fakes import fake_factory

SUMMARY = re.compile(r"^seeds=(\d+) violations=(\d+) liveness_failures=(\d+) seconds=\d+\.\d$")


@pytest.fixture
def toy_core(monkeypatch):
    monkeypatch.setattr(world, "default_node_factory", fake_factory)


def test_parse_range():
    assert cli.parse_range("3:7", "--nodes", inclusive=True) == (3, 7)
    assert cli.parse_range("5", "--nodes", inclusive=True) == (5, 5)
    assert cli.parse_range("0:20", "--seeds", inclusive=False) == (0, 20)
    assert cli.parse_range("4", "--seeds", inclusive=False) == (4, 5)
    for bad, inclusive in (("7:3", True), ("5:5", False), ("a:b", True), ("-1:3", False)):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_range(bad, "--x", inclusive=inclusive)


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["--seeds", "0:2", "--seed", "1"], ["--seeds", "x"], ["--seed", "1", "-j", "0"],
                 ["--seeds", "0:2", "--trace"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2


def run(capsys, argv):
    code = cli.main(argv)
    out = capsys.readouterr().out.splitlines()
    return code, out


def test_sweep_summary_is_the_last_line_and_failures_name_their_replay(toy_core, capsys):
    code, out = run(capsys, ["--seeds", "0:3", "--nodes", "3:4", "--fault-ms", "300", "--quiet-ms", "800"])
    assert code == 1
    m = SUMMARY.match(out[-1])
    assert m and m.group(1) == "3" and int(m.group(3)) == 3   # toy rings never merge
    fails = [line for line in out if line.startswith("FAIL seed=")]
    assert len(fails) == 3 and all("--trace" in f for f in fails)
    assert sum(bool(SUMMARY.match(line)) for line in out) == 1


def test_jobs_do_not_change_results(toy_core, capsys):
    argv = ["--seeds", "0:4", "--nodes", "3:5", "--fault-ms", "300", "--quiet-ms", "800", "--progress"]
    _, one = run(capsys, argv)
    _, two = run(capsys, argv + ["-j", "2"])
    strip = lambda lines: [re.sub(r"(msgs/ws|wall|seconds)=[\d.]+s?", "", l) for l in lines]  # noqa: E731
    assert strip(one) == strip(two)
    assert sum(line.startswith("seed=") for line in one) == 4


def test_replay_prints_the_identical_trace(toy_core, capsys):
    argv = ["--seed", "9", "--nodes", "4", "--trace", "--fault-ms", "600", "--quiet-ms", "500"]
    _, first = run(capsys, argv)
    _, second = run(capsys, argv)
    assert first[:-1] == second[:-1] and len(first) > 50
    assert SUMMARY.match(first[-1])
    assert any(" install regular " in line for line in first)
    assert any("digest" in line for line in first)


def test_single_seed_prints_memberships_and_throughput(toy_core, capsys, tmp_path):
    _, out = run(capsys, ["--seed", "2", "--nodes", "3", "--fault-ms", "300", "--quiet-ms", "500",
                          "--dump-logs", str(tmp_path)])
    text = "\n".join(out)
    assert "ordered msgs per virtual second" in text and "per wall second" in text
    assert " members [1] installed by [1]" in text
    assert sorted(p.name for p in (tmp_path / "seed-2").iterdir()) == [
        "node-1.jsonl", "node-2.jsonl", "node-3.jsonl"]


class Hanging:
    """A toy core that never returns from its first frame on node 2 of a 4-node cluster
    (like a jitted infinite loop); the sweep's warm-up (3 nodes) is spared."""

    def __init__(self, cfg, nodeid, ring_seq):
        self.inner = fake_factory(cfg, nodeid, ring_seq)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def on_frame(self, now_us, frame):
        while self.inner.nodeid == 2 and len(self.inner.cfg.nodelist) == 4:
            pass
        self.inner.on_frame(now_us, frame)


def test_a_hung_seed_is_reported_and_the_sweep_goes_on(monkeypatch, capsys):
    monkeypatch.setattr(world, "default_node_factory", Hanging)
    code, out = run(capsys, ["--seeds", "0:2", "--nodes", "4", "--fault-ms", "300", "--quiet-ms", "500",
                             "--seed-timeout", "1.5", "-j", "2"])
    assert code == 1
    assert SUMMARY.match(out[-1]).group(2) == "2"
    assert sum("hang: no result after" in line for line in out) == 2
