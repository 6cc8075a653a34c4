"""Corosync "mar_*" marshalling primitives shared by the service struct codecs.

This file owns the error type of every struct codec (`StructError`) and the pieces the
CPG and CMAP layouts are built from. In Corosync's IPC headers (include/corosync/
mar_gen.h, ipc_*.h) almost every field carries `__attribute__((aligned(8)))`, so a
u32 occupies an 8-byte slot; names are fixed arrays with a separate length.

Conventions (the engines rely on them, see docs/client.md):
* a request *body* is the datagram after the 16-byte qb_ipc_request_header;
* a response/event *body* is the datagram after the 24-byte qb_ipc_response_header;
* unpackers accept `bytes`, `bytearray` or `memoryview` and raise StructError (a
  ValueError) naming the struct, the field and the sizes on short or inconsistent input.
"""

import struct

U32_SLOT = struct.Struct("<I4x")     # mar_uint32_t aligned(8)
I32_SLOT = struct.Struct("<i4x")     # mar_int32_t aligned(8)
U8_SLOT = struct.Struct("<B7x")      # mar_uint8_t aligned(8)
U64 = struct.Struct("<Q")            # mar_uint64_t / mar_size_t / hdb_handle_t
assert U32_SLOT.size == I32_SLOT.size == U8_SLOT.size == U64.size == 8

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1


class StructError(ValueError):
    """A service struct was short, inconsistent or held a value out of range.

    Engines answer CS_ERR_INVALID_PARAM to a client whose request raises this."""


def need(body, size: int, struct_name: str, exact: bool = True) -> memoryview:
    """The body as a memoryview after checking its length against `size` bytes."""
    view = memoryview(body).cast("B")
    if len(view) < size or (exact and len(view) != size):
        rule = "exactly" if exact else "at least"
        raise StructError(f"{struct_name}: body of {len(view)} bytes, expected {rule} {size}")
    return view


def check_u32(value: int, struct_name: str, field: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= U32_MAX:
        raise StructError(f"{struct_name}.{field}={value!r}: allowed 0..{U32_MAX}")
    return value


def check_u64(value: int, struct_name: str, field: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise StructError(f"{struct_name}.{field}={value!r}: allowed 0..{U64_MAX}")
    return value


def check_i32(value: int, struct_name: str, field: str) -> int:
    if not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise StructError(f"{struct_name}.{field}={value!r}: allowed -2**31..2**31-1")
    return value


def as_bytes(value, struct_name: str, field: str) -> bytes:
    """str (UTF-8) or bytes-like -> bytes."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise StructError(f"{struct_name}.{field}: expected str or bytes, got {type(value).__name__}")


def counted_name(length_fmt: str, capacity_bytes: int, type_name: str):
    """(pack, unpack, size) for a {length, value[capacity]} name with aligned(8) fields."""
    layout = struct.Struct(f"<{length_fmt}{8 - struct.calcsize(length_fmt)}x{capacity_bytes}s")

    def pack(name, struct_name: str, field: str) -> bytes:
        raw = as_bytes(name, struct_name, field)
        if len(raw) > capacity_bytes:
            raise StructError(f"{struct_name}.{field}: {type_name} of {len(raw)} bytes, "
                              f"at most {capacity_bytes} allowed")
        return layout.pack(len(raw), raw)

    def unpack(view, offset: int, struct_name: str, field: str) -> bytes:
        length, raw = layout.unpack_from(view, offset)
        if length > capacity_bytes:
            raise StructError(f"{struct_name}.{field}: {type_name}.length={length}, "
                              f"at most {capacity_bytes} allowed")
        return raw[:length]

    return pack, unpack, layout.size
