#!/usr/bin/env python3
"""A stand-in live HTTP-FLV server, for self-testing uringcast-loadgen and bench/live-load.sh.

What it does: loads a recorded FLV file, plays it on a shared live clock (looping, with
timestamps rewritten to keep increasing), and answers `GET /<anything>.flv` with a chunked
`video/x-flv` response shaped like uringcast's: FLV header, onMetaData, sequence headers, then
the tags from the latest keyframe (a GOP cache, sent at once), then each tag at its live time.
One thread per reader, so it is fine for a few hundred readers; it is a test fixture, not a
benchmark target.

Bounds: loopback only (binds 127.0.0.1); exits after --max-seconds (default 600).

Run:
    python3 bench/loadgen/flv_live_server.py --file clip.flv [--port 0]
It prints `uringcast listening http=127.0.0.1:PORT` (the same line uringcast prints) on stdout.
"""

import argparse
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def parse_flv(data):
    """Returns (header_bytes, init_tags, media_tags); tags are dicts with raw bytes."""
    if data[:3] != b"FLV":
        raise ValueError("not an FLV file")
    offset = struct.unpack(">I", data[5:9])[0]
    header = data[:offset] + b"\x00\x00\x00\x00"
    pos = offset + 4
    init, media = [], []
    seen_config = set()
    while pos + 11 <= len(data):
        tag_type = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        end = pos + 11 + size + 4
        if end > len(data):
            break
        raw = data[pos:end]
        body = data[pos + 11 : pos + 11 + size]
        keyframe = tag_type == 9 and size > 0 and (body[0] >> 4) & 7 == 1
        config = False
        if tag_type == 9 and size > 1:
            config = (body[0] & 0x0F) in (7, 12) and body[1] == 0
        elif tag_type == 8 and size > 1:
            config = (body[0] >> 4) == 10 and body[1] == 0
        if tag_type == 18 or config:
            key = (tag_type, config)
            if key not in seen_config:
                seen_config.add(key)
                init.append(raw)
        elif tag_type in (8, 9):
            media.append({"raw": raw, "dts": ts, "key": keyframe})
        pos = end
    if not media:
        raise ValueError("no media tags")
    first = media[0]["dts"]
    for t in media:
        t["rel"] = t["dts"] - first
    return header, init, media


def with_ts(raw, dts):
    dts &= 0xFFFFFFFF
    return raw[:4] + bytes([(dts >> 16) & 0xFF, (dts >> 8) & 0xFF, dts & 0xFF, dts >> 24]) + raw[8:]


class Live:
    def __init__(self, header, init, media):
        self.header, self.init, self.media = header, init, media
        self.loop_ms = media[-1]["rel"] + 40
        self.t0 = time.monotonic()
        self.keys = [i for i, t in enumerate(media) if t["key"]]
        if not self.keys:
            raise ValueError("no keyframes")

    def now_ms(self):
        return (time.monotonic() - self.t0) * 1000.0

    def live_dts(self, loop, i):
        return loop * self.loop_ms + self.media[i]["rel"]

    def join_point(self):
        """(loop, index) of the latest keyframe at or before now."""
        now = self.now_ms()
        loop = int(now // self.loop_ms)
        within = now - loop * self.loop_ms
        best = None
        for i in self.keys:
            if self.media[i]["rel"] <= within:
                best = i
        if best is None:
            if loop == 0:
                return 0, self.keys[0]
            return loop - 1, self.keys[-1]
        return loop, best


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        live = self.server.live
        if not self.path.endswith(".flv"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/x-flv")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def chunk(b):
            self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")

        try:
            chunk(live.header + b"".join(live.init))
            loop, i = live.join_point()
            while not self.server.stopping:
                dts = live.live_dts(loop, i)
                wait = (dts - live.now_ms()) / 1000.0
                if wait > 0:
                    self.wfile.flush()
                    time.sleep(wait)
                chunk(with_ts(live.media[i]["raw"], dts))
                i += 1
                if i == len(live.media):
                    i, loop = 0, loop + 1
        except (BrokenPipeError, ConnectionResetError):
            return


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    request_queue_size = 4096
    stopping = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()
    with open(args.file, "rb") as f:
        header, init, media = parse_flv(f.read())
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.live = Live(header, init, media)
    print(f"uringcast listening http=127.0.0.1:{srv.server_address[1]}", flush=True)
    timer = threading.Timer(args.max_seconds, srv.shutdown)
    timer.daemon = True
    timer.start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.stopping = True
    sys.exit(0)


if __name__ == "__main__":
    main()
