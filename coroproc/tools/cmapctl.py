"""`coroproc-cmapctl`: corosync-cmapctl's options, output and exit codes, plus --json.

    coroproc-cmapctl [-b] [-DdghsqTCt] [-p filename] [-m map] [--suffix S] [--json] [params...]

Behaviour follows tools/corosync-cmapctl.c of Corosync 3.1.7, including its quirks
(GNU option permutation, -h answering at once, a missing -p file printing an error but
exiting 0, prefix dumps failing only when *every* prefix was empty). Value text
formats live in cmap_format.py. --json prints a JSON array of {"key","type","value"}
for dumps and -g, and one JSON object per line for -t/-T; binary values are hex.
"""

import getopt
import json
import os
import select
import sys
import time

from coroproc.client.cmap import Cmap
from coroproc.ipc import cmap_structs as S
from coroproc.ipc.cserror import CS_DISPATCH_ALL, CS_ERR_TRY_AGAIN, CsError, strerror
from coroproc.tools import cmap_format as F

PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "coroproc-cmapctl"
MAX_TRY_AGAIN = 10      # as the C tool: 10 retries, one second apart
TRY_AGAIN_SLEEP_S = 1.0
CLEAR_STATS = ("knet", "totem", "ipc", "schedmiss", "all")
EXIT_OK, EXIT_FAILURE = 0, 1

HELP = """
usage:  corosync-cmapctl [-b] [-DdghsqTCt] [-p filename] [-m map] [params...]

    -b show binary values

    -m select map to use
          The  default  map is 'icmap' which contains configuration information and some runtime variables used by corosync. 
          A 'stats' map is also available which displays network statistics - in great detail when knet is used as the transport.
Set key:
    corosync-cmapctl -s key_name type value

    where type is one of ([i|u][8|16|32|64] | flt | dbl | str | bin)
    for bin, value is file name (or - for stdin)

    map can be either 'icmap' (the default) which contains corosync
    configuration information, or 'stats' which contains statistics
    about the networking and IPC traffic in some detail.

Clear stats:
    corosync-cmapctl -C [knet|ipc|totem|schedmiss|all]
    The 'stats' map is implied

Load settings from a file:
    corosync-cmapctl -p filename

    the format of the file is:
    [^[^]]<key_name>[ <type> <value>]
    Keys prefixed with single caret ('^') are deleted (see -d).
    Keys (actually prefixes) prefixed with double caret ('^^') are deleted by prefix (see -D).
    <type> and <value> are optional (not checked) in above cases.
    Other keys are set (see -s) so both <type> and <value> are required.

Delete key:
    corosync-cmapctl -d key_name...

Delete multiple keys with prefix:
    corosync-cmapctl -D key_prefix...

Get key:
    corosync-cmapctl [-b] -g key_name...

Quiet mode:
    corosync-cmapctl [-b] -q -g key_name...

Display all keys:
    corosync-cmapctl [-b]

Display keys with prefix key_name:
    corosync-cmapctl [-b] key_name...

Track changes on keys with key_name:
    corosync-cmapctl [-b] -t key_name

Track changes on keys with key prefix:
    corosync-cmapctl [-b] -T key_prefix

   --suffix S  IPC service-name suffix (coroproc { service_suffix })
   --json      machine-readable output
"""


class Fail(Exception):
    """Stop with EXIT_FAILURE after printing this message on stderr."""


