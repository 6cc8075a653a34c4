"""cmap's side of a configuration reload (ref §4.9): keys follow the new file, keys that
cannot change at run time keep their value, reload_in_progress/status as Corosync."""
from pathlib import Path

from coroproc.config.loader import load
from coroproc.engineprocs.cmap import keys as K

from .cmap_helpers import new_engine

BASE = """totem {
    version: 2
    cluster_name: reload
    transport: udpu
    token: 3000
}
nodelist {
    node {
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
}
logging {
    to_stderr: no
    debug: off
}
quorum {
    provider: corosync_votequorum
    expected_votes: 1
}
"""


def _config(tmp_path: Path, text: str, name: str):
    path = tmp_path / name
    path.write_text(text)
    return load(str(path), 1)[0]


def test_reload_sets_deletes_and_keeps_what_cannot_change(tmp_path):
    old = _config(tmp_path, BASE, "a.conf")
    engine, ctx = new_engine(old, nodeid=1)
    seen = []
    engine.store.track_add("totem.", 1 | 2 | 4 | 8, lambda ev, key, new, o: seen.append((ev, key)))
    new_text = (BASE.replace("token: 3000", "token: 5000")
                .replace("cluster_name: reload", "cluster_name: renamed")
                .replace("    expected_votes: 1\n", ""))
    engine.on_reload(_config(tmp_path, new_text, "b.conf"))
    value = engine.store.get_value
    assert value("totem.token") == 5000                       # changeable: follows the file
    assert value("totem.cluster_name") == "reload"            # read-only: kept
    assert value("quorum.expected_votes", None) is None       # dropped from the file
    assert value("config.reload_in_progress") == 0
    assert value("config.reload_status") == K.CS_OK
    assert (2, "totem.token") in seen                         # trackers saw the change
    assert not any(key == "totem.cluster_name" for _ev, key in seen)
