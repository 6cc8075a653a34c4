"""coroproc.njit: kernels compile without NRT, and the traps of that mode are refused."""
import numpy as np
import pytest
from numba.core.errors import TypingError

from coroproc.njit import njit


@njit
def _bump_and_sum(a, b):
    a[0] += 1
    return a[0] + b.sum()


@njit
def _view_in_tuple(a):
    return a[1:3], a.shape[0]


@njit
def _allocates(n):
    return np.zeros(n, np.int64)


@njit(_nrt=True)
def _allocates_with_nrt(n):
    return np.zeros(n, np.int64), n


@njit
def _returns_its_argument(a):
    a[0] = 7
    return a


def test_kernels_run_without_nrt():
    a = np.zeros(2, np.int64)
    assert _bump_and_sum(a, np.arange(4)) == 7
    assert a[0] == 1
    assert _bump_and_sum.targetoptions["_nrt"] is False


def test_an_array_view_inside_a_returned_tuple_is_refused():
    # without NRT numba would box a[1:3] as `a` itself: the pass refuses to compile it
    with pytest.raises(TypingError, match="needs NRT"):
        _view_in_tuple(np.arange(5))


def test_allocation_needs_nrt():
    with pytest.raises(TypingError):
        _allocates(3)


def test_a_kernel_may_ask_for_nrt():
    arr, n = _allocates_with_nrt(3)
    assert n == 3 and arr.tolist() == [0, 0, 0]


def test_returning_an_argument_returns_that_array():
    a = np.arange(6)[2:5]          # a view: its own object must come back, not its base
    out = _returns_its_argument(a)
    assert out is a and out.tolist() == [7, 3, 4]