class Tool:
    def __init__(self, show_binary=False, quiet=False, as_json=False):
        self.show_binary = show_binary
        self.quiet = quiet
        self.as_json = as_json
        self.json_rows = []
        self.cmap = None

    # ---- output -------------------------------------------------------------------------

    def emit(self, key, value_type, value, prefix=""):
        if self.as_json:
            row = {"key": key, "type": S.TYPE_NAMES[value_type],
                   "value": F.json_value(value_type, value)}
            if prefix:
                row = {"event": prefix.rstrip("> "), **row}
                print(json.dumps(row), flush=True)
            else:
                self.json_rows.append(row)
            return
        print(prefix + F.format_key(key, value_type, value, quiet=self.quiet,
                                    show_binary=self.show_binary), flush=bool(prefix))

    def print_key(self, key, value_type):
        """print_key() with value NULL: fetch the value (retrying TRY_AGAIN) and print."""
        for attempt in range(MAX_TRY_AGAIN + 1):
            try:
                _, value = self.cmap.get(key)
                break
            except CsError as exc:
                if exc.code != CS_ERR_TRY_AGAIN or attempt == MAX_TRY_AGAIN:
                    print(f"Can't get value of {key}. Error {strerror(exc.code)}",
                          file=sys.stderr)
                    return
                time.sleep(TRY_AGAIN_SLEEP_S)
        self.emit(key, value_type, value)

    # ---- actions --------------------------------------------------------------------------

    def _iter(self, prefix):
        try:
            return list(self.cmap.iter(prefix))
        except CsError as exc:
            raise Fail(f"Failed to initialize iteration. Error {strerror(exc.code)}") from None

    def print_iter(self, prefix) -> int:
        """1 when nothing matched (the C tool's no_result)."""
        entries = self._iter(prefix)
        for entry in entries:
            self.print_key(entry.key, entry.value_type)
        return 0 if entries else 1

    def delete_with_prefix(self, prefix):
        for entry in self._iter(prefix):
            try:
                self.cmap.delete(entry.key)
            except CsError as exc:
                print(f"Can't delete key {entry.key}. Error {strerror(exc.code)}",
                      file=sys.stderr)

    def get(self, keys):
        for key in keys:
            try:
                value_type, _ = self.cmap.get_type_len(key)
            except CsError as exc:
                raise Fail(f"Can't get key {key}. Error {strerror(exc.code)}") from None
            self.print_key(key, value_type)

    def delete(self, keys):
        for key in keys:
            try:
                self.cmap.delete(key)
            except CsError as exc:
                raise Fail(f"Can't delete key {key}. Error {strerror(exc.code)}") from None

    def set_key(self, key, type_name, text):
        try:
            value_type, value = F.parse_value(type_name, text)
        except F.ValueTextError as exc:
            raise Fail(str(exc)) from None
        if value_type == S.BINARY:
            value = _read_binary(text)
        try:
            self.cmap.set(key, value, value_type)
        except CsError as exc:
            raise Fail(f"Failed to set key {key}. Error {strerror(exc.code)}") from None

    def load(self, filename):
        try:
            with open(filename, "rb") as fh:
                lines = fh.read().split(b"\n")
        except OSError as exc:
            print(f"Couldn't open file.: {exc.strerror}", file=sys.stderr)
            return
        for raw in lines:
            line = raw.decode(errors="surrogateescape").lstrip(" \t")
            if not line or line.startswith("#"):
                continue
            words = [w for w in line.replace("\n", " ").split(" ") if w]  # strtok(" \n")
            key = words[0]
            if key.startswith("^^"):
                self.delete_with_prefix(key[2:])
            elif key.startswith("^"):
                try:
                    self.cmap.delete(key[1:])
                except CsError as exc:
                    print(f"Can't delete key {key[1:]}. Error {strerror(exc.code)}",
                          file=sys.stderr)
            elif len(words) < 3:
                raise Fail(f"Both type and value for key {key} are required")
            else:
                self.set_key(key, words[1], words[2])

    def track(self, keys, prefix: bool):
        flags = S.TRACK_ADD | S.TRACK_DELETE | S.TRACK_MODIFY | (S.TRACK_PREFIX if prefix else 0)
        for key in keys:
            try:
                self.cmap.track_add(key, flags, self._on_change)
            except CsError as exc:
                raise Fail(f"Failed to add tracking function. Error {strerror(exc.code)}") \
                    from None
        print('Type "q" to finish', flush=True)
        fd = self.cmap.fileno()
        stdin_fd = sys.stdin.fileno()
        while True:
            ready, _, _ = select.select([fd, stdin_fd], [], [])
            if stdin_fd in ready:
                line = sys.stdin.readline()
                if not line or line.startswith("q"):
                    return
            if fd in ready:
                try:
                    self.cmap.dispatch(CS_DISPATCH_ALL)
                except CsError as exc:
                    print(f"Dispatch error {strerror(exc.code)}", file=sys.stderr)
                    return

    def _on_change(self, cmap, track_handle, event, key, new, old, user_data):
        names = {S.TRACK_ADD: ("create> ", new), S.TRACK_DELETE: ("delete> ", old),
                 S.TRACK_MODIFY: ("modify> ", new)}
        if event not in names:
            print("unknown change> ", end="", flush=True)
            return
        label, val = names[event]
        self.emit(key, val.type, S.decode_value(val.type, val.data), prefix=label)


def _read_binary(name):
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise Fail(f"Can't open input file: {exc.strerror}") from None


