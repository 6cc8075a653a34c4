"""Compile (or load from cache) every jitted function of the core once, then exit.

Run before parallel test workers so they load numba's cache instead of racing to fill it.
It drives a real three-node ring through formation and a few messages, which types every
entry point with the argument types the simulator and the ring process use.
"""
import time


def main() -> None:
    t0 = time.perf_counter()
    from coroproc.ringproc.selftest import three_node_smoke
    delivered = three_node_smoke()
    print(f"numba core ready in {time.perf_counter() - t0:.1f} s "
          f"({delivered} messages ordered in the warm-up ring)")


if __name__ == "__main__":
    main()
