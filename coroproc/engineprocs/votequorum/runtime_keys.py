"""runtime.votequorum.* keys: kept here, pushed into the node's CMAP map.

Corosync's votequorum writes these keys into icmap directly; in coroproc the CMAP engine
is another process, so values are recorded here (the latest value per key — a bounded
table, one slot per key name) and pushed by a timer:
* in simbus (the cmap engine is a sibling in the same process) straight into its store;
* in a daemon through the cmap IPC service with a short timeout per request; a failure
  (cmap not admitting clients yet, restarting, busy) keeps the keys pending and retries
  with backoff — never blocking the engine for longer than one timeout per turn;
* with no cmap engine on the node, not at all.
corosync-quorumtool needs runtime.votequorum.this_node_id to show anything, so it matters
that the push happens soon after the first sync.
"""
from __future__ import annotations

from coroproc.engineprocs.api import SERVICE_CMAP
from coroproc.ipc import cmap_structs as C
from coroproc.ipc.client import IpcClient
from coroproc.ipc.wire import IpcProtocolError

TYPES = {"u8": C.UINT8, "u32": C.UINT32}
KEYS_MAX = 32                    # the key names votequorum publishes (bounded by design)
REQUEST_TIMEOUT_MS = 500
RETRY_FIRST_MS = 200
RETRY_MAX_MS = 5000


class RuntimeKeys:
    def __init__(self, ctx):
        self.ctx = ctx
        self.values: dict[str, tuple[str, int]] = {}
        self.pending: set[str] = set()
        self.client = None
        self.timer = None
        self.retry_ms = RETRY_FIRST_MS
        self.stats = {"pushed": 0, "push_failures": 0}

    def set(self, key: str, type_name: str, value: int, force: bool = False) -> None:
        """force: push even when this table already holds the value (a key a client may
        have changed since, quorum.cancel_wait_for_all)."""
        if key not in self.values and len(self.values) >= KEYS_MAX:
            raise RuntimeError(f"runtime key table full ({KEYS_MAX}): {key}")
        if self.values.get(key) == (type_name, value) and key not in self.pending \
                and not force:
            return
        self.values[key] = (type_name, value)
        self.pending.add(key)
        self._schedule(0)

    def sync_completed(self) -> None:
        """The node admits clients now: push what waits at once, not at the next retry of
        a backoff that may have grown while it did not."""
        if self.pending:
            self.retry_ms = RETRY_FIRST_MS
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self._schedule(0)

    def republish(self) -> None:
        """After a restart of this engine: push everything again."""
        self.pending = set(self.values)
        self._schedule(0)

    def _schedule(self, delay_ms: float) -> None:
        if self.timer is None and self.pending and self._target() is not None:
            self.timer = self.ctx.timer_add(delay_ms, self._flush)

    def _target(self):
        cmap = self.ctx.sibling(SERVICE_CMAP)
        if cmap is not None:
            return cmap
        if "cmap" in self.ctx.node_engines.values():
            return "ipc"
        return None

    def _flush(self) -> None:
        self.timer = None
        if self.ctx.replaying:
            self._schedule(RETRY_FIRST_MS)
            return
        target = self._target()
        try:
            for key in sorted(self.pending):
                type_name, value = self.values[key]
                if target == "ipc":
                    self._push_ipc(key, TYPES[type_name], value)
                else:
                    target.store.set_value(key, TYPES[type_name], value)
                self.pending.discard(key)
                self.stats["pushed"] += 1
            self.retry_ms = RETRY_FIRST_MS
        except (OSError, ValueError, IpcProtocolError) as exc:
            self.stats["push_failures"] += 1
            self.close()
            if self.retry_ms >= RETRY_MAX_MS or self.stats["push_failures"] == 1:
                self.ctx.debug(f"cannot publish runtime.votequorum keys to cmap yet: {exc}")
            self._schedule(self.retry_ms)
            self.retry_ms = min(self.retry_ms * 2, RETRY_MAX_MS)

    def _push_ipc(self, key: str, value_type: int, value: int) -> None:
        if not self.ctx.first_sync_done:
            raise ConnectionRefusedError("the node has not completed its first sync")
        if self.client is None:
            self.client = IpcClient("cmap", suffix=self.ctx.service_suffix,
                                    timeout_ms=REQUEST_TIMEOUT_MS)
        _rid, error, _body = self.client.request(
            C.REQ_SET, C.pack_req_set(key, value_type, C.encode_value(value_type, value)),
            timeout_ms=REQUEST_TIMEOUT_MS)
        if error != 1:
            raise ValueError(f"cmap set {key}: cs_error {error}")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
