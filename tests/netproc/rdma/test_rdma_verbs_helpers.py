"""verbs.py's device-free helper: finding the completion channel fd of pyverbs < 61."""
import os

import pytest

from coroproc.netproc.rdma.errors import VerbsCallFailed
from coroproc.netproc.rdma.verbs import IB_EVENT_FD_TARGET, _fd_targets, new_event_fd


def test_the_one_new_infiniband_event_fd_is_found():
    before = {0: "/dev/null", 5: IB_EVENT_FD_TARGET}
    after = before | {7: "socket:[1]", 9: IB_EVENT_FD_TARGET}
    assert new_event_fd(before, after) == 9


def test_zero_or_two_candidates_are_refused():
    with pytest.raises(VerbsCallFailed, match="0 new"):
        new_event_fd({}, {3: "pipe:[2]"})
    with pytest.raises(VerbsCallFailed, match="2 new"):
        new_event_fd({}, {3: IB_EVENT_FD_TARGET, 4: IB_EVENT_FD_TARGET})


def test_fd_snapshot_sees_a_real_new_descriptor():
    before = _fd_targets()
    r, w = os.pipe()
    try:
        after = _fd_targets()
        assert after[r].startswith("pipe:") and r not in before
    finally:
        os.close(r)
        os.close(w)
