"""The template engine: a replicated table of named counters (see engine.py, client.py)."""
