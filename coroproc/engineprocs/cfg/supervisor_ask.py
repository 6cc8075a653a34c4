"""Ask the node's supervisor for something and get exactly one answer, even if it never replies.

ctx.supervisor_request's callback may never run (a supervisor that is busy stopping, a
host without the call): the CFG engine's clients (corosync-cfgtool -R, -L) would then wait
for ever. This wraps the request with a guard timer: `done(ok, error)` runs once, with the
supervisor's reply or with a failure naming the operation after `timeout_ms`.
"""
from __future__ import annotations

from collections.abc import Callable


def ask_supervisor(ctx, op: str, args: dict, done: Callable[[bool, str], None],
                   timeout_ms: float, on_timeout: Callable[[], None] | None = None,
                   on_reply: Callable[[dict], None] | None = None) -> None:
    """`on_reply(reply)` (optional) sees the supervisor's whole answer before done()."""
    assert timeout_ms > 0
    finished = []

    def finish(reply: dict) -> None:
        if finished:
            return
        finished.append(True)
        guard.cancel()
        if on_reply is not None and "ok" in reply:
            on_reply(reply)
        done(bool(reply.get("ok")), str(reply.get("error", "")))

    def expired() -> None:
        if on_timeout is not None and not finished:
            on_timeout()
        finish({"ok": False, "error": f"the supervisor did not answer '{op}' within "
                                      f"{timeout_ms:.0f} ms"})

    guard = ctx.timer_add(timeout_ms, expired)
    try:
        ctx.supervisor_request(op, args, finish)
    except NotImplementedError:
        finish({"ok": False, "error": f"this engine host cannot ask the supervisor '{op}'"})
