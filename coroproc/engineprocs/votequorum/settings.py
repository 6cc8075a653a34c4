"""What votequorum reads from corosync.conf, and the start-up checks Corosync makes.

`read(config)` turns a NodeConfig into `Settings` (`from_cmap` the keys cmap holds after
a client changed some at run time): the raw quorum { } keys as
votequorum_readconfig sees them (two_node is kept even with more than two nodes, as
Corosync keeps it and simply stops granting quorum 1) plus the nodelist sums. The
cross-key rules that make Corosync refuse to start are `startup_errors`; the state
machine (state.py) applies the rest, including the rules that only disable a feature.
"""
from __future__ import annotations

from dataclasses import dataclass

QDEVICE_VOTES_UNSET = -1
ATB_NONE, ATB_LOWEST, ATB_HIGHEST, ATB_LIST = 0, 1, 2, 3
DEFAULT_LMS_WINDOW_MS = 10000
DEFAULT_QDEVICE_TIMEOUT_MS = 10000
DEFAULT_QDEVICE_SYNC_TIMEOUT_MS = 30000


@dataclass(frozen=True)
class Settings:
    nodeid: int
    have_nodelist: bool
    node_count: int
    node_votes: int                 # this node's quorum_votes (nodelist) or quorum.votes
    node_expected_votes: int        # sum of the nodelist's quorum_votes
    expected_votes: int             # quorum.expected_votes (0 = not set)
    two_node: bool
    wait_for_all: bool
    wait_for_all_set: bool          # given explicitly (else it follows two_node)
    last_man_standing: bool
    last_man_standing_window_ms: int
    auto_tie_breaker: bool
    auto_tie_breaker_node: str | None
    allow_downscale: bool
    expected_votes_tracking: bool
    have_qdevice: bool
    qdevice_votes: int              # QDEVICE_VOTES_UNSET when quorum.device.votes is absent
    qdevice_timeout_ms: int
    qdevice_sync_timeout_ms: int
    state_dir: str


def _int(raw: dict, key: str, default: int) -> int:
    value = raw.get(key)
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in ("yes", "on", "true"):
        return 1
    if text in ("no", "off", "false"):
        return 0
    return int(text)


def read(config, nodeid: int) -> Settings:
    """From a NodeConfig: its quorum.* keys and nodelist."""
    keys = getattr(config, "keys", None) or {}
    raw = {k: e.value for k, e in keys.items() if k.startswith("quorum.")}
    nodes = [(n.nodeid, n.quorum_votes) for n in getattr(config, "nodes", ()) or ()]
    return _settings(raw, nodes, nodeid,
                     getattr(config, "state_dir", None) or "/var/lib/corosync")


def from_cmap(entries: dict, nodeid: int, state_dir: str) -> Settings:
    """From cmap's keys, as votequorum_readconfig reads icmap at run time: quorum.* as
    they are, the nodelist every nodelist.node.<pos>.nodeid (quorum_votes 1 unless set)."""
    nodes = []
    for key, value in entries.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[:2] == ["nodelist", "node"] and parts[3] == "nodeid":
            votes = entries.get(f"nodelist.node.{parts[2]}.quorum_votes", 1)
            try:
                nodes.append((int(value), int(votes)))
            except (TypeError, ValueError):
                continue          # not a number: Corosync's icmap_get_uint32 fails the same way
    raw = {k: v for k, v in entries.items() if k.startswith("quorum.")}
    return _settings(raw, nodes, nodeid, state_dir)


