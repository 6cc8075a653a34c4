"""supervisor/reports.py: counters gathered from the children when someone asks."""
from types import SimpleNamespace

import pytest

from coroproc.supervisor.reports import REPORT_WAIT_S, Reports


def child(alive=True, hello=True):
    return SimpleNamespace(alive=alive, hello=hello)


@pytest.fixture
def sent():
    return []


@pytest.fixture
def kids():
    return {"ring": child(), "cpg": child()}


@pytest.fixture
def reports(kids, sent):
    # a child the supervisor cannot reach (ROUTER_MANDATORY refuses) is not waited for
    return Reports(kids, lambda role, msg: sent.append((role, msg)) is None and role != "gone")


def test_a_gather_asks_every_live_child_and_answers_when_all_reported(kids, reports, sent):
    kids.update({"net0": child(), "dead": child(alive=False), "loading": child(hello=False),
                 "gone": child()})
    done = []
    reports.gather(10.0, lambda: done.append("a"))
    assert sorted(r for r, _ in sent) == ["cpg", "gone", "net0", "ring"]
    assert all(m == {"op": "report"} for _, m in sent)
    assert reports.due_s == 10.0 + REPORT_WAIT_S
    reports.answered("ring")
    reports.answered("net0")
    assert done == []
    reports.answered("cpg")
    assert done == ["a"] and reports.due_s is None


def test_requests_during_a_gather_join_it(reports, sent):
    done = []
    reports.gather(1.0, lambda: done.append(1))
    reports.gather(1.1, lambda: done.append(2))
    assert len(sent) == 2                      # asked once
    reports.answered("ring")
    reports.answered("cpg")
    assert done == [1, 2]
    reports.gather(2.0, lambda: done.append(3))   # a new one asks again
    assert len(sent) == 4


def test_a_silent_child_does_not_hold_the_answer_past_the_wait(reports):
    done = []
    reports.gather(5.0, lambda: done.append(1))
    reports.answered("ring")
    reports.tick(5.0 + REPORT_WAIT_S / 2)
    assert done == []
    reports.tick(5.0 + REPORT_WAIT_S)
    assert done == [1] and reports.late == 1
    reports.answered("cpg")                    # its late report only updates its counters
    assert done == [1]


def test_a_child_that_dies_is_not_waited_for(reports):
    done = []
    reports.gather(0.0, lambda: done.append(1))
    reports.answered("ring")
    reports.answered("cpg")                    # the reap says so
    assert done == [1]


def test_nobody_to_ask_answers_at_once(kids, reports, sent):
    for c in kids.values():
        c.alive = False
    done = []
    reports.gather(0.0, lambda: done.append(1))
    assert done == [1] and sent == [] and reports.due_s is None
