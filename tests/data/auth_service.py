#!/usr/bin/env python3
"""A stand-in for an operator's auth service (tests/auth_http.rs).

Usage: auth_service.py LOG_FILE [SLOW_SECONDS]

Binds 127.0.0.1 on an ephemeral port and prints the port on stdout. Every POST body is
appended to LOG_FILE as one JSON line (the body as received, with "_path" added). The answer
depends on the stream name: "allow..." -> 204, "deny..." -> 403, "slow..." -> sleeps
SLOW_SECONDS (default 3) then 204; publish_done/play_done notifications -> 200; anything
else -> 403.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]
SLOW = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status):
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
        except OSError:
            pass  # the server gave up waiting (a slow answer)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_unparsed": raw.decode("latin-1")}
        body["_path"] = self.path
        body["_content_type"] = self.headers.get("Content-Type")
        with LOCK:
            with open(LOG, "a") as f:
                f.write(json.dumps(body) + "\n")
        action = body.get("action", "")
        stream = str(body.get("stream", ""))
        if action in ("publish_done", "play_done"):
            self.answer(200)
        elif stream.startswith("allow"):
            self.answer(204)
        elif stream.startswith("slow"):
            time.sleep(SLOW)
            self.answer(204)
        else:
            self.answer(403)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
