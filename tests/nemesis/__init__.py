"""Seeded fault injection on real coroproc clusters in network namespaces (docs/nemesis.md)."""
