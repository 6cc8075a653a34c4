"""deploy/ansible: the playbook passes `ansible-playbook --syntax-check`, and the role's
configuration tasks, run for real on an inventory of local hosts, write a corosync.conf
per node (checked by `coroproc -t` inside the role) and give every node the same authkey.

ansible-core is not a project dependency: it comes from $PATH, or is pip-installed into a
throw-away venv under pytest's tmp dir (skipped, with the reason, when that fails)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from coroproc.config.loader import load

ANSIBLE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "ansible")


@pytest.fixture(scope="module")
def ansible_bin(tmp_path_factory) -> str:
    found = shutil.which("ansible-playbook")
    if found:
        return os.path.dirname(found)
    venv = tmp_path_factory.mktemp("ansible") / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--only-binary=:all:",
                        "ansible-core"], check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        out = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot pip-install ansible-core into a temporary venv: "
                    f"{out.decode(errors='replace')[-300:]}")
    return str(venv / "bin")


def _run(ansible_bin: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ANSIBLE_DIR, "roles"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(cwd / "ansible-tmp"),
               ANSIBLE_REMOTE_TEMP=str(cwd / "ansible-remote-tmp"))
    return subprocess.run([os.path.join(ansible_bin, "ansible-playbook"), *args],
                          capture_output=True, text=True, timeout=600, cwd=str(cwd), env=env)


def test_playbook_syntax(ansible_bin, tmp_path):
    out = _run(ansible_bin, ["-i", os.path.join(ANSIBLE_DIR, "inventory.example.ini"),
                             os.path.join(ANSIBLE_DIR, "site.yml"), "--syntax-check"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def _render(ansible_bin: str, tmp_path, n: int, extra: str = "",
            nodeids: list[int] | None = None) -> subprocess.CompletedProcess:
    ids = nodeids or list(range(1, n + 1))
    hosts = "\n".join(
        f"h{i} ansible_connection=local coroproc_nodeid={ids[i - 1]} "
        f"coroproc_ring0_addr=10.9.0.{i} "
        f"coroproc_conf_path={tmp_path}/h{i}/corosync.conf "
        f"coroproc_authkey_path={tmp_path}/h{i}/authkey" for i in range(1, n + 1))
    (tmp_path / "inventory.ini").write_text(f"""[coroproc_nodes]
{hosts}
[coroproc_nodes:vars]
coroproc_cluster_name=ans{os.getpid()}
coroproc_logfile={tmp_path}/log/corosync.log
coroproc_bin_dir={os.path.dirname(sys.executable)}
coroproc_authkey_local={tmp_path}/authkey
ansible_python_interpreter={sys.executable}
{extra}
""")
    (tmp_path / "config.yml").write_text("""- hosts: coroproc_nodes
  gather_facts: false
  tasks:
    - ansible.builtin.import_role:
        name: coroproc
        tasks_from: config
""")
    return _run(ansible_bin, ["-i", "inventory.ini", "config.yml"], tmp_path)


def test_role_writes_a_checked_config_per_node_and_one_shared_key(ansible_bin, tmp_path):
    out = _render(ansible_bin, tmp_path, 3,
                  "coroproc_auto_tie_breaker=true\ncoroproc_debug_subsys=[\"QUORUM\"]")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    key = (tmp_path / "authkey").read_bytes()
    assert len(key) == 256
    for i in (1, 2, 3):
        node_key = tmp_path / f"h{i}" / "authkey"
        assert node_key.read_bytes() == key and (node_key.stat().st_mode & 0o777) == 0o400
        cfg, warnings = load(str(tmp_path / f"h{i}" / "corosync.conf"), i)
        assert warnings == []
        assert [n.nodeid for n in cfg.nodes] == [1, 2, 3] and cfg.local_nodeid == i
        assert cfg.quorum.auto_tie_breaker and not cfg.quorum.two_node
        assert cfg.logging.subsys["QUORUM"].debug == "on"


def test_role_switches_two_node_on_for_two_hosts(ansible_bin, tmp_path):
    out = _render(ansible_bin, tmp_path, 2)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    cfg, _ = load(str(tmp_path / "h1" / "corosync.conf"), 1)
    assert cfg.quorum.two_node and cfg.quorum.wait_for_all


def test_role_refuses_duplicate_node_ids(ansible_bin, tmp_path):
    out = _render(ansible_bin, tmp_path, 2, nodeids=[1, 1])
    assert out.returncode != 0 and "share a coroproc_nodeid" in out.stdout
    assert not (tmp_path / "h1" / "corosync.conf").exists()
