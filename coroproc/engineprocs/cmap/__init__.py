"""The CMAP engine (service 0, IPC "cmap"): Corosync's configuration and runtime map.

engine.py is the Engine; store.py the typed map; keys.py names and types; config_keys.py
and runtime.py what fills the map; stats.py the stats map; exec_msgs.py the exec wire
struct; conn_state.py per-client iterators and tracks. Lib bodies: coroproc.ipc.cmap_structs.
"""