def _connect(cmap_map, suffix):
    for attempt in range(MAX_TRY_AGAIN + 1):
        try:
            return Cmap(map=cmap_map, suffix=suffix)
        except CsError as exc:
            if exc.code != CS_ERR_TRY_AGAIN or attempt == MAX_TRY_AGAIN:
                raise Fail(f"Failed to initialize the cmap API. Error {strerror(exc.code)}") \
                    from None
        time.sleep(TRY_AGAIN_SLEEP_S)


def _parse(argv):
    """(settings dict, positional args) or an int exit code (help / bad option)."""
    opts = {"action": "print", "track_prefix": True, "map": S.MAP_ICMAP, "binary": False,
            "quiet": False, "json": False, "suffix": "", "file": None, "clear": None}
    try:
        pairs, args = getopt.gnu_getopt(argv, "m:hqgsdDtTbp:C:", ["json", "suffix="])
    except getopt.GetoptError as exc:
        # GNU getopt's wording, which the C tool prints
        what = "option requires an argument" if "requires" in exc.msg else "invalid option"
        opt = exc.opt if len(exc.opt) == 1 else f"-{exc.opt}"
        print(f"{PROG}: {what} -- '{opt}'", file=sys.stderr)
        return EXIT_FAILURE
    simple = {"-g": "get", "-s": "set", "-d": "delete", "-D": "delete_prefix"}
    for opt, val in pairs:
        if opt == "-h":
            print(HELP, end="")
            return EXIT_OK
        if opt in simple:
            opts["action"] = simple[opt]
        elif opt in ("-t", "-T"):
            opts["action"], opts["track_prefix"] = "track", opt == "-T"
        elif opt == "-p":
            opts["action"], opts["file"] = "load", val
        elif opt == "-C":
            if val not in CLEAR_STATS:
                print("argument to -C should be 'knet', 'totem', 'ipc', 'schedmiss' or 'all'",
                      file=sys.stderr)
                return EXIT_FAILURE
            opts["action"], opts["clear"], opts["map"] = "clear", val, S.MAP_STATS
        elif opt == "-m":
            maps = {"icmap": S.MAP_ICMAP, "default": S.MAP_ICMAP, "stats": S.MAP_STATS}
            if val not in maps:
                print("invalid map name, must be 'default', 'icmap' or 'stats'", file=sys.stderr)
                return EXIT_FAILURE
            opts["map"] = maps[val]
        else:
            key = {"-b": "binary", "-q": "quiet", "--json": "json"}.get(opt)
            if key:
                opts[key] = True
            elif opt == "--suffix":
                opts["suffix"] = val
    return opts, args


def run(argv) -> int:
    parsed = _parse(argv)
    if isinstance(parsed, int):
        return parsed
    opts, args = parsed
    if not args and opts["action"] not in ("load", "clear", "print"):
        print("Expected key after options", file=sys.stderr)
        return EXIT_FAILURE
    tool = Tool(opts["binary"], opts["quiet"], opts["json"])
    try:
        tool.cmap = _connect(opts["map"], opts["suffix"])
        status = _act(tool, opts, args)
        if tool.as_json and opts["action"] in ("print", "get"):
            print(json.dumps(tool.json_rows, indent=1))
    except Fail as exc:
        sys.stdout.flush()
        print(exc, file=sys.stderr)
        return EXIT_FAILURE
    try:
        tool.cmap.finalize()
    except CsError as exc:
        print(f"Failed to finalize the cmap API. Error {strerror(exc.code)}", file=sys.stderr)
        return EXIT_FAILURE
    return status


def _act(tool, opts, args) -> int:
    action = opts["action"]
    if action == "print":
        if not args:
            no_result = tool.print_iter(None)
        else:
            no_result = sum(tool.print_iter(prefix) for prefix in args)
        return EXIT_FAILURE if no_result > 0 and no_result >= len(args) else EXIT_OK
    if action == "get":
        tool.get(args)
    elif action == "delete":
        tool.delete(args)
    elif action == "delete_prefix":
        for prefix in args:
            tool.delete_with_prefix(prefix)
    elif action == "load":
        tool.load(opts["file"])
    elif action == "track":
        tool.track(args, opts["track_prefix"])
    elif action == "set":
        if len(args) < 3:
            raise Fail("At least 3 parameters are expected for set")
        tool.set_key(args[0], args[1], args[2])
    elif action == "clear":
        try:
            tool.cmap.set_uint32(f"stats.clear.{opts['clear']}", 1)
        except CsError:
            pass  # the C tool ignores the result too
    return EXIT_OK


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FAILURE
    sys.exit(code)


if __name__ == "__main__":
    main()
