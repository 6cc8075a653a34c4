"""coroproc.netproc.rdma — the RDMA verbs carrier of a link (`knet_transport: rdma`).

Files, one concern each (docs/rdma.md has the design and what has been run):
  loader.py      importing pyverbs explicitly (venv vs. Debian's dist-packages)
  devices.py     list_devices / pick_device / pick_gid and their operator-facing errors
  spec.py        RdmaSpec and its validation
  wire.py        GRH area, fragment header, fragmenting
  reassembly.py  bounded reassembly table
  pools.py       registered arena, receive and send slot accounting
  resolve.py     HELLO side channel: peer nodeid -> gid/qpn/qkey/lid/mtu
  verbs.py       the pyverbs objects (context, PD, MR, CQs, channel, UD QP, AHs)
  carrier.py     RdmaCarrier, the Carrier implementation
  counters.py    counter names

Importing this package does not import pyverbs; that happens when a device is touched.
"""
from coroproc.netproc.rdma.devices import list_devices, pick_device, pick_gid
from coroproc.netproc.rdma.errors import (DeviceNotFound, NoGidForAddress, NoRdmaDevice,
                                          PortNotActive, RdmaError, RdmaSpecError,
                                          RdmaUnavailable, VerbsCallFailed)
from coroproc.netproc.rdma.loader import load_pyverbs
from coroproc.netproc.rdma.spec import RdmaSpec


def __getattr__(name):
    # RdmaCarrier lazily: keeps `import coroproc.netproc.rdma` cheap for the config checker.
    if name == "RdmaCarrier":
        from coroproc.netproc.rdma.carrier import RdmaCarrier
        return RdmaCarrier
    raise AttributeError(name)


__all__ = ["RdmaCarrier", "RdmaSpec", "list_devices", "pick_device", "pick_gid",
           "load_pyverbs", "RdmaError", "RdmaUnavailable", "NoRdmaDevice", "DeviceNotFound",
           "PortNotActive", "NoGidForAddress", "VerbsCallFailed", "RdmaSpecError"]
