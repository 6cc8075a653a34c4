"""Reading a CPG recorder file: one checker record per connection, per-sender problems and
progress dates kept, a line cut by a kill skipped — and the CPG checker fails on what a
broken cluster would make a recorder write (duplicate, different order). No root."""
from __future__ import annotations

import orjson

from coroproc.engineprocs.cpg.checker import check_cpg_evs
from nemesis.clients import read_client_log
from nemesis.cpg_views import check_same_view

G = "nemesis"


def _write(path, lines, cut_tail=b""):
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + cut_tail)
    return path


def _session(nodeid, pid, conn, msgs, t_us=10):
    """A recorder connection that joined a group of nodes 1 and 2 (both joining in one
    confchg, so every record starts with the same event) and got `msgs`."""
    return [["local", nodeid, pid, conn], ["t", t_us],
            ["confchg", G, [[1, 11], [2, 22]], [], [[1, 11, 1], [2, 22, 1]]],
            ["totem", [1, 8], [1, 2]],
            *[["deliver", G, n, p, m] for n, p, m in msgs]]


def test_connections_become_records_and_problems_are_kept(tmp_path):
    msgs = [(1, 11, "aa:0"), (2, 22, "bb:0")]
    lines = (_session(1, 11, 1, msgs, t_us=10) + [["sent", 1], ["lost", "engine killed"]]
             + _session(1, 11, 2, msgs[1:], t_us=50)
             + [["problem", "gap from nodeid 2"], ["sent", 4], ["end"]])
    log = read_client_log(1, _write(tmp_path / "c.jsonl", lines, cut_tail=b'["deliv'))
    assert [r.name for r in log.records] == ["n1c1", "n1c2"]
    assert log.connections == 2 and log.delivered == 3 and log.sent == 5 and log.ended
    assert log.lost == ["engine killed"]
    assert log.problems == ["node 1 client n1c2: gap from nodeid 2"]
    assert log.senders_after(40) == {2}          # only the last connection counts
    assert log.senders_after(50) == set()


def test_cpg_checker_fails_on_a_duplicate_and_on_a_different_order(tmp_path):
    a = read_client_log(1, _write(tmp_path / "a", _session(1, 11, 1, [(1, 11, "x:0"),
                                                                      (2, 22, "y:0")])))
    b = read_client_log(2, _write(tmp_path / "b", _session(2, 22, 1, [(1, 11, "x:0"),
                                                                      (2, 22, "y:0")])))
    assert check_cpg_evs(a.records + b.records) == []
    swapped = read_client_log(2, _write(tmp_path / "s", _session(2, 22, 1, [(2, 22, "y:0"),
                                                                            (1, 11, "x:0")])))
    assert any("order" in p for p in check_cpg_evs(a.records + swapped.records))
    dup = read_client_log(1, _write(tmp_path / "d", _session(1, 11, 1, [(1, 11, "x:0"),
                                                                        (1, 11, "x:0")])))
    assert any("twice" in p for p in check_cpg_evs(dup.records))


def test_same_view_check_fails_on_a_message_of_a_lost_partition_side(tmp_path):
    """Node 2's client sees itself alone (node 1 left), delivers its own y:1 there; node
    1's client delivers y:1 while node 2 is still in its view: one message, two views."""
    both = _session(1, 11, 1, [(2, 22, "y:0")])
    alone = _session(2, 22, 1, [(2, 22, "y:0")]) + [
        ["confchg", G, [[2, 22]], [[1, 11, 3]], []], ["deliver", G, 2, 22, "y:1"]]
    a = read_client_log(1, _write(tmp_path / "a", both + [["deliver", G, 2, 22, "y:1"]]))
    b = read_client_log(2, _write(tmp_path / "b", alone))
    problems = check_same_view(a.records + b.records)
    assert len(problems) == 1 and "y:1" in problems[0], problems
    # after a merge each side is told the other joined: different confchgs, same view
    merged = [["confchg", G, [[1, 11], [2, 22]], [], [[2, 22, 4]]],
              ["deliver", G, 2, 22, "y:2"]]
    merged_b = [["confchg", G, [[1, 11], [2, 22]], [], [[1, 11, 4]]],
                ["deliver", G, 2, 22, "y:2"]]
    split = [["confchg", G, [[1, 11]], [[2, 22, 3]], []]]
    a = read_client_log(1, _write(tmp_path / "a2", both + split + merged))
    b = read_client_log(2, _write(tmp_path / "b2", alone[:-1] + merged_b))
    assert check_same_view(a.records + b.records) == []
