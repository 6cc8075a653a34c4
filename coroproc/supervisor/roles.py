"""What each child runs: attach to the node's rings, connect to the control socket, loop.

Each target is a closure over the plan, built in the supervisor and called in the forked
child; it returns the child's exit status.
"""
from __future__ import annotations

import signal

from coroproc.logsys import Log

from .beats import beat_every_s
from .control import ControlClient, beat_phase_s


def _control(plan, endpoint, role, **kw) -> ControlClient:
    """A child's control client, beating on its node's phase of the grid."""
    every_s = beat_every_s(plan.heartbeat_timeout_ms)
    return ControlClient(endpoint, role, beat_phase_s=beat_phase_s(plan.nodeid, every_s),
                         beat_every_s=every_s, **kw)


def ring_target(plan, doorbell, endpoint):
    def run() -> int:
        from coroproc.ringproc.process import RingProcess
        log = Log(plan.log)
        control = _control(plan, endpoint, "ring")
        proc = RingProcess(plan, log, control, doorbell)
        control.counters_fn = proc.state_dump
        # SIGTERM straight to the ring process (an operator's kill) leaves the ring too
        signal.signal(signal.SIGTERM, lambda *_: setattr(control, "stop_requested", True))
        try:
            return proc.run()
        finally:
            proc.close()
            control.close()
    return run


def net_target(plan, link, doorbell, endpoint):
    def run() -> int:
        from coroproc.shm.ring import ShmRing
        role = f"net{link.linknumber}"
        rx = ShmRing.attach(link.rx_name, wake_fd=plan.ring_wake_fd, role="producer")
        tx = ShmRing.attach(link.tx_name, role="consumer")
        if link.secure is not None:
            from coroproc.netproc.secure_link import SecureLinkProcess
            proc = SecureLinkProcess(link.spec, link.secure, rx, tx, doorbell,
                                     log=Log(plan.log))
        else:
            from coroproc.netproc.link import LinkProcess
            proc = LinkProcess(link.spec, rx, tx, doorbell)
        control = _control(plan, endpoint, role, counters=proc.counters)
        try:
            proc.run(control)
        finally:
            control.close()
            del proc
            rx.close()
            tx.close()
        return 0
    return run


def engine_target(plan, eng, doorbell, endpoint):
    def run() -> int:
        from coroproc.engineprocs import registry
        log = Log(plan.log)
        control = _control(plan, endpoint, eng.name)
        return registry.run_engine(plan, eng, doorbell, control, log)
    return run
