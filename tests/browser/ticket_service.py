#!/usr/bin/env python3
"""An auth service for tests/browser.rs: allows a play or publish whose query holds
ticket=TICKET, the credentials an operator pastes into the console (the server cannot mint
them). Usage: ticket_service.py TICKET LOG_FILE

Binds 127.0.0.1 on an ephemeral port and prints the port on stdout. Appends every request
body to LOG_FILE as one JSON line. publish_done/play_done -> 200; allowed -> 204; else 403.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TICKET = sys.argv[1]
LOG = sys.argv[2]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = {}
        with LOCK:
            with open(LOG, "a") as f:
                f.write(json.dumps(body) + "\n")
        action = body.get("action", "")
        tickets = parse_qs(str(body.get("query", ""))).get("ticket", [])
        if action in ("publish_done", "play_done"):
            status = 200
        elif TICKET in tickets:
            status = 204
        else:
            status = 403
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
