"""The client library's error model: every failed call raises CsError.

This file only re-exports coroproc.ipc.cserror so applications import one place:
`CsError` (.code, .name such as "CS_ERR_TRY_AGAIN", .call), the CS_* numbers,
`name_of()` and `strerror()` (Corosync's cs_strerror text).
"""

from coroproc.ipc.cserror import *  # noqa: F403 — the CS_* numbers are the API
from coroproc.ipc.cserror import CsError, name_of, strerror  # noqa: F401 — named re-exports
