"""Where the CPG engine may poll for its own delivery (engineprocs/host.py
own_delivery_spin): the configured time, never on the CPU the ring process is kept to, and
not at all on a node with one CPU, where the spin would hold the CPU the ring process
needs to deliver."""
from types import SimpleNamespace

from coroproc.config.model import OWN_DELIVERY_SPIN_US_DEFAULT, CoroprocSection
from coroproc.engineprocs.host import own_delivery_spin


def plan(spin_us=OWN_DELIVERY_SPIN_US_DEFAULT, ring_cpus=frozenset({1})):
    config = SimpleNamespace(coroproc=CoroprocSection(own_delivery_spin_us=spin_us))
    return SimpleNamespace(config=config, ring_cpus=ring_cpus)


def test_the_configured_time_off_the_ring_process_cpu():
    assert own_delivery_spin(plan(), 2) == (OWN_DELIVERY_SPIN_US_DEFAULT * 1000, 1)
    assert own_delivery_spin(plan(50, frozenset({3})), 4) == (50_000, 3)


def test_any_cpu_when_the_ring_process_is_not_kept_to_one():
    assert own_delivery_spin(plan(ring_cpus=None), 2) == (OWN_DELIVERY_SPIN_US_DEFAULT * 1000, -1)
    assert own_delivery_spin(plan(ring_cpus=frozenset({0, 1})), 2)[1] == -1


def test_none_with_one_cpu_or_when_switched_off():
    assert own_delivery_spin(plan(ring_cpus=None), 1) == (0, -1)
    assert own_delivery_spin(plan(0), 2)[0] == 0
    assert own_delivery_spin(SimpleNamespace(config=None, ring_cpus=None), 2)[0] == 0
