"""corosync.conf re-read at run time (`corosync-cfgtool -R`), as cmap sees it (ref §4.9).

Corosync's coroparse reloads into a temporary map and then: keys the file no longer has
are deleted under the reloadable prefixes (with delete notifications), new and changed
keys are set (modify notifications), keys that cannot change at run time keep their
running value (the CFG engine logs "cannot be changed at run-time" for each), and
`config.reload_in_progress` is 1 while it happens, `config.reload_status` the result.
"""
from __future__ import annotations

from coroproc.engineprocs.cfg.reload_rules import is_readonly

from . import config_keys
from . import keys as K

RELOADABLE_PREFIXES = ("logging.", "totem.", "nodelist.", "quorum.", "uidgid.config.", "nozzle.")


def apply_reload(store, old_entries: dict, new_entries: dict) -> dict:
    """Bring the store from the old file's keys to the new file's; returns counts."""
    store.set_value("config.reload_in_progress", K.UINT8, 1)
    done = {"deleted": 0, "set": 0, "kept_readonly": 0}
    try:
        for key in sorted(old_entries):
            if key in new_entries or not key.startswith(RELOADABLE_PREFIXES):
                continue
            if is_readonly(key):
                done["kept_readonly"] += 1
                continue
            if store.delete(key) == K.CS_OK:
                done["deleted"] += 1
        for key, value_type, value in config_keys.config_items(new_entries):
            if is_readonly(key) and key in old_entries:
                done["kept_readonly"] += 1
                continue
            current = store.get(key)
            if current is not None and current == (value_type, K.encode(value_type, value)):
                continue
            if store.set_value(key, value_type, value) == K.CS_OK:
                done["set"] += 1
        store.set_value("config.reload_status", K.INT32, K.CS_OK)
    finally:
        store.set_value("config.reload_in_progress", K.UINT8, 0)
    return done
