"""The config corpus: real-world-shaped configs load as expected; each broken one fails
at the expected file:line with the expected message and `-t` exit status."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from coroproc.config import ConfigParseError, check_main, load

CORPUS = Path(__file__).parent / "corpus"

GOOD = json.loads((CORPUS / "good" / "expected.json").read_text())
GOOD_FILES = sorted(p.name for p in (CORPUS / "good").glob("*.conf"))
BAD_FILES = sorted(p.name for p in (CORPUS / "bad").glob("*.conf"))


def test_every_good_file_has_expectations():
    assert set(GOOD_FILES) == {k for k in GOOD if not k.startswith("_")}


def _lookup(obj, dotted: str):
    for part in dotted.split("."):
        if isinstance(obj, dict):
            obj = obj[part] if part in obj else obj[int(part)] if part.isdigit() else obj[part]
        elif isinstance(obj, (tuple, list)):
            obj = obj[int(part)]
        else:
            obj = getattr(obj, part)
    return obj


def _lookup_key(config, dotted: str):
    # "keys.<cmap key>.value": cmap keys contain dots, so split off the attribute last.
    cmap_key, attribute = dotted[len("keys."):].rsplit(".", 1)
    return getattr(config.keys[cmap_key], attribute)


@pytest.mark.parametrize("name", GOOD_FILES)
def test_good_config(name):
    spec = GOOD[name]
    path = str(CORPUS / "good" / name)
    if "refused" in spec:
        with pytest.raises(ConfigParseError) as info:
            load(path)
        assert spec["refused"] in info.value.message
        assert info.value.key == spec.get("refused_key", "totem.transport")
        assert info.value.line == spec.get("refused_line")
        return
    config, warnings = load(path, spec.get("nodeid_override"))
    for dotted, expected in spec["expect"].items():
        actual = _lookup_key(config, dotted) if dotted.startswith("keys.") else \
            _lookup(config, dotted)
        if isinstance(expected, dict):
            actual = {str(k): v for k, v in actual.items()}
        assert actual == expected, dotted
    texts = [str(w) for w in warnings]
    for fragment in spec.get("warnings", []):
        assert any(fragment in t for t in texts), (fragment, texts)
    if "warnings" not in spec:
        assert texts == []


def _bad_expectation(path):
    lines = path.read_text().splitlines()
    m = re.fullmatch(r"# expect: (-|[0-9]+): (.*)", lines[0])
    assert m, f"{path.name}: first line must be '# expect: LINE: fragment'"
    exit_line = next((l for l in lines[1:3] if l.startswith("# exit: ")), "# exit: 8")
    return (None if m.group(1) == "-" else int(m.group(1))), m.group(2), int(exit_line[8:])


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_config(name):
    path = CORPUS / "bad" / name
    line, fragment, exit_status = _bad_expectation(path)
    with pytest.raises(ConfigParseError) as info:
        load(str(path))
    error = info.value
    assert error.line == line
    assert fragment in str(error)
    expected_prefix = f"{path}:{line}: " if line else f"{path}: "
    assert str(error).startswith(expected_prefix)
    out = io.StringIO()
    assert check_main(str(path), out=out) == exit_status
    assert fragment in out.getvalue()
