"""Finding the RDMA device, port and GID a link uses, with errors an operator can act on.

list_devices() asks libibverbs (through pyverbs) and returns plain dicts; pick_device()
and pick_gid() are pure functions over those dicts, so every choice and every error
message is tested without hardware. The shape of list_devices():

    [{"name": "mlx5_0", "ports": [{"port": 1, "state": "ACTIVE", "active_mtu": 4096,
      "link_layer": "Ethernet", "lid": 0,
      "gids": [{"index": 3, "gid": "0000:...:ffff:0a00:0001", "type": "RoCE v2"}]}]}]
"""
from __future__ import annotations

from coroproc.netproc.rdma.errors import (DeviceNotFound, NoGidForAddress, NoRdmaDevice,
                                          PortNotActive, RdmaError)
from coroproc.netproc.rdma.loader import load_pyverbs
from coroproc.netproc.rdma.wire import gid_from_text, gid_of_ip

MTU_ENUM_BYTES = {1: 256, 2: 512, 3: 1024, 4: 2048, 5: 4096}     # enum ibv_mtu
PORT_STATES = {0: "NOP", 1: "DOWN", 2: "INIT", 3: "ARMED", 4: "ACTIVE", 5: "ACTIVE_DEFER"}
LINK_LAYERS = {0: "InfiniBand", 1: "InfiniBand", 2: "Ethernet"}  # 0 = unspecified: IB
GID_TYPES = {0: "IB/RoCE v1", 1: "RoCE v2"}                       # ibv_gid_type_sysfs
NO_DEVICE = ("no RDMA device found (ibv_get_device_list returned none; is the rdma kernel "
             "module / rdma_rxe loaded?)")


def _device_names(pv) -> list[str]:
    import pyverbs.device as dev
    try:
        found = dev.get_device_list()
    except pv.pyverbs_error.PyverbsRDMAError:
        # libibverbs returns NULL (not an empty list) when the kernel side is absent.
        return []
    return [d.name.decode() if isinstance(d.name, bytes) else str(d.name) for d in found]


def _port_info(ctx, port: int) -> dict:
    attr = ctx.query_port(port)
    link_layer = LINK_LAYERS.get(int(attr.link_layer), str(int(attr.link_layer)))
    gids = []
    for index in range(int(attr.gid_tbl_len)):
        try:
            text = ctx.query_gid(port, index).gid
        except Exception:      # unpopulated RoCE entries fail with EINVAL/ENODATA: skip
            continue
        if gid_from_text(text) == bytes(16):
            continue
        try:
            gid_type = GID_TYPES.get(int(ctx.query_gid_type(port, index)), "unknown")
        except Exception:
            gid_type = "unknown"
        gids.append({"index": index, "gid": text, "type": gid_type})
    return {"port": port, "state": PORT_STATES.get(int(attr.state), str(int(attr.state))),
            "active_mtu": MTU_ENUM_BYTES.get(int(attr.active_mtu), 256),
            "link_layer": link_layer, "lid": int(attr.lid), "gids": gids}


def list_devices() -> list[dict]:
    """Every RDMA device with its ports; [] when there is none. RdmaUnavailable without pyverbs."""
    pv = load_pyverbs()
    import pyverbs.device as dev
    devices = []
    for name in _device_names(pv):
        with dev.Context(name=name) as ctx:
            ports = int(ctx.query_device().phys_port_cnt)
            devices.append({"name": name,
                            "ports": [_port_info(ctx, p) for p in range(1, ports + 1)]})
    return devices


def _describe(devices: list[dict]) -> str:
    return ", ".join(f"{d['name']} (ports " + ", ".join(
        f"{p['port']}: {p['state']}" for p in d["ports"]) + ")" for d in devices)


def pick_device(name: str | None, port: int | None,
                devices: list[dict] | None = None) -> tuple[dict, dict]:
    """(device, port) dicts for the configured name/port; None picks the first ACTIVE one.

    `devices` defaults to list_devices(); tests pass a made-up list."""
    if devices is None:
        devices = list_devices()
    if not devices:
        raise NoRdmaDevice(NO_DEVICE)
    if name is not None:
        chosen = [d for d in devices if d["name"] == name]
        if not chosen:
            raise DeviceNotFound(f"RDMA device {name!r} not found; devices present: "
                                 f"{_describe(devices)}")
    else:
        chosen = devices
    for d in chosen:
        for p in d["ports"]:
            if port is not None and p["port"] != port:
                continue
            if p["state"] == "ACTIVE":
                return d, p
            if port is not None:
                raise PortNotActive(
                    f"RDMA device {d['name']} port {port} is {p['state']}, not ACTIVE (check "
                    f"the cable/link, the subnet manager (IB) or that the netdev is up (RoCE))")
    if port is not None:
        where = f"device {name}" if name else "any device"
        raise PortNotActive(f"RDMA port {port} does not exist on {where}; present: "
                            f"{_describe(chosen)}")
    raise PortNotActive(f"no ACTIVE RDMA port on {name or 'any device'}: "
                        f"{_describe(chosen)}")


def pick_gid(device: dict, port: dict, local_ip: str, gid_index: int | None) -> dict:
    """The GID entry the link sends from.

    A configured gid_index must exist. Otherwise on Ethernet (RoCE) the entry whose GID is
    local_ip's (IPv4-mapped or IPv6), RoCE v2 preferred (routable, the common default);
    on InfiniBand the port GID at index 0 (IB GIDs are not derived from IP addresses)."""
    where = f"RDMA device {device['name']} port {port['port']}"
    if gid_index is not None:
        for g in port["gids"]:
            if g["index"] == gid_index:
                return g
        raise NoGidForAddress(f"{where} has no GID at index {gid_index}; populated: "
                              f"{[g['index'] for g in port['gids']]}")
    if port["link_layer"] != "Ethernet":
        for g in port["gids"]:
            if g["index"] == 0:
                return g
        raise NoGidForAddress(f"{where} (InfiniBand) has no GID at index 0")
    want = gid_of_ip(local_ip)
    matches = [g for g in port["gids"] if gid_from_text(g["gid"]) == want]
    if not matches:
        raise NoGidForAddress(
            f"{where} has no GID for the configured IP {local_ip} (GIDs: "
            f"{[g['gid'] + ' ' + g['type'] for g in port['gids']] or 'none'}); is {local_ip} "
            f"configured on the netdev of this port, or set gid_index explicitly")
    matches.sort(key=lambda g: (g["type"] != "RoCE v2", g["index"]))
    return matches[0]


__all__ = ["list_devices", "pick_device", "pick_gid", "RdmaError", "MTU_ENUM_BYTES"]
