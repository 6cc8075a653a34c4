"""deploy/examples/*.conf: each is what its name says (two_node, three nodes, five with
auto_tie_breaker, two knet links with crypto), coroproc's checker accepts it (the knet one
with an authkey it can read, as Corosync's -t reads the key too), and the real Corosync
3.1.7 accepts every one with `corosync -t` inside a network namespace that owns node 1's
addresses."""
from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest
from netns.harness import _NETNS_LOCK_PATH
from netns.harness import unavailable_reason as netns_unavailable

from coroproc.config.parser import parse_text

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "examples")
FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.conf")))


def _keys(name: str) -> dict[str, str]:
    with open(os.path.join(EXAMPLES, name)) as f:
        return {k: str(e.value) for k, e in parse_text(f.read(), name).keys.items()}


def _nodes(keys: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for k, v in keys.items():
        m = re.fullmatch(r"nodelist\.node\.(\d+)\.(\w+)", k)
        if m:
            out.setdefault(m.group(1), {})[m.group(2)] = v
    return out


def test_the_four_examples_are_there():
    assert FILES == ["corosync-2node.conf", "corosync-3node.conf", "corosync-5node-atb.conf",
                     "corosync-multilink.conf"]


def test_each_example_is_what_its_name_says():
    two = _keys("corosync-2node.conf")
    assert len(_nodes(two)) == 2 and two["quorum.two_node"] == "1"
    assert len(_nodes(_keys("corosync-3node.conf"))) == 3
    five = _keys("corosync-5node-atb.conf")
    assert len(_nodes(five)) == 5 and five["quorum.auto_tie_breaker"] == "1"
    multi = _keys("corosync-multilink.conf")
    assert all({"ring0_addr", "ring1_addr"} <= set(n) for n in _nodes(multi).values())
    assert multi["totem.transport"] == "knet"


def _with_keyfile(text: str, tmp_path) -> str:
    """A crypto example reads /etc/corosync/authkey; point it at a fresh 0400 key."""
    if "crypto_cipher: aes256" not in text:
        return text
    key = tmp_path / "authkey"
    key.write_bytes(os.urandom(256))
    key.chmod(0o400)
    return text.replace("\tcrypto_hash: sha256\n",
                        f"\tcrypto_hash: sha256\n\tkeyfile: {key}\n")


@pytest.mark.parametrize("name", FILES)
def test_coroproc_checks_each_example(name, tmp_path):
    with open(os.path.join(EXAMPLES, name)) as f:
        conf = tmp_path / name
        conf.write_text(_with_keyfile(f.read(), tmp_path))
    out = subprocess.run([sys.executable, "-m", "coroproc", "-t", "-c", str(conf),
                          "--nodeid", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Configuration is OK" in out.stdout and "warning" not in out.stdout, out.stdout


def _netns_reason() -> str | None:
    if shutil.which("corosync") is None:
        return "Corosync is not installed"
    return netns_unavailable()


@pytest.fixture
def node1_netns():
    """A namespace whose loopback holds the addresses given to add() (no dummy module
    on these kernels; lo takes any address)."""
    reason = _netns_reason()
    if reason:
        pytest.skip(reason)
    name = f"cpdep-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with open(_NETNS_LOCK_PATH, "a") as lock:  # the harness's rule: first `netns add`s race
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)

        def add(addr: str) -> None:
            subprocess.run(["ip", "-n", name, "addr", "add", f"{addr}/32", "dev", "lo"],
                           check=True)
        yield name, add
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=30)


@pytest.mark.parametrize("name", FILES)
def test_corosync_3_1_accepts_each_example(name, node1_netns, tmp_path):
    netns, add = node1_netns
    keys = _keys(name)
    node1 = next(n for n in _nodes(keys).values() if n["nodeid"] == "1")
    for link in ("ring0_addr", "ring1_addr"):
        if link in node1:
            add(node1[link])
    with open(os.path.join(EXAMPLES, name)) as f:
        text = f.read().replace("/var/log/cluster/", f"{tmp_path}/")
    text = _with_keyfile(text, tmp_path)
    conf = tmp_path / name
    conf.write_text(text)
    out = subprocess.run(["ip", "netns", "exec", netns, "corosync", "-t", "-c", str(conf)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
