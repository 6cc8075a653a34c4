"""Quorum (service 3): the provider-neutral quorum view for libquorum, as Corosync's
exec/vsf_quorum.c. engine.py is the engine; docs/quorum.md."""
