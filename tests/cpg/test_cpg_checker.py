"""The CPG EVS-13 checker must fail on each violation it claims to detect."""
from coroproc.engineprocs.cpg.checker import ClientRecord, check_cpg_evs

G = b"g"
T = ("totem", (1, 4), [1, 2])


def join(n, p, members):
    return ("confchg", G, members, [], [(n, p, 1)])


def msg(n, p, payload):
    return ("deliver", G, n, p, payload)


def good():
    a = ClientRecord("a", 1, 10, [join(1, 10, [(1, 10)]), T, join(2, 20, [(1, 10), (2, 20)]),
                                  msg(1, 10, b"x"), msg(2, 20, b"y")])
    b = ClientRecord("b", 2, 20, [join(2, 20, [(1, 10), (2, 20)]), T, msg(1, 10, b"x"),
                                  msg(2, 20, b"y")])
    return a, b


def test_consistent_streams_pass():
    assert check_cpg_evs(list(good())) == []


def test_different_order_is_reported():
    a, b = good()
    b.events[2], b.events[3] = b.events[3], b.events[2]
    assert any("differently" in p for p in check_cpg_evs([a, b]))


def test_message_before_own_join_is_reported():
    a, b = good()
    b.events.insert(0, msg(1, 10, b"early"))
    assert any("before its own join" in p for p in check_cpg_evs([a, b]))


def test_first_confchg_not_own_join_is_reported():
    a = ClientRecord("a", 1, 10, [join(2, 20, [(2, 20)])])
    assert any("not its own join" in p for p in check_cpg_evs([a]))


def test_duplicate_delivery_is_reported():
    a, b = good()
    a.events.append(msg(1, 10, b"x"))
    assert any("twice" in p for p in check_cpg_evs([a, b]))


def test_different_message_sets_between_same_confchgs_are_reported():
    a, b = good()
    leave = ("confchg", G, [(2, 20)], [(1, 10, 2)], [])
    a.events.append(leave)
    b.events.append(leave)
    del b.events[2]                       # b missed x between the same two confchgs
    assert any("different messages" in p for p in check_cpg_evs([a, b]))


def test_message_after_own_leave_is_reported():
    a, b = good()
    a.events.append(("confchg", G, [(2, 20)], [(1, 10, 2)], []))
    a.events.append(msg(2, 20, b"late"))
    assert any("after its leave" in p for p in check_cpg_evs([a, b]))


def test_a_process_leaving_and_rejoining_twice_in_one_ring_is_not_a_violation():
    """Node 2's cpg engine restarts twice in one ring: its client reconnects with the same
    pid, so it leaves (PROCDOWN) and joins again twice with identical confchg contents.
    The client that saw both, and each connection of node 2's client that saw only its
    own join, pass; a message received twice is still reported."""
    both = [(1, 10), (2, 20)]
    down = ("confchg", G, [(1, 10)], [(2, 20, 5)], [])
    up = join(2, 20, both)
    a = ClientRecord("a", 1, 10, [join(1, 10, [(1, 10)]), T, up, msg(1, 10, b"x"), down, up,
                                  msg(1, 10, b"y"), msg(2, 20, b"v"), down, up,
                                  msg(1, 10, b"z")])
    b1 = ClientRecord("b1", 2, 20, [up, T, msg(1, 10, b"x")])
    b2 = ClientRecord("b2", 2, 20, [up, T, msg(1, 10, b"y"), msg(2, 20, b"v")])
    b3 = ClientRecord("b3", 2, 20, [up, T, msg(1, 10, b"z")])
    assert check_cpg_evs([a, b1, b2, b3]) == []
    b2.events[2], b2.events[3] = b2.events[3], b2.events[2]
    assert any("differently" in p for p in check_cpg_evs([a, b1, b2, b3]))
    b2.events[2], b2.events[3] = b2.events[3], b2.events[2]
    a.events.append(msg(1, 10, b"z"))
    assert any("twice" in p for p in check_cpg_evs([a, b1, b2, b3]))
