"""CPU atomics on one int64 element of a numpy array, usable from @njit code.

This file owns the memory-ordering primitives the shm rings are built on. numba
has no atomics of its own, and on shared memory that matters twice over: LLVM
hoists a plain load out of a spin loop (the loop never sees the other process's
store), and a read-modify-write made of plain loads and stores loses updates
when two processes race. Each primitive here is a `numba.extending.intrinsic`
that emits the LLVM atomic instruction directly (load atomic / store atomic /
atomicrmw / fence), so the ordering is a property of the generated code, not of
optimiser luck.

All functions take `(arr, idx, ...)` where `arr` is a C-contiguous int64 array
(typically a view of a shared mapping) and `idx` an index into it. The index is
NOT bounds-checked (an atomic cannot go through numba's checked getitem); callers
use fixed header slots.

Under NUMBA_DISABLE_JIT=1 (debugging, coverage) intrinsics cannot run, so the same
names are bound to plain-Python versions. They are correct for that use: CPython
does not reorder the numpy element reads/writes they make, x86 keeps stores in order
(TSO), and the read-modify-writes are only atomic against other threads of the same
interpreter (the GIL), not against another process — tests that race processes run
jitted.
"""

from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic

_INT64_ALIGN_BYTES = 8


def _check_int64_array(arr, where):
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        raise TypeError(f"{where}: expected a 1-d int64 array, got {arr}")


def _element_ptr(context, builder, arr_ty, arr_val, idx_ty, idx_val):
    ary = context.make_array(arr_ty)(context, builder, arr_val)
    idx = context.cast(builder, idx_val, idx_ty, types.intp)
    return cgutils.get_item_pointer(context, builder, arr_ty, ary, [idx])


def _make_load(ordering):
    @intrinsic
    def _load(typingctx, arr, idx):
        _check_int64_array(arr, f"atomic load ({ordering})")

        def codegen(context, builder, sig, args):
            ptr = _element_ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1])
            return builder.load_atomic(ptr, ordering, _INT64_ALIGN_BYTES, typ=ir.IntType(64))

        return types.int64(arr, idx), codegen

    return _load


def _make_store(ordering):
    @intrinsic
    def _store(typingctx, arr, idx, val):
        _check_int64_array(arr, f"atomic store ({ordering})")

        def codegen(context, builder, sig, args):
            ptr = _element_ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1])
            v = context.cast(builder, args[2], sig.args[2], types.int64)
            builder.store_atomic(v, ptr, ordering, _INT64_ALIGN_BYTES)
            return context.get_dummy_value()

        return types.void(arr, idx, val), codegen

    return _store


def _make_rmw(op):
    @intrinsic
    def _rmw(typingctx, arr, idx, val):
        _check_int64_array(arr, f"atomic {op}")

        def codegen(context, builder, sig, args):
            ptr = _element_ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1])
            v = context.cast(builder, args[2], sig.args[2], types.int64)
            return builder.atomic_rmw(op, ptr, v, "seq_cst")

        return types.int64(arr, idx, val), codegen

    return _rmw


@intrinsic
def _fence_seq_cst(typingctx):
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _cas(typingctx, arr, idx, expected, desired):
    _check_int64_array(arr, "atomic compare-and-swap")

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        exp = context.cast(builder, args[2], sig.args[2], types.int64)
        des = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(ptr, exp, des, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return types.int64(arr, idx, expected, desired), codegen


@intrinsic
def _fetch_add_i32_at(typingctx, addr, val):
    """atomicrmw add on the int32 at a raw address (a mapped file that is not a numpy
    array of the loop, e.g. a libqb control file's `sent` counter)."""
    if not isinstance(addr, types.Integer):
        raise TypeError(f"atomic int32 add: address must be an integer, got {addr}")

    def codegen(context, builder, sig, args):
        a = context.cast(builder, args[0], sig.args[0], types.int64)
        ptr = builder.inttoptr(a, ir.PointerType(ir.IntType(32)))
        v = context.cast(builder, args[1], sig.args[1], types.int32)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return types.int32(addr, val), codegen


#: load_acquire(arr, idx) -> int64: no later read/write moves before it.
load_acquire = _make_load("acquire")
#: load_seq_cst(arr, idx) -> int64: total order with every other seq_cst op.
load_seq_cst = _make_load("seq_cst")
#: load_relaxed(arr, idx) -> int64: atomic (never hoisted or torn), no ordering.
load_relaxed = _make_load("monotonic")
#: store_release(arr, idx, val): no earlier read/write moves after it.
store_release = _make_store("release")
#: store_seq_cst(arr, idx, val)
store_seq_cst = _make_store("seq_cst")
#: store_relaxed(arr, idx, val): atomic, no ordering (counters).
store_relaxed = _make_store("monotonic")
#: exchange(arr, idx, val) -> old value; seq_cst.
exchange = _make_rmw("xchg")
#: fetch_add(arr, idx, val) -> old value; seq_cst (lock xadd on x86).
fetch_add = _make_rmw("add")
#: fence_seq_cst(): full barrier (mfence on x86); orders an earlier store before a later load.
fence_seq_cst = _fence_seq_cst
#: compare_exchange(arr, idx, expected, desired) -> value found (== expected on success).
compare_exchange = _cas
#: fetch_add_i32_at(addr, val) -> old value; seq_cst add on the int32 at address addr.
fetch_add_i32_at = _fetch_add_i32_at


def _py_load(arr, idx):
    return int(arr[idx])


def _py_store(arr, idx, val):
    arr[idx] = val


def _py_exchange(arr, idx, val):
    old = int(arr[idx])
    arr[idx] = val
    return old


def _py_fetch_add(arr, idx, val):
    old = int(arr[idx])
    arr[idx] = old + val
    return old


def _py_fetch_add_i32_at(addr, val):
    import ctypes
    cell = ctypes.c_int32.from_address(addr)
    old = cell.value
    cell.value = ((old + val + 2**31) % 2**32) - 2**31
    return old


def _py_fence():
    pass


def _py_cas(arr, idx, expected, desired):
    old = int(arr[idx])
    if old == expected:
        arr[idx] = desired
    return old


if config.DISABLE_JIT:
    load_acquire = load_seq_cst = load_relaxed = _py_load
    store_release = store_seq_cst = store_relaxed = _py_store
    exchange, fetch_add, fence_seq_cst, compare_exchange = _py_exchange, _py_fetch_add, _py_fence, _py_cas
    fetch_add_i32_at = _py_fetch_add_i32_at
