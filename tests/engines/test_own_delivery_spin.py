"""Where the CPG engine may poll for its own delivery (engineprocs/host.py
own_delivery_spin): the configured time, never on the CPU the ring process is kept to, and
not at all on a node with one CPU, where the spin would hold the CPU the ring process
needs to deliver."""
from coroproc.engineprocs.host import own_delivery_spin


def test_the_configured_time_off_the_ring_process_cpu():
    assert own_delivery_spin(200, frozenset({1}), 2) == (200_000, 1)
    assert own_delivery_spin(50, frozenset({3}), 4) == (50_000, 3)


def test_any_cpu_when_the_ring_process_is_not_kept_to_one():
    assert own_delivery_spin(200, None, 2) == (200_000, -1)
    assert own_delivery_spin(200, frozenset({0, 1}), 2) == (200_000, -1)


def test_none_with_one_cpu_or_when_switched_off():
    assert own_delivery_spin(200, None, 1) == (0, -1)
    assert own_delivery_spin(0, frozenset({1}), 2)[0] == 0
