"""Authkey rotation without downtime, driven by `corosync-cfgtool -R` (transport knet).

Corosync 3.1 (built with knet crypto reconfiguration) changes keys in phases carried by
CFG's CRYPTO_RECONFIG exec message, sent SAFE. coroproc does the same with its own keys:

1. RELOAD_CONFIG is delivered everywhere; each supervisor re-reads the authkey file and,
   when its contents changed, has every link process ADD the new key (receive accepts
   old and new). The reply names the new key id; this node then multicasts
   CRYPTO_RECONFIG phase 1 (SAFE: it is delivered after every member added the key,
   because each member processed RELOAD_CONFIG before this message in agreed order).
2. When a node's OWN phase-1 message comes back it makes its links USE the new key for
   sending (Corosync's "Got our own reconfig message" rule).
3. When phase 1 of every current member has been delivered, nobody seals with the old
   key any more: the links DROP it. A membership change re-checks (a member that left
   is no longer waited for).

The phase-1 messages of a rotation are those delivered after its RELOAD_CONFIG, which
is where the tally starts — not when this node's own key is loaded: the supervisor's
reload is asynchronous, so another node's phase 1 can be delivered here first.

Changing crypto_cipher/crypto_hash, or crypto on/off, at run time is not supported (the
link frame overhead, hence Totem's frame size, would change): the reload logs it as a
read-only change, as Corosync does without crypto reconfiguration.
"""
from __future__ import annotations

PHASE_ACTIVATE = 1          # Corosync's CRYPTO_RECONFIG_PHASE_ACTIVATE
PHASE_CLEANUP = 2           # Corosync's CRYPTO_RECONFIG_PHASE_CLEANUP (not needed here)


class KeyRotation:
    def __init__(self, ctx, send_phase, ask):
        """send_phase(phase) -> bool multicasts CRYPTO_RECONFIG (SAFE); ask(op, args, done)
        asks the supervisor ("crypto_use" / "crypto_drop")."""
        self.ctx = ctx
        self._send_phase = send_phase
        self._ask = ask
        self.pending_key_id: int | None = None
        self._activated: set[int] = set()
        self.stats = {"rotations_started": 0, "rotations_done": 0, "phase_send_failed": 0}

    def reload_delivered(self) -> None:
        """RELOAD_CONFIG was delivered: the phase-1 messages that follow belong to the
        rotation it may start."""
        self._activated = set()

    def key_loaded(self, key_id: int) -> None:
        """The supervisor added a new key to every link (reload saw a new authkey)."""
        self.pending_key_id = key_id
        self.stats["rotations_started"] += 1
        self.ctx.notice(f"Crypto key {key_id} loaded; activating it cluster-wide")
        if not self._send_phase(PHASE_ACTIVATE):
            self.stats["phase_send_failed"] += 1
            self.ctx.error("Crypto reconfiguration: could not send phase 1 (submit ring "
                           "full); the new key stays accepted but unused until the next -R")

    def on_phase(self, sender: int, phase: int) -> None:
        self.ctx.debug(f"Crypto reconfiguration phase {phase} from node {sender}")
        if phase != PHASE_ACTIVATE:
            return
        self._activated.add(sender)
        if sender == self.ctx.nodeid and self.pending_key_id is not None:
            self._ask("crypto_use", {"key_id": self.pending_key_id}, self._logged("use"))
        self._maybe_drop()

    def on_members(self) -> None:
        self._maybe_drop()

    def _maybe_drop(self) -> None:
        if self.pending_key_id is None or self.ctx.nodeid not in self._activated:
            return
        if not set(self.ctx.members) <= self._activated:
            return
        key_id, self.pending_key_id = self.pending_key_id, None
        self.stats["rotations_done"] += 1
        self._ask("crypto_drop", {"key_id": key_id}, self._logged("drop"))

    def _logged(self, what: str):
        def done(ok: bool, error: str) -> None:
            if ok:
                self.ctx.notice(f"Crypto reconfiguration: {what} done")
            else:
                self.ctx.error(f"Crypto reconfiguration: {what} failed: {error}")
        return done
