"""One monitored resource of the WD engine: its key names, its state machine, its check.

A resource is a group of cmap keys `resources.<type>.<name>.{state, recovery,
poll_period, last_updated}` written by whoever monitors it (SAM's CMAP policy for
`process`, the MON engine for `system`). Corosync's wd.c rules, kept here as data and
pure functions so they can be tested without a daemon:

* state machine (wd_fsm_table): config_changed is allowed in every state and leads to
  running or stopped; failure is acted on only in running and leads to failed.
* the check passes when last_updated exists, state exists and is not "disabled", and
  either last_updated is 0 (the monitor has not started) or it is no older than
  1.5 × poll_period, and state is not "failed".
* poll_period is usable in 500 ms .. 120 s; the first check waits max(2 × poll_period,
  6 s) so a monitor that just registered has time to write its first timestamp.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RUNNING = "running"
FAILED = "failed"
STOPPED = "stopped"

EVENT_CONFIG_CHANGED = "config_changed"
EVENT_FAILURE = "failure"

# (state, event) -> states the handler may move to; () = the event is ignored there
FSM_TABLE = {
    (STOPPED, EVENT_CONFIG_CHANGED): (STOPPED, RUNNING),
    (STOPPED, EVENT_FAILURE): (),
    (RUNNING, EVENT_CONFIG_CHANGED): (RUNNING, STOPPED),
    (RUNNING, EVENT_FAILURE): (FAILED,),
    (FAILED, EVENT_CONFIG_CHANGED): (RUNNING, STOPPED),
    (FAILED, EVENT_FAILURE): (),
}

DEFAULT_TIMEOUT_MS = 6000
MIN_TIMEOUT_MS = 500
MAX_TIMEOUT_MS = 120_000
GRACE_NUMERATOR, GRACE_DENOMINATOR = 3, 2      # last_updated may be 1.5 × poll_period old

# What a failed resource's `recovery` asks for; anything else only marks it failed.
RECOVERY_STOP_KICKING = ("watchdog", "quit")
RECOVERY_REBOOT = "reboot"
RECOVERY_POWER_OFF = "shutdown"


def split_key(key: str):
    """'resources.<type>.<name>.<leaf>…' -> (type, name, leaf), as wd.c's
    sscanf("resources.%[^.].%[^.].%[^.]"); None for any other key."""
    parts = key.split(".")
    if len(parts) < 4 or parts[0] != "resources" or not all(parts[1:4]):
        return None
    return parts[1], parts[2], parts[3]


def resource_path(rtype: str, name: str) -> str:
    return f"resources.{rtype}.{name}."


def poll_period_usable(value_ms) -> bool:
    return isinstance(value_ms, int) and MIN_TIMEOUT_MS <= value_ms <= MAX_TIMEOUT_MS


def first_check_delay_ms(check_timeout_ms: int) -> int:
    return max(check_timeout_ms * 2, DEFAULT_TIMEOUT_MS)


def check(last_updated_ns, state, check_timeout_ms: int, now_ns: int):
    """(ok, why) for one check; `why` is the operator-facing reason when not ok."""
    assert check_timeout_ms > 0
    if last_updated_ns is None:
        return False, "no last_updated key"
    if state is None:
        return False, "no state key"
    if state == "disabled":
        return False, "state is disabled"
    if last_updated_ns == 0:
        return True, ""                  # the monitor has not written a timestamp yet
    allowed_ns = check_timeout_ms * 1_000_000 * GRACE_NUMERATOR // GRACE_DENOMINATOR
    if last_updated_ns + allowed_ns < now_ns:
        late_ms = now_ns // 1_000_000 - (last_updated_ns + allowed_ns) // 1_000_000
        return False, f"last_updated {late_ms} ms too late, period:{check_timeout_ms}."
    if state == FAILED:
        return False, "state is failed"
    return True, ""


@dataclass(eq=False)
class Resource:
    rtype: str
    name: str
    check_timeout_ms: int = DEFAULT_TIMEOUT_MS
    recovery: str | None = None
    fsm: str = STOPPED
    timer: object = None                 # the pending check (api.Timer) or None
    seen: tuple = field(default=())      # (state, recovery, poll_period) at the last scan
    failures: int = 0

    @property
    def path(self) -> str:
        return resource_path(self.rtype, self.name)

    def transition(self, event: str, to: str) -> bool:
        """Move the state machine; False (and no move) when the table forbids it."""
        allowed = FSM_TABLE[(self.fsm, event)]
        if to not in allowed:
            return False
        self.fsm = to
        return True

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
