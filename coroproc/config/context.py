"""Checked keys plus the helpers every builder uses to read them and to complain.

A Keys object is what the section builders (nodelist.py, links.py, sections.py) share:
typed values, the Entry of each key (for file:line in messages), and the warning list.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from coroproc.config.errors import ConfigParseError, ConfigWarning, Entry


@dataclass
class Keys:
    file: str
    entries: dict[str, Entry]
    values: dict[str, int | str]
    warnings: list[ConfigWarning] = field(default_factory=list)

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    def line(self, key: str) -> int | None:
        entry = self.entries.get(key)
        return entry.line if entry is not None and entry.line else None

    def fail(self, key: str | None, message: str) -> ConfigParseError:
        """Build (not raise) the error, so call sites read ``raise keys.fail(...)``."""
        return ConfigParseError(self.file, self.line(key) if key else None, key, message)

    def warn(self, key: str | None, message: str) -> None:
        self.warnings.append(ConfigWarning(self.file, self.line(key) if key else None,
                                           key, message))

    def flag(self, key: str, default: bool) -> bool:
        """yes/on → True, no/off → False; other words (already warned about) → default."""
        value = self.values.get(key)
        if value in ("yes", "on"):
            return True
        if value in ("no", "off"):
            return False
        return default

    def derive(self, key: str, value: str, cmap_type: str = "string") -> None:
        """Store a value Corosync computes and writes back to cmap (line 0 = derived)."""
        self.entries[key] = Entry(value, self.file, 0, cmap_type)
        self.values[key] = int(value) if cmap_type != "string" else value

    def prefixed(self, prefix: str) -> list[str]:
        return [k for k in self.entries if k.startswith(prefix)]
