"""Compile (or load from cache) every jitted function of the core once, then exit.

Run it before parallel workers start (``make warm``), so they load numba's cache instead
of all compiling at once. It forms a three-node ring over a lossless in-process exchange,
orders agreed, safe and fragmented messages, and has one node leave: that reaches every
entry point with the argument types the simulator and the ring process use. Then the
ring process's pump and the plain link processes' loop (netproc/jit), which the daemons
compile on first start otherwise.
"""
import heapq
import time

from coroproc.ringproc.config import TotemConfig
from coroproc.ringproc.node import TotemNode


def smoke_ring(nodes: int = 3, messages: int = 30) -> int:
    """Run a tiny healthy ring; returns messages delivered at node 1 (raises if none)."""
    ids = tuple(range(1, nodes + 1))
    cfg = TotemConfig(token_ms=300, nodelist=ids, queue_slots=256,
                      new_message_queue_bytes=1 << 20, max_message_bytes=1 << 16)
    ring = {i: TotemNode(cfg, i) for i in ids}
    events: list = []
    seq = 0
    delivered = 0

    def carry(i: int, now: int) -> None:
        nonlocal seq, delivered
        for out in ring[i].take_outputs():
            if out[0] == "send":
                for d in ([n for n in ids if n != i] if out[1] == 0 else [out[1]]):
                    seq += 1
                    heapq.heappush(events, (now + 100, seq, d, out[2]))
            elif out[0] == "deliver" and i == 1:
                delivered += 1
        deadline = ring[i].next_deadline_us()
        if deadline >= 0:
            seq += 1
            heapq.heappush(events, (deadline, seq, i, None))

    for i in ids:
        ring[i].start(0)
        carry(i, 0)
    sent = 0
    while events:
        now, _, i, frame = heapq.heappop(events)
        if now > 2_000_000:
            break
        if frame is None:
            ring[i].on_timer(now)
        else:
            ring[i].on_frame(now, frame)
        if now > 200_000 and sent < messages:
            sender = ring[1 + sent % nodes]
            sender.submit(b"w" * (3000 if sent % 7 == 0 else 40), safe=sent % 3 == 0)
            carry(1 + sent % nodes, now)
            sent += 1
        carry(i, now)
    ring[nodes].leave(2_000_000)
    if delivered == 0:
        raise RuntimeError("the warm-up ring delivered nothing: the core is broken")
    return delivered


def main() -> None:
    t0 = time.perf_counter()
    delivered = smoke_ring()
    print(f"numba core ready in {time.perf_counter() - t0:.1f} s "
          f"({delivered} messages ordered in the warm-up ring)")
    t0 = time.perf_counter()
    from coroproc.ringproc.process import warm_up
    warm_up(TotemConfig(nodelist=(1, 2, 3)), n_links=1, n_engines=1)
    print(f"ring process pump ready in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    from coroproc.netproc.link import warm_up as warm_link
    warm_link()
    print(f"link process loop ready in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    from coroproc.netproc.secure_link import warm_up as warm_secure
    warm_secure()
    print(f"secure link data path ready in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    from coroproc.engineprocs.cpg.lane import warm_up as warm_lane
    warm_lane()
    print(f"cpg delivery lane ready in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
