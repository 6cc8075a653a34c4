"""Operator-facing log events the core emits (EV_LOG rows), worded as Corosync logs them.

The core never logs: it emits a code with integer arguments; the ring process and the
simulator's trace turn them into text with ``describe``. Wording follows Corosync 3.1's
totemsrp.c so existing log monitoring keeps matching.
"""
LOG_TOKEN_LOST = 1            # a=token ms, b=consensus ms
LOG_GATHER_ENTER = 2          # a=reason code (GS_*)
LOG_MEMBERSHIP_FORMED = 3     # a=rep, b=seq; node list = members
LOG_JOINED = 4                # node list = joined
LOG_LEFT = 5                  # node list = left
LOG_FAILED = 6                # node list = failed (left without a leave message)
LOG_FAILED_TO_RECEIVE = 7
LOG_FIREWALL = 8              # continuous gathers without forming a ring
LOG_TOKEN_WARNING = 9         # a=ms since the last token
LOG_RETRANSMIT = 10           # a=entries on the token's retransmit list
LOG_RECOVERY_GAP = 11         # a=old-ring messages no surviving member had
LOG_PAUSE = 12                # a=ms the process was not scheduled
LOG_TRANS_ACK = 13            # a=1 waiting for the sync to end, 0 the wait is over

# Why a node entered GATHER (Corosync's gather_state_from).
GS_NAMES = {
    1: "missing",
    2: "the token was lost in the OPERATIONAL state",
    3: "the consensus timeout expired",
    4: "the token was lost in the COMMIT state",
    5: "the token was lost in the RECOVERY state",
    6: "failed to receive",
    7: "foreign message in OPERATIONAL state",
    8: "foreign message in GATHER state",
    9: "merge during OPERATIONAL state",
    10: "merge during GATHER state",
    11: "merge during JOIN",
    12: "join during OPERATIONAL state",
    13: "join during COMMIT state",
    14: "join during RECOVERY",
    15: "interface change",
}
GS_MISSING = 1
GS_TOKEN_LOST_OPERATIONAL = 2
GS_CONSENSUS_TIMEOUT = 3
GS_TOKEN_LOST_COMMIT = 4
GS_TOKEN_LOST_RECOVERY = 5
GS_FAILED_TO_RECEIVE = 6
GS_FOREIGN_OPERATIONAL = 7
GS_FOREIGN_GATHER = 8
GS_MERGE_OPERATIONAL = 9
GS_MERGE_GATHER = 10
GS_MERGE_DURING_JOIN = 11
GS_JOIN_OPERATIONAL = 12
GS_JOIN_COMMIT = 13
GS_JOIN_RECOVERY = 14


def _ids(nodes) -> str:
    return " ".join(str(n) for n in nodes)


def describe(code: int, a: int, b: int, c: int, nodes: tuple = ()) -> str:
    """Corosync's words for one EV_LOG row."""
    if code == LOG_TOKEN_LOST:
        return (f"Token has not been received in {a} ms; "
                f"A processor failed, forming new configuration: token timed out ({a}ms), "
                f"waiting {b}ms for consensus.")
    if code == LOG_GATHER_ENTER:
        return f"entering GATHER state from {a}({GS_NAMES.get(a, 'unknown')})."
    if code == LOG_MEMBERSHIP_FORMED:
        return f"A new membership ({a:x}.{b:x}) was formed. Members {_ids(nodes)}"
    if code == LOG_JOINED:
        return f"Members joined: {_ids(nodes)}"
    if code == LOG_LEFT:
        return f"Members left: {_ids(nodes)}"
    if code == LOG_FAILED:
        return f"Failed to receive the leave message. failed: {_ids(nodes)}"
    if code == LOG_FAILED_TO_RECEIVE:
        return "FAILED TO RECEIVE"
    if code == LOG_FIREWALL:
        return ("Totem is unable to form a cluster because of an operating system or network "
                "fault (reason: totem is continuously in gather state). The most common cause "
                "of this message is that the local firewall is configured improperly.")
    if code == LOG_TOKEN_WARNING:
        return f"Token has not been received in {a} ms"
    if code == LOG_RETRANSMIT:
        return f"Retransmit List: {a} entries"
    if code == LOG_PAUSE:
        return f"Process pause detected for {a} ms, flushing membership messages."
    if code == LOG_TRANS_ACK:
        return f"waiting_trans_ack changed to {a}"
    if code == LOG_RECOVERY_GAP:
        return f"recovery: {a} old-ring messages were held by no surviving member"
    return f"event {code} {a} {b} {c}"
