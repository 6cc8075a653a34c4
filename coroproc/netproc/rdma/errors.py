"""The exceptions of the RDMA carrier: each says what was wrong, where, and what to do.

All derive from RdmaError (a RuntimeError) except RdmaSpecError, which is a ValueError like
the UDP link's LinkSpecError: a bad spec is a configuration mistake, not a device fault.
The supervisor can catch RdmaError to report "link N cannot start" with the message as is.
"""
from __future__ import annotations


class RdmaError(RuntimeError):
    """Base of every device/library problem the RDMA carrier reports."""


class RdmaUnavailable(RdmaError):
    """pyverbs (rdma-core's Python binding) cannot be imported into this Python."""


class NoRdmaDevice(RdmaError):
    """libibverbs found no RDMA device at all."""


class DeviceNotFound(RdmaError):
    """The configured device name is not among the devices present."""


class PortNotActive(RdmaError):
    """The chosen port exists but is not ACTIVE (cable, subnet manager, netdev down)."""


class NoGidForAddress(RdmaError):
    """No GID table entry of the port matches the configured local IP (RoCE)."""


class VerbsCallFailed(RdmaError):
    """A verbs call (create QP, register memory, ...) failed; the message names which."""


class RdmaSpecError(ValueError):
    """An RdmaSpec field is wrong; the message names the link, the field and what is allowed."""
