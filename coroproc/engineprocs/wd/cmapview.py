"""The WD and MON engines' window on the node's cmap: a short-timeout CMAP client.

Why a client: Corosync's wd/mon read and write icmap in-process; here CMAP is another
engine process, so these engines speak to it over IPC (coroproc.client.cmap, with the
node's service suffix) like any library user. Every call is bounded by `timeout_ms`
because an engine's loop must not hang on a peer; a call that fails or times out drops
the connection (a late reply would otherwise answer the next request) and the next call
reconnects. Callers treat None / False as "cmap not reachable now" and retry on their
next timer. CMAP admits clients only after the node's first sync, so `usable` says
whether it is worth trying.
"""
from __future__ import annotations

import time

from coroproc.client.cmap import STRING, UINT32, UINT64, Cmap
from coroproc.ipc.cserror import (
    CS_ERR_INVALID_PARAM,
    CS_ERR_NAME_TOO_LONG,
    CS_ERR_NOT_EXIST,
    CS_ERR_TOO_BIG,
    CS_ERR_TRY_AGAIN,
    CsError,
)

REQUEST_TIMEOUT_MS = 500        # one CMAP round trip is ~0.1 ms; 500 ms means "stuck"
RECONNECT_BACKOFF_S = 1.0       # between failed connection attempts


class _TimedIpc:
    """IpcClient proxy whose requests carry a timeout (ServiceHandle does not pass one)."""

    def __init__(self, ipc, timeout_ms: int):
        assert timeout_ms > 0
        self._ipc = ipc
        self._timeout_ms = timeout_ms

    def request(self, msg_id, payload=b"", timeout_ms=-1):
        return self._ipc.request(msg_id, payload, self._timeout_ms)

    def __getattr__(self, name):
        return getattr(self._ipc, name)


class CmapView:
    def __init__(self, suffix: str, log, timeout_ms: int = REQUEST_TIMEOUT_MS,
                 clock_s=time.monotonic):
        self.suffix = suffix
        self.log = log                   # EngineContext-like: .warning/.debug
        self.timeout_ms = timeout_ms
        self._clock_s = clock_s
        self._cmap: Cmap | None = None
        self._next_try_s = 0.0
        self.failures = 0                # calls that failed for transport reasons
        self.connects = 0

    # ---- connection ---------------------------------------------------------------------
    def _handle(self) -> Cmap | None:
        if self._cmap is not None:
            return self._cmap
        now = self._clock_s()
        if now < self._next_try_s:
            return None
        self._next_try_s = now + RECONNECT_BACKOFF_S
        try:
            cmap = Cmap(suffix=self.suffix)
        except (CsError, OSError) as exc:
            self.log.debug(f"cmap{self.suffix} not reachable yet: {exc}")
            return None
        cmap._ipc = _TimedIpc(cmap._ipc, self.timeout_ms)
        self._cmap = cmap
        self.connects += 1
        return cmap

    def _drop(self, why) -> None:
        self.failures += 1
        self.log.warning(f"cmap{self.suffix} call failed ({why}); reconnecting")
        if self._cmap is not None:
            self._cmap.close()
        self._cmap = None

    def close(self) -> None:
        if self._cmap is not None:
            self._cmap.close()
            self._cmap = None

    @property
    def connected(self) -> bool:
        return self._cmap is not None

    def _call(self, fn, *args, missing=None):
        """fn(cmap, *args); `missing` when the key does not exist; None on transport
        trouble (connection dropped); raises nothing."""
        cmap = self._handle()
        if cmap is None:
            return None
        try:
            return fn(cmap, *args)
        except CsError as exc:
            if exc.code == CS_ERR_NOT_EXIST:
                return missing
            if exc.code == CS_ERR_TRY_AGAIN:
                return None        # busy, not broken: keep the connection, ask again later
            if exc.code in (CS_ERR_INVALID_PARAM, CS_ERR_NAME_TOO_LONG, CS_ERR_TOO_BIG):
                self.log.debug(f"cmap: {exc}")
                return missing     # about this key, not the connection
            self._drop(exc)
        except (OSError, ValueError) as exc:
            self._drop(exc)
        return None

    # ---- reads ------------------------------------------------------------------------------
    def get(self, key: str, default=None):
        """The key's Python value (int/float/str/bytes), `default` if absent or cmap is
        unreachable. Use `probe` to tell those apart."""
        item = self._call(lambda c: c.get(key), missing=False)
        if not item:
            return default
        return item[1]

    def probe(self, key: str):
        """(True, value) | (False, None) for a missing key | None if cmap is unreachable."""
        item = self._call(lambda c: c.get(key), missing=False)
        if item is None:
            return None
        if item is False:
            return (False, None)
        return (True, item[1])

    def keys(self, prefix: str):
        """Sorted key names under prefix, or None if cmap is unreachable."""
        return self._call(lambda c: [e.key for e in c.iter(prefix)], missing=[])

    # ---- writes -----------------------------------------------------------------------------
    def set(self, key: str, value, value_type: int) -> bool:
        return self._call(lambda c: c.set(key, value, value_type) or True,
                          missing=False) is True

    def set_string(self, key: str, value: str) -> bool:
        return self.set(key, value, STRING)

    def set_uint32(self, key: str, value: int) -> bool:
        return self.set(key, value, UINT32)

    def set_uint64(self, key: str, value: int) -> bool:
        return self.set(key, value, UINT64)


def as_int(value):
    """A cmap value that should be an integer (config files store strings): int or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        try:
            return int(text.strip().rstrip("\0"), 10)
        except ValueError:
            return None
    return None


def as_str(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip("\0")
    if value is None:
        return None
    return str(value)
