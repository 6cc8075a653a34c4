"""LinkSelector: does THIS link send a given frame to a given peer (knet link_mode).

The ring process writes every frame into every link's tx ring; each link process asks
sends_to(peer_slot, frame_counter) per frame and peer, and the answers of the node's
link processes must add up to the mode without them talking to each other. They agree
because they read the same shared link table (linktable.py) and, for rr, count the same
frame sequence.

Modes, over the links whose state word says configured + enabled + connected ("usable"):
* passive: the usable link of highest priority sends; ties go to the lowest linknumber
  (knet _host_dstcache_update_sync: strictly greater priority wins, links in order).
* active:  every usable link sends.
* rr:      the usable links take turns: the (frame_counter mod n)-th in linknumber order.

No usable link to the peer (startup before the first pongs, or every link down):
* passive / rr: the lowest-numbered configured link sends anyway (one enabled if any),
  so a node can form its ring before the first pong and Totem's retransmits can find a
  path that came back before health noticed. knet would drop instead; sending on one
  link costs at most a datagram to nowhere, dropping costs a membership change.
* active: every configured link sends (the mode's promise is redundancy).
Self (dest = this node, a one-member ring's token): the lowest configured link, whatever
the mode, so the frame comes back exactly once.

Cost: sends_to is called per frame per peer. It reads the table's eight state
generations (two u64 loads) and, while none moved, answers from a per-peer cached rule
(n, index) — "send iff frame_counter % n == index" — with one modulo. Only after a state
change does it re-read the peer's eight state words. best_links() is the allocating form
for status output and log lines.
"""
from __future__ import annotations

from coroproc.netproc.linktable import LINKS_MAX, PRIORITY_SHIFT, LinkTable

MODES = ("passive", "active", "rr")
_PASSIVE, _ACTIVE, _RR = 0, 1, 2
_USABLE_MASK = 0x00FFFFFF
_USABLE = 0x00010101          # configured, enabled, connected (priority masked off)
_CONF_EN_MASK = 0x0000FFFF
_CONF_EN = 0x00000101
_CONFIGURED = 0x01
_ALWAYS = (1, 0)
_NEVER = (1, -1)


class LinkSelector:
    def __init__(self, table: LinkTable, linknumber: int, mode: str,
                 local_nodeid: int | None = None):
        if mode not in MODES:
            raise ValueError(f"link_mode {mode!r} is not one of {MODES}")
        if not 0 <= linknumber < LINKS_MAX:
            raise ValueError(f"linknumber {linknumber} is out of range; allowed "
                             f"0..{LINKS_MAX - 1}")
        self._table = table
        self._link = linknumber
        self._mode = MODES.index(mode)
        self.mode = mode
        local = table.local_nodeid if local_nodeid is None else local_nodeid
        # -1: the table does not know which node it belongs to; self is then a plain peer
        self._self_slot = table.slot_of(local) if local else -1
        # per peer slot: (n, index) meaning "send iff frame_counter % n == index", valid
        # while the table's state generations equal (_gen0, _gen1)
        self._gen0 = self._gen1 = -1
        self._cache: list = [None] * table.n_peers
        # links whose process stopped beating (SIGSTOP, stuck): their rows may still say
        # "connected", so the caller marks them here and they count as unusable
        self.stale_mask = 0

    def set_stale(self, mask: int) -> None:
        if mask != self.stale_mask:
            self.stale_mask = mask
            self._cache = [None] * len(self._cache)

    def sends_to(self, peer_slot: int, frame_counter: int) -> bool:
        gens = self._table.gens_mv
        g0, g1 = gens[0], gens[1]
        if g0 != self._gen0 or g1 != self._gen1:
            # read the generations before the words (decide() below): a decision is never
            # cached under a generation newer than what it read
            self._gen0, self._gen1 = g0, g1
            self._cache = [None] * len(self._cache)
        rule = self._cache[peer_slot]
        if rule is None:
            rule = self._cache[peer_slot] = self.decide(peer_slot)
        return frame_counter % rule[0] == rule[1]

    def decide(self, peer_slot: int) -> tuple[int, int]:
        """(n, index): this link sends frame k to the peer iff k % n == index."""
        words = self._table.words_mv
        base = peer_slot * LINKS_MAX
        me = self._link
        stale = self.stale_mask & ~(1 << me)     # this process is alive by definition
        if stale:       # a stale link's word reads as "not configured" for this decision
            words = [0 if stale >> link & 1 else words[base + link]
                     for link in range(LINKS_MAX)]
            base = 0
        mine = words[base + me]
        if not mine & _CONFIGURED:
            return _NEVER                       # this link has no address for that peer
        if peer_slot == self._self_slot:
            return _ALWAYS if self._lowest_configured(words, base) == me else _NEVER
        mode = self._mode
        if mode == _ACTIVE:
            if mine & _USABLE_MASK == _USABLE or not self._any_usable(words, base):
                return _ALWAYS
            return _NEVER
        if mode == _PASSIVE:
            best, best_pri = -1, -1
            for link in range(LINKS_MAX):
                w = words[base + link]
                if w & _USABLE_MASK == _USABLE and (w >> PRIORITY_SHIFT) > best_pri:
                    best, best_pri = link, w >> PRIORITY_SHIFT
            if best < 0:
                best = self._fallback(words, base)
            return _ALWAYS if best == me else _NEVER
        n = index = 0                           # rr: my turn among the usable links
        for link in range(LINKS_MAX):
            if words[base + link] & _USABLE_MASK == _USABLE:
                if link == me:
                    index = n
                n += 1
        if n == 0:
            return _ALWAYS if self._fallback(words, base) == me else _NEVER
        if mine & _USABLE_MASK != _USABLE:
            return _NEVER
        return (n, index)

    @staticmethod
    def _any_usable(words, base: int) -> bool:
        for link in range(LINKS_MAX):
            if words[base + link] & _USABLE_MASK == _USABLE:
                return True
        return False

    @staticmethod
    def _lowest_configured(words, base: int) -> int:
        for link in range(LINKS_MAX):
            if words[base + link] & _CONFIGURED:
                return link
        return -1

    @staticmethod
    def _fallback(words, base: int) -> int:
        """No usable link: the lowest configured+enabled link, else the lowest configured."""
        for link in range(LINKS_MAX):
            if words[base + link] & _CONF_EN_MASK == _CONF_EN:
                return link
        return LinkSelector._lowest_configured(words, base)


def best_links(table: LinkTable, peer_slot: int, mode: str) -> list[int]:
    """The links that carry traffic to that peer now, [] if none is usable (status, logs).

    passive: [the best link]; active and rr: every usable link. The fallback sender of
    sends_to() is not listed: it sends on hope, not on a working link.
    """
    if mode not in MODES:
        raise ValueError(f"link_mode {mode!r} is not one of {MODES}")
    words = table.words_mv
    base = peer_slot * LINKS_MAX
    usable = [(words[base + link] >> PRIORITY_SHIFT, link) for link in range(LINKS_MAX)
              if words[base + link] & _USABLE_MASK == _USABLE]
    if mode != "passive" or not usable:
        return [link for _, link in usable]
    best_pri = max(pri for pri, _ in usable)
    return [min(link for pri, link in usable if pri == best_pri)]
