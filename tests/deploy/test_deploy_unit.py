"""deploy/coroproc.service, the environment file and the logrotate rule: systemd's own
verifier (`systemd-analyze verify`) where it is installed, and the promises the unit
makes to the daemon, checked against the code that keeps them."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

from coroproc.supervisor import cli

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")
UNIT = os.path.join(DEPLOY, "coroproc.service")
INSTALLED_BIN = "/usr/local/bin/"


def _unit() -> dict[str, dict[str, list[str]]]:
    """Sections → key → values (systemd allows repeated keys, configparser does not)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    with open(UNIT) as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                assert line.endswith("]"), f"coroproc.service:{n}: bad section header"
                section = out.setdefault(line[1:-1], {})
                continue
            assert section is not None and "=" in line, f"coroproc.service:{n}: {line!r}"
            key, value = line.split("=", 1)
            section.setdefault(key.strip(), []).append(value.strip())
    return out


def _verify(unit_text: str, tmp_path) -> subprocess.CompletedProcess:
    """systemd-analyze verify on a copy whose commands point at this checkout's venv
    (the verifier insists that ExecStart= binaries exist and are executable)."""
    bin_dir = os.path.dirname(sys.executable) + "/"
    path = tmp_path / "coroproc.service"
    path.write_text(unit_text.replace(INSTALLED_BIN, bin_dir))
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=60)


needs_verifier = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                    reason="systemd-analyze is not installed")


@needs_verifier
def test_systemd_accepts_the_unit(tmp_path):
    with open(UNIT) as f:
        out = _verify(f.read(), tmp_path)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stdout + out.stderr


@needs_verifier
def test_the_verifier_would_catch_a_broken_unit(tmp_path):
    with open(UNIT) as f:
        text = f.read()
    out = _verify(text.replace("Type=notify", "Type=notifyy"), tmp_path)
    assert "notifyy" in out.stderr, out.stdout + out.stderr  # what the good unit must not show
    out = _verify(text.replace(f"{INSTALLED_BIN}coroproc -f", "/nonexistent/coroproc -f"),
                  tmp_path)
    assert out.returncode != 0 and "not executable" in out.stderr


def test_notify_watchdog_and_stop_promises():
    svc = _unit()["Service"]
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert svc["WatchdogSec"] and svc["KillMode"] == ["mixed"]
    # ExecStop through cfgtool, with "-" so a missing cfgtool falls back to SIGTERM
    assert svc["ExecStop"] == ["-/usr/local/bin/coroproc-cfgtool -H --force"]
    assert "KillSignal" not in svc  # the default SIGTERM is the fallback's clean leave


def test_restart_policy_matches_the_daemons_exit_codes():
    svc = _unit()["Service"]
    assert svc["Restart"] == ["on-failure"]
    no_restart = {int(x) for x in svc["RestartPreventExitStatus"][0].split()}
    from coroproc.config.check import EXIT_LOGCONFIGREAD, EXIT_MAINCONFIGREAD
    assert {cli.EXIT_CONFIG, cli.EXIT_ALREADY_RUNNING, EXIT_LOGCONFIGREAD,
            EXIT_MAINCONFIGREAD} == no_restart
    unit = _unit()["Unit"]
    assert int(unit["StartLimitBurst"][0]) > 1 and int(unit["StartLimitIntervalSec"][0]) > 0
    assert unit["Conflicts"] == ["corosync.service"]


def test_commands_are_the_packages_scripts_and_flags_the_daemon_knows():
    with open(os.path.join(DEPLOY, "..", "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    svc = _unit()["Service"]
    for key in ("ExecStartPre", "ExecStart"):
        (cmd,) = svc[key]
        argv = cmd.split()
        assert argv[0] == INSTALLED_BIN + "coroproc" and "coroproc" in scripts
        flags = [a for a in argv[1:] if a.startswith("-")]
        parsed = cli._parser().parse_args(
            [a.replace("${COROPROC_CONFIG}", "/etc/corosync/corosync.conf")
             for a in argv[1:] if a != "$COROPROC_OPTIONS"])
        assert parsed.config == "/etc/corosync/corosync.conf", flags


def test_environment_file_sets_what_the_unit_reads():
    env = configparser.ConfigParser()
    with open(os.path.join(DEPLOY, "coroproc.default")) as f:
        env.read_string("[env]\n" + f.read())
    assert set(env["env"]) == {"coroproc_options", "coroproc_config"}
    files = _unit()["Service"]["EnvironmentFile"]
    assert files == ["-/etc/default/coroproc", "-/etc/sysconfig/coroproc"]


def test_logrotate_rule_renames_and_asks_for_a_reopen():
    with open(os.path.join(DEPLOY, "logrotate", "coroproc")) as f:
        words = [ln.split() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    flat = [w for ln in words for w in ln]
    assert "copytruncate" not in flat and "delaycompress" in flat and "nocreate" in flat
    post = flat[flat.index("postrotate") + 1:flat.index("endscript")]
    assert post[:2] == ["/usr/local/bin/coroproc-cfgtool", "-L"] and post[-2:] == ["||", "true"]
    assert "/var/log/cluster/corosync.log" in flat
    if shutil.which("logrotate"):
        out = subprocess.run(["logrotate", "-d", os.path.join(DEPLOY, "logrotate", "coroproc")],
                             capture_output=True, text=True, timeout=60)
        assert "error" not in out.stderr.lower(), out.stderr
