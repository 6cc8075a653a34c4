"""`coroproc-keygen`: corosync-keygen's options, messages, exit codes and key file, plus --json.

    coroproc-keygen [-k <keyfile>] [-s size] [-r <randomfile>] [-l] [-h] [--json]

Reads `size` bytes (128..4096, default 256; knet's TOTEM_PRIVATE_KEY_LEN_MIN/MAX) from
the random source (default /dev/urandom) and writes them to the key file (default
/etc/corosync/authkey), created 0600 then set to 0400 before the key is written, as
tools/corosync-keygen.c (3.1.7) does. Exit codes: 1 bad option/size or random source,
2 cannot create, 3 cannot chmod, 4 cannot write, 5 cannot close. -l is accepted and
ignored. Unlike the C tool, a random source that ends early is an error (exit 1)
instead of a loop waiting for more.
"""
from __future__ import annotations

import getopt
import io
import json
import os
import sys

DEFAULT_KEYFILE = "/etc/corosync/authkey"
DEFAULT_KEY_BYTES = 256
KEY_BYTES_MIN = 128
KEY_BYTES_MAX = 4096
DEFAULT_RANDOM_DEV = "/dev/urandom"
PROG = "corosync-keygen"
USAGE = f"""Usage: corosync-keygen [-k <keyfile>] [-s size] [-m <randomfile>] [-l] [-h]
     -k / --key-file=<filename> -  Write to the specified keyfile
            instead of the default {DEFAULT_KEYFILE}.
     -r / --random-file -  Random number source file. Default is 
            /dev/urandom. As an example /dev/random may be requested
            (that may require user input for entropy).
     -l / --less-secure - Not used, option is kept only
            for compatibility.
     -s / --size -  Length of key.
     -h / --help -  Print basic usage.
"""


class KeygenError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _err(code: int, what: str, exc: OSError) -> KeygenError:
    """err(3)'s "prog: what: strerror" line."""
    return KeygenError(code, f"{PROG}: {what}: {os.strerror(exc.errno or 0)}")


def read_key(random_dev: str, key_bytes: int, out) -> bytes:
    try:
        fd = os.open(random_dev, os.O_RDONLY)
    except OSError as exc:
        raise _err(1, "Failed to open random source", exc) from None
    try:
        if random_dev == "/dev/random":
            out.write("Press keys on your keyboard to generate entropy.\n")
        key = bytearray()
        while len(key) < key_bytes:
            try:
                chunk = os.read(fd, key_bytes - len(key))
            except OSError as exc:
                raise _err(1, "Could not read /dev/random", exc) from None
            if not chunk:
                raise KeygenError(1, f"{PROG}: random source {random_dev} ended after "
                                     f"{len(key)} of {key_bytes} bytes")
            key += chunk
        return bytes(key)
    finally:
        os.close(fd)


def write_key(keyfile: str, key: bytes, out) -> None:
    try:
        fd = os.open(keyfile, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise _err(2, f"Could not create {keyfile}", exc) from None
    try:
        try:
            os.fchmod(fd, 0o400)   # before the key lands in the file, as the C tool
        except OSError as exc:
            raise _err(3, "Failed to set key file permissions to 0400", exc) from None
        out.write(f"Writing corosync key to {keyfile}.\n")
        try:
            written = os.write(fd, key)
        except OSError as exc:
            raise _err(4, f"Could not write {keyfile}", exc) from None
        if written != len(key):
            raise KeygenError(4, f"{PROG}: Could not write {keyfile}: short write")
    finally:
        try:
            os.close(fd)
        except OSError as exc:
            raise _err(5, f"Could not close {keyfile}", exc) from None


def parse_size(text: str) -> int:
    try:
        size = int(text, 10)
    except ValueError:
        size = -1
    if not KEY_BYTES_MIN <= size <= KEY_BYTES_MAX:
        raise KeygenError(1, f"{PROG}: Unsupported key size (supported "
                             f"<{KEY_BYTES_MIN},{KEY_BYTES_MAX}>)\n")
    return size


def run(argv: list[str], out) -> int:
    try:
        pairs, _rest = getopt.gnu_getopt(argv, "k:r:s:lh", [
            "key-file=", "less-secure", "random-file=", "size=", "help", "json"])
    except getopt.GetoptError as exc:
        sys.stderr.write(f"{PROG}: {exc.msg}\n")
        out.write("Error parsing command line options.\n")
        return 1
    keyfile, random_dev, key_bytes, as_json = DEFAULT_KEYFILE, DEFAULT_RANDOM_DEV, \
        DEFAULT_KEY_BYTES, False
    for opt, val in pairs:
        if opt in ("-k", "--key-file"):
            keyfile = val
        elif opt in ("-r", "--random-file"):
            random_dev = val
        elif opt in ("-s", "--size"):
            key_bytes = parse_size(val)
        elif opt in ("-h", "--help"):
            out.write(USAGE + "\n")
            return 0
        elif opt == "--json":
            as_json = True
    text = io.StringIO() if as_json else out     # --json: the C tool's lines are dropped
    text.write("Corosync Cluster Engine Authentication key generator.\n")
    text.write(f"Gathering {key_bytes * 8} bits for key from {random_dev}.\n")
    key = read_key(random_dev, key_bytes, text)
    write_key(keyfile, key, text)
    if as_json:
        out.write(json.dumps({"keyfile": keyfile, "key_bytes": key_bytes,
                              "random_source": random_dev, "mode": "0400"}) + "\n")
    return 0


def main() -> None:
    try:
        code = run(sys.argv[1:], sys.stdout)
    except KeygenError as exc:
        sys.stdout.flush()
        sys.stderr.write(str(exc).rstrip("\n") + "\n")
        code = exc.code
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
