"""corosync.conf syntax → flat, ordered cmap-style keys, exactly as Corosync 3.1 reads it.

Owns the grammar and the key naming of exec/coroparse.c (v3.1.7), nothing about what
the values mean (schema.py) or how they combine (loader.py):

* A line is, after trailing blanks are cut: empty or a ``#`` comment (only when ``#`` is
  the first non-blank character — there are no trailing comments, ``token: 3000 # x``
  has the value ``3000 # x``); a section start ``name {`` (any line holding ``{``); a
  ``key: value`` item (split at the first ``:``, so IPv6 values keep theirs); or ``}``.
  There is no ``key = value`` form and no ``include``. Lines longer than 510 bytes are
  refused, as Corosync's 512-byte fgets buffer does.
* Duplicate keys: the last one wins (icmap_set overwrites), keeping the first position.
* Keys are named as coroparse stores them in cmap:
  ``totem { interface { linknumber: N; mcastport: P } }`` → ``totem.interface.N.mcastport``;
  the k-th ``nodelist { node { } }`` → ``nodelist.node.k.*``; ``logging { logger_subsys {
  subsys: QUORUM; debug: on } }`` → ``logging.logger_subsys.QUORUM.debug``;
  ``uidgid { uid: name }`` → ``uidgid.config.uid.<uid>``; the k-th ``service { }``
  (coroproc: an engine to load) → ``service.k.*``; everything else path.key.
"""
from __future__ import annotations

import grp
import pwd
import re
from dataclasses import dataclass, field

from coroproc.config.errors import ConfigParseError, Entry

LINE_BYTES_MAX = 510  # Corosync: char line[512] read with fgets, plus the newline
KEYNAME_BYTES_MAX = 255  # ICMAP_KEYNAME_MAXLEN
KEYNAME_BYTES_MIN = 3  # ICMAP_KEYNAME_MINLEN
_KEYNAME_RE = re.compile(r"[A-Za-z0-9._/:-]+")

# Keys an interface{} section holds until it closes and its linknumber is known.
INTERFACE_KEYS = frozenset((
    "linknumber", "bindnetaddr", "mcastaddr", "broadcast", "mcastport", "ttl",
    "knet_link_priority", "knet_ping_interval", "knet_ping_timeout",
    "knet_ping_precision", "knet_pong_count", "knet_transport"))

# Sections whose items coroparse renames; nested sections inside them are refused here
# (coroparse would silently mis-number or mis-name their keys).
_GROUPING = {
    "totem.interface": "interface",
    "totem.interface.member": "member",
    "logging.logger_subsys": "logger_subsys",
    "logging.logging_daemon": "logging_daemon",
    "nodelist": "nodelist",
    "nodelist.node": "node",
    "uidgid": "uidgid",
    "service": "service",
}


@dataclass
class _Frame:
    path: str
    kind: str
    line: int
    items: dict = field(default_factory=dict)  # key -> (value, line), for grouping kinds
    members: list = field(default_factory=list)  # interface: (memberaddr, line)


@dataclass
class ParseResult:
    """Flat cmap-style keys in file order, and every section opened (path, line)."""

    file: str
    keys: dict[str, Entry]
    sections: list[tuple[str, int]]


