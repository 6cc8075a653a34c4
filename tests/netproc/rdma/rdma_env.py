"""What this host offers for RDMA tests: can pyverbs load, and is there a device."""
from coroproc.netproc.rdma.errors import RdmaUnavailable


def probe() -> tuple[bool, list[dict]]:
    """(pyverbs loads, list_devices()) — ([] when pyverbs does not load)."""
    from coroproc.netproc.rdma import list_devices, load_pyverbs
    try:
        load_pyverbs()
    except RdmaUnavailable:
        return False, []
    return True, list_devices()


PYVERBS_OK, DEVICES = probe()
ACTIVE = [d for d in DEVICES if any(p["state"] == "ACTIVE" for p in d["ports"])]
NO_DEVICE_REASON = ("no RDMA device on this machine (ibv_get_device_list is empty); run on a "
                    "host with RoCE/IB or rdma_rxe")
