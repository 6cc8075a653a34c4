"""coroproc: a Corosync-compatible cluster engine (Totem SRP + EVS) in Python."""

__version__ = "0.1.0"
