"""Test-only echo service on coroproc's IpcServer, run as its own process.

Usage: python echo_service.py <service-name> [event_queue_max [welcome]]
Request id N with payload P is answered with response id N, error 0, payload
reversed(P), and then one event (id N + 1000, payload P). Request id 70999 makes the
service send `int(P)` events at once (to fill a client's queue); id 70998 raises inside
the handler (to prove a handler bug costs only that client); id 70997 sets the
connection's flow-control flag to `int(P)`. With "welcome", every client gets an
event (id 70996, b"welcome") queued from on_connect. With ECHO_EVENT_QUEUES=1 in the
environment, events go through the array-backed queues of coroproc/ipc/evqueue.py. Prints "READY <pid>"
once listening, and on SIGTERM closes everything and prints the server stats as
"STATS k=v ..." before exiting 0.
"""

import logging
import os
import signal
import sys

from coroproc.ipc.server import IpcHandler, IpcServer

ECHO_EVENT_OFFSET = 1000
BURST_ID = 70999
CRASH_ID = 70998
FLOW_CONTROL_ID = 70997
WELCOME_ID = 70996


class Echo(IpcHandler):
    def __init__(self, welcome: bool):
        self.welcome = welcome

    def on_connect(self, conn):
        if self.welcome:  # sent before the client has even bound its event socket
            conn.send_event(WELCOME_ID, b"welcome")
        return True

    def on_request(self, conn, msg_id, payload):
        data = bytes(payload)
        if msg_id == CRASH_ID:
            raise RuntimeError("handler bug on purpose")
        if msg_id == FLOW_CONTROL_ID:
            conn.set_flow_control(int(data))
            return (msg_id, 0, b"")
        if msg_id == BURST_ID:
            sent = sum(conn.send_event(msg_id, b"x" * 64) for _ in range(int(data)))
            return (msg_id, 0, str(sent).encode())
        conn.send_response(msg_id, 0, data[::-1])
        conn.send_event(msg_id + ECHO_EVENT_OFFSET, data)
        return None


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    name = sys.argv[1]
    queue_max = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    welcome = len(sys.argv) > 3 and sys.argv[3] == "welcome"
    queues = None
    if os.environ.get("ECHO_EVENT_QUEUES") == "1":
        from coroproc.ipc.evqueue import EventQueues
        queues = EventQueues(slots=8, region_bytes=8 << 20, rows_per_slot=1 << 16)
    server = IpcServer(name, Echo(welcome), event_queue_max=queue_max, event_queues=queues)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("READY", server.pid, flush=True)
    while not stop:
        server.process(200)
    server.close()
    print("STATS", " ".join(f"{k}={v}" for k, v in sorted(server.stats.items())), flush=True)


if __name__ == "__main__":
    main()
