"""corosync.conf → the initial icmap keys, named and typed as Corosync's coroparse stores them.

The config layer (coroproc.config) already names every key the coroparse way and records
its icmap type in Entry.cmap_type (schema.py follows coroparse.c's table). This file turns
those entries into (key, type, value) triples and fixes the few types the schema leaves
as strings because nothing in coroproc reads them (resources.* poll_period is u64 in
coroparse). The coroproc { } section is stored under coroproc.* like any other section;
Corosync would do the same with an unknown section.
"""
from __future__ import annotations

import re

from . import keys as K

# Keys coroparse types although coroproc's schema does not (their sections are free-form).
_TYPE_FIXES = ((re.compile(r"resources\.(system|process)\.[^.]+\.poll_period"), K.UINT64),)


def _type_of(key: str, entry) -> int:
    for pattern, value_type in _TYPE_FIXES:
        if pattern.fullmatch(key):
            return value_type
    return K.TYPE_BY_NAME.get(getattr(entry, "cmap_type", "string"), K.STRING)


def config_items(entries: dict) -> list[tuple[str, int, object]]:
    """(key, icmap type, Python value) for every key of the parsed file, in file order.

    `entries` is NodeConfig.keys (key → Entry). An integer-typed value that does not
    parse (coroparse would have refused the file) is kept as a string rather than lost.
    """
    items = []
    for key, entry in entries.items():
        value_type = _type_of(key, entry)
        value: object = entry.value
        if value_type in K.INTEGER_TYPES:
            try:
                value = K.wrap_integer(value_type, int(entry.value, 10))
            except ValueError:
                value_type = K.STRING
        items.append((key, value_type, value))
    return items


def config_version_item(entries: dict) -> tuple[str, int, object]:
    """totem.config_version as the daemon keeps it: u64, 0 when the file has none."""
    entry = entries.get("totem.config_version")
    try:
        value = int(entry.value, 10) if entry is not None else 0
    except ValueError:
        value = 0
    return "totem.config_version", K.UINT64, value