class _Parser:
    def __init__(self, file: str):
        self.file = file
        self.keys: dict[str, Entry] = {}
        self.sections: list[tuple[str, int]] = []
        self.stack: list[_Frame] = []
        self.node_number = 0
        self.service_number = 0
        self.line_no = 0

    # -- errors and storing --
    def fail(self, message: str, key: str | None = None, line: int | None = None):
        raise ConfigParseError(self.file, line or self.line_no, key, message)

    def store(self, key: str, value: str, line: int) -> None:
        if len(key.encode("utf-8", "surrogateescape")) > KEYNAME_BYTES_MAX:
            self.fail(f"key name is longer than {KEYNAME_BYTES_MAX} bytes "
                      "(Corosync's cmap limit); shorten the section or key name",
                      key[:60] + "...", line)
        if len(key) < KEYNAME_BYTES_MIN or not _KEYNAME_RE.fullmatch(key):
            self.fail("key name has characters cmap does not allow (allowed: letters, "
                      "digits and . _ - / :; no spaces)", key, line)
        self.keys[key] = Entry(value, self.file, line)

    # -- the grammar --
    def feed_line(self, raw: bytes) -> None:
        self.line_no += 1
        if len(raw) > LINE_BYTES_MAX:
            self.fail(f"Line too long ({len(raw)} bytes; Corosync reads at most "
                      f"{LINE_BYTES_MAX} per line)")
        if b"\0" in raw:
            self.fail("line contains a NUL byte; corosync.conf must be text")
        line = raw.decode("utf-8", "surrogateescape")
        if line.endswith("\r"):
            line = line[:-1]
        line = line.rstrip(" \t")
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            return
        if "{" in line:
            self.open_section(line)
        elif ":" in line:
            self.item(line)
        elif "}" in line:
            self.close_section(line)
        else:
            self.fail("Line is not opening or closing section or key value (expected "
                      "`name {`, `}` or `key: value`; `key = value` and `include` are "
                      "not corosync.conf syntax)")

    def open_section(self, line: str) -> None:
        loc = line.index("{")
        name = line[:loc].strip(" \t").rstrip(" \t:{")
        after = line[loc + 1:].strip(" \t")
        if not name:
            self.fail("Missing section name before opening bracket '{'")
        if after:
            self.fail(f"Extra characters after opening bracket '{{': {after!r} "
                      "(put each item on its own line)")
        parent = self.stack[-1] if self.stack else None
        path = f"{parent.path}.{name}" if parent else name
        kind = _GROUPING.get(path, "plain")
        if parent is not None and parent.kind not in ("plain", "nodelist") and not (
                parent.kind == "interface" and kind == "member"):
            self.fail(f"section '{name} {{' is not allowed inside '{parent.path}'")
        if kind == "nodelist":
            self.node_number = 0
        self.stack.append(_Frame(path, kind, self.line_no))
        self.sections.append((path, self.line_no))

    def item(self, line: str) -> None:
        loc = line.index(":")
        key = line[:loc].strip(" \t").rstrip(" \t:{")
        value = line[loc + 1:].strip(" \t")
        if not key:
            self.fail("missing key name before ':'")
        if not self.stack:
            self.fail("key is outside any section (keys live in sections such as "
                      "totem { }, nodelist { node { } }, quorum { })", key)
        frame = self.stack[-1]
        full = f"{frame.path}.{key}"
        if frame.kind == "interface" and key in INTERFACE_KEYS:
            frame.items[key] = (value, self.line_no)
        elif frame.kind == "interface":
            self.store(full, value, self.line_no)  # coroparse keeps unknown ones unnumbered
        elif frame.kind == "member":
            if key != "memberaddr":
                self.fail("Only memberaddr is allowed in member section", full)
            self.stack[-2].members.append((value, self.line_no))
        elif frame.kind in ("logger_subsys", "logging_daemon"):
            frame.items[key] = (value, self.line_no)
        elif frame.kind == "uidgid":
            self.uidgid_item(key, value)
        elif frame.kind == "node":
            self.store(f"nodelist.node.{self.node_number}.{key}", value, self.line_no)
        elif frame.kind == "service":
            # coroproc: each `service { name: … }` loads one engine; numbered like nodes
            # so several can coexist (Corosync 3 keeps such keys unread)
            self.store(f"service.{self.service_number}.{key}", value, self.line_no)
        else:
            self.store(full, value, self.line_no)

    def uidgid_item(self, key: str, value: str) -> None:
        if key not in ("uid", "gid"):
            self.fail("uidgid: Only uid and gid are allowed items", f"uidgid.{key}")
        try:
            number = int(value) if value.isdigit() else (
                pwd.getpwnam(value).pw_uid if key == "uid" else grp.getgrnam(value).gr_gid)
        except KeyError:
            table = "/etc/passwd" if key == "uid" else "/etc/group"
            self.fail(f"the {'user' if key == 'uid' else 'group'} {value!r} is not found "
                      f"in {table}", f"uidgid.{key}")
        self.keys[f"uidgid.config.{key}.{number}"] = Entry("1", self.file, self.line_no, "u8")

    def close_section(self, line: str) -> None:
        if line.strip(" \t") != "}":
            self.fail("Extra characters before or after closing bracket '}' "
                      "(put the closing brace on its own line)")
        if not self.stack:
            self.fail("Unexpected closing brace (no section is open)")
        frame = self.stack.pop()
        if frame.kind == "interface":
            self.close_interface(frame)
        elif frame.kind == "logger_subsys":
            self.close_logger_subsys(frame)
        elif frame.kind == "logging_daemon":
            self.close_logging_daemon(frame)
        elif frame.kind == "node":
            self.node_number += 1
        elif frame.kind == "service":
            self.service_number += 1

    def close_interface(self, frame: _Frame) -> None:
        linknumber = "0"
        if "linknumber" in frame.items:
            value, line = frame.items["linknumber"]
            if not re.fullmatch(r"[+]?[0-9]+", value) or int(value) > 255:
                self.fail(f"{value!r} is not an integer in 0..255 (links are numbered "
                          "0..7)", "totem.interface.linknumber", line)
            linknumber = str(int(value))
        for key, (value, line) in frame.items.items():
            if key != "linknumber":
                self.store(f"totem.interface.{linknumber}.{key}", value, line)
        # coroparse prepends members to a list, so they come out last-first.
        for index, (value, line) in enumerate(reversed(frame.members)):
            self.store(f"totem.interface.{linknumber}.member.{index}", value, line)

    def close_logger_subsys(self, frame: _Frame) -> None:
        if "subsys" not in frame.items:
            self.fail("No subsys key in logger_subsys directive (add `subsys: NAME`, "
                      "e.g. QUORUM)", "logging.logger_subsys", frame.line)
        subsys, subsys_line = frame.items["subsys"]
        for key, (value, line) in frame.items.items():
            if key != "subsys":
                self.store(f"logging.logger_subsys.{subsys}.{key}", value, line)
        self.store(f"logging.logger_subsys.{subsys}.subsys", subsys, subsys_line)

    def close_logging_daemon(self, frame: _Frame) -> None:
        if "name" not in frame.items:
            self.fail("No name key in logging_daemon directive",
                      "logging.logging_daemon", frame.line)
        name = frame.items["name"][0]
        subsys = frame.items.get("subsys", (None, 0))[0]
        if name == "corosync":
            prefix = f"logging.logger_subsys.{subsys}" if subsys else "logging"
        else:
            prefix = f"logging.logging_daemon.{name}" + (f".{subsys}" if subsys else "")
        for key, (value, line) in frame.items.items():
            if key not in ("name", "subsys"):
                self.store(f"{prefix}.{key}", value, line)
        if subsys:
            self.store(f"{prefix}.subsys", subsys, frame.items["subsys"][1])
        if name != "corosync":
            self.store(f"{prefix}.name", name, frame.items["name"][1])

    def finish(self) -> ParseResult:
        if self.stack:
            frame = self.stack[-1]
            self.fail(f"Missing closing brace (section '{frame.path}' opened at line "
                      f"{frame.line} is not closed)")
        return ParseResult(self.file, self.keys, self.sections)


