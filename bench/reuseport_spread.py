#!/usr/bin/env python3
"""How evenly does SO_REUSEPORT spread connections over N listeners? (kernel-notes/reuseport.md)

What it measures: opens N listening sockets on one 127.0.0.1 port with SO_REUSEPORT (like
uringcast's one listener per worker), answers every HTTP request with a tiny
`Connection: close` response, and counts accepted connections per listener. Drive it with
wrk sending `Connection: close` so that every request is a new connection (a new 4-tuple):
    python3 bench/reuseport_spread.py --listeners 2 --seconds 6 &
    wrk -t2 -c32 -d5s -H 'Connection: close' http://127.0.0.1:PORT/
It prints `listening port=PORT` first, then after --seconds one line per listener and the
max/min ratio.

Bounds: loopback only; exits after --seconds (default 10, max 120). Single-threaded
(selectors): which socket a connection lands on is decided by the kernel at SYN time, not by
who calls accept, so one thread measures the spread just as well as N would.
"""

import argparse
import selectors
import socket
import sys
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listeners", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    seconds = min(args.seconds, 120)

    sel = selectors.DefaultSelector()
    listeners = []
    port = args.port
    for i in range(args.listeners):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        port = s.getsockname()[1]
        s.listen(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listener", i))
        listeners.append(s)
    print(f"listening port={port}", flush=True)

    counts = [0] * len(listeners)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            kind, idx = key.data
            if kind == "listener":
                try:
                    conn, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                counts[idx] += 1
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, ("conn", idx))
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(4096)
                    if data:
                        conn.send(RESPONSE)
                except OSError:
                    pass
                sel.unregister(conn)
                conn.close()
    total = sum(counts)
    for i, c in enumerate(counts):
        share = 100.0 * c / total if total else 0.0
        print(f"listener {i}: {c} connections ({share:.2f}%)")
    if total and min(counts) > 0:
        print(f"total {total}, max/min = {max(counts) / min(counts):.4f}")
    else:
        print(f"total {total}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
