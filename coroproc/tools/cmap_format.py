"""corosync-cmapctl's text formats for cmap values, both directions, byte for byte.

This file owns how coroproc-cmapctl prints a key ("key (u32) = 5", quiet "5", binary
escaping) and how it parses a value given on the command line or in a -p file, the
way the C tool's printf/sscanf calls do (tools/corosync-cmapctl.c in Corosync 3.1.7):

* integers are read with sscanf %PRId64/%PRIu64: leading blanks, optional sign,
  decimal digits, trailing junk ignored; out-of-range input saturates (strtoll) and a
  negative number read as unsigned wraps modulo 2**64 (strtoull), *then* the tool's
  range check for the narrower type applies;
* floats print with "%f"; binary bytes print as-is when printable, "\\\\" for a
  backslash, and "\\x%02X" of a *signed* char otherwise — so 0x80..0xFF come out
  as "\\xFFFFFF80".."\\xFFFFFFFF", exactly as the C tool shows them.
"""

import math
import re

from coroproc.ipc import cmap_structs as S

_INT_RE = re.compile(r"\s*([+-]?)(\d+)")
_FLOAT_RE = re.compile(
    r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", re.IGNORECASE)
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_SIGNED_BITS = {S.INT8: 8, S.INT16: 16, S.INT32: 32}
_UNSIGNED_BITS = {S.UINT8: 8, S.UINT16: 16, S.UINT32: 32}


class ValueTextError(ValueError):
    """The text cannot be used as a value of that type; str(exc) is the tool's message."""


def scan_int64(text: str):
    """sscanf("%" PRId64): the int, or None when no number starts the text."""
    m = _INT_RE.match(text)
    if not m:
        return None
    value = int(m.group(1) + m.group(2))
    return max(INT64_MIN, min(INT64_MAX, value))


def scan_uint64(text: str):
    """sscanf("%" PRIu64): like strtoull, "-1" is 2**64-1 and overflow saturates."""
    m = _INT_RE.match(text)
    if not m:
        return None
    magnitude = int(m.group(2))
    if magnitude > UINT64_MAX:
        return UINT64_MAX
    return (-magnitude) % 2**64 if m.group(1) == "-" else magnitude


def scan_float(text: str):
    m = _FLOAT_RE.match(text)
    return float(m.group(1)) if m else None


def parse_value(type_name: str, text: str):
    """(value_type, Python value) for `-s key <type_name> <text>` (bin is handled by the
    caller: its text is a file name). Raises ValueTextError with the C tool's message."""
    value_type = S.TYPES_BY_NAME.get(type_name)
    if value_type is None:
        raise ValueTextError(f"Unknown type {type_name}")
    if value_type in (S.STRING, S.BINARY):
        return value_type, text
    if value_type in (S.INT8, S.INT16, S.INT32, S.INT64):
        value = scan_int64(text)
    elif value_type in (S.UINT8, S.UINT16, S.UINT32, S.UINT64):
        value = scan_uint64(text)
    else:
        value = scan_float(text)
    if value is None:
        raise ValueTextError(f"{text} is not valid {type_name} type value")
    bits = _SIGNED_BITS.get(value_type)
    if bits and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueTextError(f"{text} is not valid {type_name} integer")
    bits = _UNSIGNED_BITS.get(value_type)
    if bits and value >= 2**bits:
        raise ValueTextError(f"{text} is not valid {type_name} integer")
    if value_type == S.FLOAT and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
        value = math.copysign(math.inf, value)  # strtof overflows to ±HUGE_VALF
    return value_type, value


def escape_binary(raw: bytes) -> str:
    out = []
    for b in raw:
        if 0x20 <= b < 0x7F and b != 0x5C:
            out.append(chr(b))
        elif b == 0x5C:
            out.append("\\\\")
        else:  # printf("%02X") of a sign-extended char
            out.append(f"\\x{b if b < 0x80 else b + 0xFFFFFF00:02X}")
    return "".join(out)


def _c_float(value: float) -> str:
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return f"{value:f}"


def format_value(value_type: int, value, show_binary: bool) -> str:
    """The text after "= " (numbers, strings), or the escaped binary."""
    if value_type in (S.FLOAT, S.DOUBLE):
        return _c_float(value)
    if value_type == S.STRING:
        return value
    if value_type == S.BINARY:
        return escape_binary(value)
    return str(value)


def format_key(key: str, value_type: int, value, *, quiet: bool, show_binary: bool) -> str:
    """One line of `corosync-cmapctl` output, without the newline."""
    type_name = S.TYPE_NAMES[value_type]
    head = "" if quiet else f"{key} ("
    if value_type == S.BINARY:
        # The C tool prints "bin)" even in quiet mode, and the value only with -b.
        text = f"{head}bin)"
        return f"{text} = {escape_binary(value)}" if show_binary else text
    body = format_value(value_type, value, show_binary)
    return body if quiet else f"{head}{type_name}) = {body}"


def json_value(value_type: int, value):
    """A JSON-friendly value: bytes as lowercase hex, everything else unchanged."""
    if value_type == S.BINARY:
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