def _settings(raw: dict, nodes: list[tuple[int, int]], nodeid: int, state_dir: str) -> Settings:
    """raw: quorum.* key → value; nodes: (nodeid, quorum_votes) of the nodelist."""
    local = [votes for n, votes in nodes if n == nodeid]
    have_nodelist = bool(local)
    node_votes = local[0] if local else _int(raw, "quorum.votes", 1)
    have_qdevice = bool(raw.get("quorum.device.model"))
    return Settings(
        nodeid=nodeid, have_nodelist=have_nodelist,
        node_count=len(nodes) if have_nodelist else 0,
        node_votes=node_votes,
        node_expected_votes=sum(votes for _n, votes in nodes) if have_nodelist else 0,
        expected_votes=_int(raw, "quorum.expected_votes", 0),
        two_node=bool(_int(raw, "quorum.two_node", 0)),
        wait_for_all=bool(_int(raw, "quorum.wait_for_all", 0)),
        wait_for_all_set=raw.get("quorum.wait_for_all") is not None,
        last_man_standing=bool(_int(raw, "quorum.last_man_standing", 0)),
        last_man_standing_window_ms=_int(raw, "quorum.last_man_standing_window",
                                         DEFAULT_LMS_WINDOW_MS),
        auto_tie_breaker=bool(_int(raw, "quorum.auto_tie_breaker", 0)),
        auto_tie_breaker_node=raw.get("quorum.auto_tie_breaker_node"),
        allow_downscale=bool(_int(raw, "quorum.allow_downscale", 0)),
        expected_votes_tracking=bool(_int(raw, "quorum.expected_votes_tracking", 0)),
        have_qdevice=have_qdevice,
        qdevice_votes=(_int(raw, "quorum.device.votes", QDEVICE_VOTES_UNSET)
                       if have_qdevice else QDEVICE_VOTES_UNSET),
        qdevice_timeout_ms=_int(raw, "quorum.device.timeout", DEFAULT_QDEVICE_TIMEOUT_MS),
        qdevice_sync_timeout_ms=_int(raw, "quorum.device.sync_timeout",
                                     DEFAULT_QDEVICE_SYNC_TIMEOUT_MS),
        state_dir=state_dir)


def parse_atb(text: str | None) -> tuple[int, tuple[int, ...]]:
    """auto_tie_breaker_node: 'lowest' | 'highest' | node ids → (type, list). Corosync
    reads the list with strtol until the first non-number; ATB_NONE if nothing usable."""
    if text is None:
        return ATB_LOWEST, ()
    if text == "lowest":
        return ATB_LOWEST, ()
    if text == "highest":
        return ATB_HIGHEST, ()
    ids = []
    for word in text.split():
        if not word.isdigit() or int(word) == 0:
            break
        ids.append(int(word))
    return (ATB_LIST, tuple(ids)) if ids else (ATB_NONE, ())


def startup_errors(s: Settings) -> list[str]:
    """The configurations Corosync refuses to start with (votequorum_readconfig), in its
    words, so an operator sees the same message from either daemon."""
    errors = []
    if not s.have_nodelist and not s.expected_votes:
        errors.append("configuration error: nodelist or quorum.expected_votes must be "
                      "configured!")
        return errors
    if s.two_node and s.have_qdevice:
        errors.append("configuration error: two_node and quorum device cannot be "
                      "configured at the same time!")
    atb_type = parse_atb(s.auto_tie_breaker_node)[0] if s.auto_tie_breaker else ATB_NONE
    wfa = s.wait_for_all if s.wait_for_all_set else s.two_node
    if (atb_type != ATB_NONE and s.node_expected_votes % 2 and not wfa
            and s.last_man_standing):
        errors.append("configuration error: auto_tie_breaker & last_man_standing not "
                      "available in odd sized cluster")
    if s.have_qdevice:
        if s.last_man_standing:
            errors.append("configuration error: quorum.device is not compatible with "
                          "last_man_standing")
        if atb_type != ATB_NONE:
            errors.append("configuration error: quorum.device is not compatible with "
                          "auto_tie_breaker")
        if s.allow_downscale:
            errors.append("configuration error: quorum.device is not compatible with "
                          "allow_downscale")
        if s.expected_votes and s.qdevice_votes == QDEVICE_VOTES_UNSET:
            errors.append("configuration error: quorum.device.votes must be specified when "
                          "quorum.expected_votes is set")
        if (s.qdevice_votes == QDEVICE_VOTES_UNSET and s.have_nodelist
                and s.node_count != s.node_expected_votes):
            errors.append("configuration error: quorum.device.votes must be specified when "
                          "not all nodes votes 1")
        if s.qdevice_votes > 0 and s.expected_votes and s.expected_votes - s.qdevice_votes < 2:
            errors.append("configuration error: quorum.device.votes is too high or "
                          "expected_votes is too low")
    return errors
