"""coroproc-keygen (real files, real random source) and coroproc-cfgtool's formatting and
option handling (no daemon needed; the netns tests hold the output to Debian's tool)."""
import io
import json
import os
import stat
import subprocess
import sys

from coroproc.ipc.cfg_structs import MAX_LINKS, LinkStatus, NodeStatus
from coroproc.tools import cfgtool

PY = [sys.executable, "-m"]


def keygen(*args):
    return subprocess.run([*PY, "coroproc.tools.keygen", *args], check=False, capture_output=True, text=True)


def test_keygen_writes_a_0400_key_of_the_asked_size(tmp_path):
    key = tmp_path / "authkey"
    r = keygen("-k", str(key), "-s", "128")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ("Corosync Cluster Engine Authentication key generator.\n"
                        "Gathering 1024 bits for key from /dev/urandom.\n"
                        f"Writing corosync key to {key}.\n")
    assert key.stat().st_size == 128 and stat.S_IMODE(key.stat().st_mode) == 0o400
    r = keygen("-k", str(tmp_path / "k2"), "--json")
    assert json.loads(r.stdout) == {"keyfile": str(tmp_path / "k2"), "key_bytes": 256,
                                    "random_source": "/dev/urandom", "mode": "0400"}
    assert (tmp_path / "k2").stat().st_size == 256


def test_keygen_refuses_bad_sizes_and_sources(tmp_path):
    for size in ("127", "4097", "12x"):
        r = keygen("-k", str(tmp_path / "k"), "-s", size)
        assert r.returncode == 1
        assert "Unsupported key size (supported <128,4096>)" in r.stderr
    assert not (tmp_path / "k").exists()
    r = keygen("-k", str(tmp_path / "k"), "-r", str(tmp_path / "missing"))
    assert r.returncode == 1 and "Failed to open random source" in r.stderr
    short = tmp_path / "short"
    short.write_bytes(os.urandom(10))
    r = keygen("-k", str(tmp_path / "k"), "-r", str(short), "-s", "128")
    assert r.returncode == 1 and "ended after 10 of 128 bytes" in r.stderr
    r = keygen("-k", str(tmp_path / "nodir" / "k"))
    assert r.returncode == 2 and "Could not create" in r.stderr
    r = keygen("-l", "-k", str(tmp_path / "k3"), "-s", "4096")      # -l: accepted, ignored
    assert r.returncode == 0 and (tmp_path / "k3").stat().st_size == 4096


def facts(statuses, local=1, transport="udpu", errors=None):
    return {"transport": transport, "knet": transport not in ("udpu", "udp"), "local": local,
            "nodeids": sorted(statuses), "link_transport": [""] * MAX_LINKS,
            "status": statuses, "errors": errors or {}}


def node(nodeid, reachable, addr, enabled=True):
    links = [LinkStatus()] * MAX_LINKS
    links[0] = LinkStatus(enabled, reachable, False, 1410, addr, "")
    return NodeStatus(nodeid, reachable, links=tuple(links))


def test_link_and_node_views_follow_the_c_tool():
    f = facts({1: node(1, True, "10.0.0.1"), 2: node(2, False, "10.0.0.2"),
               10: node(10, True, "10.0.0.10")})
    text, err = cfgtool.format_links(f, brief=False)
    assert err == ""
    assert text == ("Local node ID 1, transport udpu\nLINK ID 0 \n\taddr\t= 10.0.0.10\n"
                    "\tstatus:\n\t\tnodeid:          1:\tlocalhost\n"
                    "\t\tnodeid:          2:\tdisconnected\n"
                    "\t\tnodeid:         10:\tconnected\n")
    assert cfgtool.format_links(f, brief=True)[0].endswith("\tstatus\t= n13\n")
    assert cfgtool.format_nodes(f) == ("Local node ID 1, transport udpu\n"
                                       "nodeid: 10 reachable\n"
                                       "   LINK: 0  (10.0.0.10) enabled connected mtu: 1410\n\n")
    # a node whose status call failed: a stderr line, and zeros in its column
    g = facts({1: node(1, True, "a"), 2: None, 3: node(3, True, "c")}, errors={2: 6})
    text, err = cfgtool.format_links(g, brief=True)
    assert err == "Could not get the node status for nodeid 2, the error is: 6\n"
    assert text.endswith("\tstatus\t= n03\n")
    doc = cfgtool.facts_json(g)
    assert doc["nodes"][1] == {"nodeid": 2, "error": "CS_ERR_TRY_AGAIN"}
    assert doc["nodes"][2]["links"][0]["src_ipaddr"] == "c"


def test_options_usage_and_bad_nodeids():
    out = io.StringIO()
    assert cfgtool.run([], out) == 0 and out.getvalue() == cfgtool.USAGE
    r = subprocess.run([*PY, "coroproc.tools.cfgtool", "-k", "0"], check=False, capture_output=True,
                       text=True)
    assert (r.returncode, r.stderr) == (1, "The nodeid was not valid, try a positive number\n")
    r = subprocess.run([*PY, "coroproc.tools.cfgtool", "-Z"], check=False, capture_output=True, text=True)
    assert r.returncode == 1
    # no daemon with this suffix: the C tool's message and exit code
    r = subprocess.run([*PY, "coroproc.tools.cfgtool", "-a", "1", "--suffix",
                        f".none{os.getpid()}"], check=False, capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (1, ("Could not initialize corosync configuration API "
                                            "error 2\n"))