def parse_bytes(data: bytes, file: str) -> ParseResult:
    """Parse corosync.conf content; raises ConfigParseError at the first bad line."""
    parser = _Parser(file)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for raw in lines:
        parser.feed_line(raw)
    return parser.finish()


def parse_text(text: str, file: str = "corosync.conf") -> ParseResult:
    return parse_bytes(text.encode("utf-8", "surrogateescape"), file)


def parse_file(path: str) -> ParseResult:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigParseError(path, None, None, f"Can't read file: {exc.strerror}") from exc
    return parse_bytes(data, path)


UIDGID_DIR = "uidgid.d"


def parse_uidgid_dir(config_path: str) -> dict[str, Entry]:
    """uidgid.config.* keys from every file in <config dir>/uidgid.d/ (Corosync's
    coroparse reads them after corosync.conf; they may hold only `uidgid { }` sections)."""
    import os
    directory = os.path.join(os.path.dirname(os.path.abspath(config_path)), UIDGID_DIR)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigParseError(directory, None, None, f"Can't read directory: {exc.strerror}")
    keys: dict[str, Entry] = {}
    for name in names:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        parsed = parse_file(path)
        for key, entry in parsed.keys.items():
            if not key.startswith("uidgid.config."):
                raise ConfigParseError(path, entry.line, key, "only `uidgid { uid: … gid: … }` "
                                       f"sections are allowed in {UIDGID_DIR}/ files")
            keys[key] = entry
    return keys
