"""Votequorum (service 5): votes, expected votes and the quorum decision, as Corosync's
exec/votequorum.c. engine.py is the engine; state.py the algorithm; docs/quorum.md."""
