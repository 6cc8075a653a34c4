"""The CFG engine's key-rotation tally (engineprocs/cfg/key_rotation.py) against the
orders the real cluster produces: the supervisor's reload is asynchronous, so another
node's phase 1 may be delivered before this node's own key is loaded."""
from coroproc.engineprocs.cfg.key_rotation import PHASE_ACTIVATE, KeyRotation


class _Ctx:
    def __init__(self, nodeid, members):
        self.nodeid, self.members = nodeid, members
        self.lines = []

    def notice(self, msg):
        self.lines.append(msg)

    debug = error = notice


def _rotation(nodeid=1, members=(1, 2, 3)):
    asked, sent = [], []
    rot = KeyRotation(_Ctx(nodeid, members), lambda phase: sent.append(phase) or True,
                      lambda op, args, done: asked.append((op, args["key_id"])))
    return rot, asked, sent


def test_phase_of_another_node_before_our_key_is_loaded_still_counts():
    rot, asked, sent = _rotation()
    rot.reload_delivered()
    rot.on_phase(2, PHASE_ACTIVATE)          # node 2 was quicker than our supervisor
    rot.key_loaded(7)
    assert sent == [PHASE_ACTIVATE]
    rot.on_phase(1, PHASE_ACTIVATE)          # our own comes back: use
    rot.on_phase(3, PHASE_ACTIVATE)          # every member activated: drop
    assert asked == [("crypto_use", 7), ("crypto_drop", 7)]


def test_phases_before_the_reload_belong_to_an_earlier_rotation():
    rot, asked, _sent = _rotation()
    rot.on_phase(2, PHASE_ACTIVATE)          # left over from before this reload
    rot.on_phase(3, PHASE_ACTIVATE)
    rot.reload_delivered()
    rot.key_loaded(8)
    rot.on_phase(1, PHASE_ACTIVATE)
    assert asked == [("crypto_use", 8)]      # 2 and 3 have not activated key 8 yet
    rot.on_phase(2, PHASE_ACTIVATE)
    rot.on_phase(3, PHASE_ACTIVATE)
    assert asked == [("crypto_use", 8), ("crypto_drop", 8)]
