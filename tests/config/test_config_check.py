"""`corosync -t` behaviour: exit 0 with the verdict and warnings, 8 (or 7 for logging
values) with the error — checked in-process and through a real child process."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from coroproc.config import check_main

CORPUS = Path(__file__).parent / "corpus"
OK_TEXT = """totem {
    version: 2
    cluster_name: checked
    transport: udpu
    bogus_key: 1
}
nodelist {
    node {
        ring0_addr: 127.0.0.1
        nodeid: 1
    }
    node {
        ring0_addr: 203.0.113.80
        nodeid: 2
    }
}
"""


def test_ok_prints_verdict_and_warnings(tmp_path):
    path = tmp_path / "ok.conf"
    path.write_text(OK_TEXT)
    out = io.StringIO()
    assert check_main(str(path), out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == f"warning: {path}:5: totem.bogus_key: unknown key; ignored"
    assert lines[1].startswith("Configuration is OK: cluster 'checked', transport udpu, "
                               "2 nodes, local node id 1 (link 0: 127.0.0.1)")


def test_errors_exit_8_and_logging_values_exit_7():
    out = io.StringIO()
    assert check_main(str(CORPUS / "bad" / "token-not-integer.conf"), out=out) == 8
    assert out.getvalue().startswith("error: ")
    assert check_main(str(CORPUS / "bad" / "logging-bad-flag.conf"), out=io.StringIO()) == 7


def test_missing_file_exits_8(tmp_path):
    out = io.StringIO()
    assert check_main(str(tmp_path / "nope.conf"), out=out) == 8
    assert "Can't read file" in out.getvalue()


def test_child_process_exit_status_and_nodeid(tmp_path):
    path = tmp_path / "two-local.conf"
    path.write_text(OK_TEXT.replace("203.0.113.80", "127.0.0.2"))
    cmd = [sys.executable, "-m", "coroproc.config.check", "-c", str(path)]
    ambiguous = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ambiguous.returncode == 8
    assert "nodes 1 and 2 both have local addresses" in ambiguous.stdout
    chosen = subprocess.run(cmd + ["--nodeid", "2"], capture_output=True, text=True,
                            timeout=120)
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "local node id 2 (link 0: 127.0.0.2)" in chosen.stdout
