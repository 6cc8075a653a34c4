"""Defaults of a simulated run, in one place, with units in their names.

Timers are small but Corosync-valid so that a seed covers many token rotations and
several membership changes in a few virtual seconds; everything else is scaled from the
token timeout of the run.
"""
from __future__ import annotations

import hashlib

# ---- Totem timers of a simulated cluster -------------------------------------------
TOKEN_MS_CHOICES = (200, 250, 300)   # drawn per seed
TOKEN_COEFFICIENT_MS = 10            # Corosync's 650 ms would make a 16-node token 9 s

# ---- phases --------------------------------------------------------------------------
FAULT_MS = 3000          # faults are injected in [0, FAULT_MS)
# Then everything heals, crashed nodes restart, loss is 0. The quiet phase is derived per
# run: bound (to settle) + QUIET_WINDOW_MS (messages sent then are checked for delivery)
# + bound (their delivery deadline: the checker checks sends up to end - bound).
QUIET_WINDOW_MS = 500
DRAIN_MS = 600           # the workload stops this long before the end, so that the
                         # last messages can still be delivered before end_us
FAULT_START_MS = 100     # the first fault comes after the boot gather has begun

# ---- liveness bound: token + consensus + slack ------------------------------------------
# slack = SLACK_ROUNDS × (token + consensus) + SLACK_EXTRA_MS. One round is not enough: a
# compound fault that ends at the heal (a node resuming from a pause, asymmetric links,
# loss) leaves nodes with failed sets they cannot adopt from one another, and Corosync's
# membership algorithm then needs further consensus timeouts before the last merge (seen
# at 19 nodes: 2.6 s after the heal, 2.0 consensus rounds). Two extra rounds cover every
# seed measured; a slower merge is a liveness failure.
SLACK_ROUNDS = 2
SLACK_EXTRA_MS = 500

# ---- services' sync (waiting_trans_ack) -------------------------------------------------
# Per seed, from its own stream: 0 = the cores do not wait; else each node acknowledges a
# regular configuration up to this long after installing it.
TRANS_ACK_MS_CHOICES = (0, 0, 5, 50, 300)

# ---- idle token pacing (coroproc { idle_token_pace_us }) --------------------------------
# Per seed, from its own stream: how long the representative keeps a quiet ring's token
# on each visit (0 = not at all, Corosync's behaviour).
IDLE_TOKEN_PACE_US_CHOICES = (0, 300, 1000, 1000)

# ---- network -------------------------------------------------------------------------
LATENCY_BASE_US = 100
LATENCY_JITTER_US = 400
BACKGROUND_LOSS_MAX = 0.01   # per seed, during the fault phase only
BACKGROUND_DUP_MAX = 0.01

# ---- processes -----------------------------------------------------------------------
SOCKET_BUFFER_FRAMES = 2000  # frames queued for a paused node; more are dropped

# ---- workload ------------------------------------------------------------------------
# A busy ring circulates its token without pause and every frame costs a call into a core,
# so the load is bursty: the ring goes idle (the token is held) between bursts, and the
# cost of a seed stays proportional to its traffic. Storms saturate every node at once
# for a short while, to fill the new-message queue (submit returns False).
WORKLOAD_TICK_US = 5_000
BURSTS_PER_S_MIN = 2.0
BURSTS_PER_S_MAX = 12.0
STORMS_MAX = 1
STORM_PROBABILITY = 0.2          # a seed has a storm at all
STORM_MS_MIN = 30
STORM_MS_MAX = 100
NEW_MESSAGE_QUEUE_BYTES = 128 * 1024   # the core's queue (Corosync: 4 MiB); small = back-pressure
CLIENT_QUEUE_MESSAGES_MAX = 1024   # per node, messages waiting for an accepting submit
BURST_MESSAGES_MAX = 48
SIZE_SMALL_MIN_BYTES = 16
SIZE_SMALL_MAX_BYTES = 4096
SIZE_LARGE_MAX_BYTES = 65536
LARGE_FRACTION = 0.02
SAFE_FRACTION = 0.2
HEADER_BYTES = 12            # sender nodeid u32 LE + sender seq u64 LE

# ---- faults --------------------------------------------------------------------------
FAULT_EPISODES_PER_SECOND_MAX = 5
FAULTS_MAX = 256             # start + end events of one schedule

# ---- bounds on one run -------------------------------------------------------------------
EVENTS_MAX = 5_000_000       # events of one run; more is a frame storm (a core bug)
HEAP_ENTRIES_MAX = 50_000    # pending events (normal: a few thousand); more is a frame storm
EVENTS_PER_VIRTUAL_MS_MAX = 2_000   # sustained over STORM_WINDOWS windows of 4096 events: a
STORM_WINDOWS = 4                   # storm (normal: < 200 even for 32 saturated nodes)
SEED_WALL_S_MAX = 120.0      # a seed running longer (wall) in a sweep is reported as hung


def derive_seed(seed: int, stream: str) -> int:
    """A 64-bit seed for one subsystem's stream, independent of every other stream."""
    assert seed >= 0, f"seed must be non-negative, got {seed}"
    digest = hashlib.sha256(f"coroproc-sim/{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def nodes_for_seed(seed: int, nodes_min: int, nodes_max: int) -> int:
    """The node count of a seed in a sweep over nodes_min..nodes_max (inclusive)."""
    import random
    assert 2 <= nodes_min <= nodes_max, f"bad node range {nodes_min}..{nodes_max}"
    return random.Random(derive_seed(seed, "nodes")).randint(nodes_min, nodes_max)

QUEUE_SLOTS = 256                 # per sort queue (window_size 50 needs >= 200)
MAX_MESSAGE_BYTES = 128 * 1024    # reassembly limit; the workload's largest is 64 KiB
