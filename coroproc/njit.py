"""The project's @njit: numba's, compiled without NRT reference counting.

The kernels (ring loop, link loop, cpg lane, shm rings) work on arrays that Python made
and keeps alive: the rings' mappings and the state tuples of ringproc. With numba's NRT
on, every array taken out of a tuple or handed to a kernel that is not inlined costs an
atomic increment and decrement of its meminfo's count (`lock xadd`, through two calls).
The ring process's state is a tuple of some thirty arrays, so a state-taking call cost
~60 of them: perf put 29 % of the ring process's CPU in those two instructions (3 nodes,
1 KiB at 1,000 msgs/s), and its CPU per wake-up fell from ~40 to ~21 µs without them.

Without NRT a kernel cannot allocate an array (numba refuses to compile np.empty and
the like: a kernel that must allocate says `_nrt=True`), and returning an array to
Python gives back the array it was cut from. numba refuses a returned array that is not
an argument; `ReturnsNoArrayView` below refuses an array inside a returned tuple too.
"""
from __future__ import annotations

import numba
from numba.core import types
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import AnalysisPass, register_pass
from numba.core.errors import NumbaTypeError
from numba.core.typed_passes import NopythonTypeInference

from coroproc.jitcache import CACHE_DIR  # noqa: F401  (must run before any @njit(cache=True))


def _nests_array(t) -> bool:
    if isinstance(t, types.Array):
        return True
    if isinstance(t, types.BaseTuple):
        return any(_nests_array(m) for m in t)
    return False


@register_pass(mutates_CFG=False, analysis_only=True)
class ReturnsNoArrayView(AnalysisPass):
    """Without NRT, numba boxes a returned array as the array it was cut from (its
    parent); it checks a bare returned array, not one inside a tuple."""
    _name = "coroproc_returns_no_array_view"

    def __init__(self):
        AnalysisPass.__init__(self)

    def run_pass(self, state):
        rt = state.return_type
        if not state.flags.nrt and isinstance(rt, types.BaseTuple) and _nests_array(rt):
            raise NumbaTypeError(
                f"{state.func_id.func_qualname} returns {rt}: an array inside a returned "
                f"tuple needs NRT (decorate it with _nrt=True)")
        return False


class _Pipeline(CompilerBase):
    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(ReturnsNoArrayView, NopythonTypeInference)
        pm.finalize()
        return [pm]


def njit(*args, **kwargs):
    """numba.njit with `_nrt=False` unless given, and the returned-view check."""
    kwargs.setdefault("_nrt", False)
    kwargs.setdefault("pipeline_class", _Pipeline)
    return numba.njit(*args, **kwargs)
