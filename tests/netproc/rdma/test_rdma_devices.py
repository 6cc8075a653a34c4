"""devices.py: choosing device/port/GID, every error path; and the real libibverbs here."""
import pytest
from rdma_env import DEVICES, PYVERBS_OK

from coroproc.netproc.rdma import (DeviceNotFound, NoGidForAddress, NoRdmaDevice,
                                   PortNotActive, RdmaSpec, list_devices, pick_device,
                                   pick_gid)
from coroproc.netproc.rdma.wire import gid_of_ip, gid_text

ROCE_GIDS = [{"index": 0, "gid": "fe80:0000:0000:0000:0000:00ff:fe00:0001", "type": "IB/RoCE v1"},
             {"index": 2, "gid": gid_text(gid_of_ip("10.0.0.1")), "type": "IB/RoCE v1"},
             {"index": 3, "gid": gid_text(gid_of_ip("10.0.0.1")), "type": "RoCE v2"}]
DEVS = [
    {"name": "mlx5_0", "ports": [{"port": 1, "state": "DOWN", "active_mtu": 1024,
                                  "link_layer": "Ethernet", "lid": 0, "gids": []}]},
    {"name": "rxe0", "ports": [{"port": 1, "state": "ACTIVE", "active_mtu": 1024,
                                "link_layer": "Ethernet", "lid": 0, "gids": ROCE_GIDS}]},
    {"name": "mlx4_0", "ports": [
        {"port": 1, "state": "INIT", "active_mtu": 4096, "link_layer": "InfiniBand",
         "lid": 0, "gids": []},
        {"port": 2, "state": "ACTIVE", "active_mtu": 4096, "link_layer": "InfiniBand",
         "lid": 7, "gids": [{"index": 0, "gid": "fe80:0000:0000:0000:0002:c903:0000:0001",
                             "type": "IB/RoCE v1"}]}]},
]


def test_default_is_the_first_active_port():
    dev, port = pick_device(None, None, DEVS)
    assert (dev["name"], port["port"]) == ("rxe0", 1)
    dev, port = pick_device("mlx4_0", None, DEVS)
    assert (dev["name"], port["port"]) == ("mlx4_0", 2)


def test_errors_say_what_is_there():
    with pytest.raises(NoRdmaDevice, match=r"ibv_get_device_list returned none; is the rdma "
                       r"kernel module / rdma_rxe loaded\?"):
        pick_device(None, None, [])
    with pytest.raises(DeviceNotFound, match=r"'mlx5_9' not found; devices present: mlx5_0 "
                       r"\(ports 1: DOWN\), rxe0"):
        pick_device("mlx5_9", None, DEVS)
    with pytest.raises(PortNotActive, match="mlx4_0 port 1 is INIT, not ACTIVE"):
        pick_device("mlx4_0", 1, DEVS)
    with pytest.raises(PortNotActive, match="port 3 does not exist on device mlx4_0"):
        pick_device("mlx4_0", 3, DEVS)
    with pytest.raises(PortNotActive, match="no ACTIVE RDMA port on mlx5_0"):
        pick_device("mlx5_0", None, DEVS)


def test_gid_for_the_ip_prefers_roce_v2():
    dev, port = pick_device("rxe0", None, DEVS)
    assert pick_gid(dev, port, "10.0.0.1", None)["index"] == 3
    assert pick_gid(dev, port, "10.0.0.1", 2)["index"] == 2
    with pytest.raises(NoGidForAddress, match="no GID for the configured IP 10.0.0.9"):
        pick_gid(dev, port, "10.0.0.9", None)
    with pytest.raises(NoGidForAddress, match=r"no GID at index 5; populated: \[0, 2, 3\]"):
        pick_gid(dev, port, "10.0.0.1", 5)


def test_infiniband_uses_gid_index_0():
    dev, port = pick_device("mlx4_0", 2, DEVS)
    assert pick_gid(dev, port, "192.168.0.1", None)["index"] == 0


@pytest.mark.skipif(not PYVERBS_OK, reason="pyverbs does not load here (see test_loader for "
                    "the not-installed message)")
@pytest.mark.skipif(bool(DEVICES), reason="this host has RDMA devices; the no-device path "
                    "is covered by the made-up lists above")
def test_real_libibverbs_without_device_gives_the_clear_error():
    """Runs against the real libibverbs/pyverbs: no device -> NoRdmaDevice, also from the
    carrier's constructor (the first thing the supervisor would report)."""
    from coroproc.netproc.rdma.carrier import RdmaCarrier
    assert list_devices() == []
    with pytest.raises(NoRdmaDevice, match="no RDMA device found"):
        pick_device(None, None)
    spec = RdmaSpec(linknumber=0, local_nodeid=1, local_ip="127.0.0.1", side_port=5405,
                    peers={1: ("127.0.0.1", 5405)})
    with pytest.raises(NoRdmaDevice, match="is the rdma kernel module / rdma_rxe loaded"):
        RdmaCarrier(spec)
