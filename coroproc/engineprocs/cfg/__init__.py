"""The CFG engine (Corosync service 1, IPC service "cfg")."""
