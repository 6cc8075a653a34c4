"""tests/cfg reuses the client tests' `daemon` fixture: one single-node daemon per test
module, parametrized over the real Corosync 3.1.7 and coroproc (tests/client/conftest.py)."""
from client.conftest import daemon  # noqa: F401  (a fixture, registered by import)
