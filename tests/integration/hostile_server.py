#!/usr/bin/env python3
"""hostile_server.py MODE PORT OWNER_PID — a deliberately broken peer on
127.0.0.1 for the "hostile server reply" tests: it answers every request with
MODE's malformed reply. Runs until killed, or until OWNER_PID is gone."""
import os
import socket
import sys
import threading
import time

MODE, PORT, OWNER = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

REDIS = {
    "redis-status": b"+OK\r\n",                          # a status where data is due
    "redis-garbage": b"this is not RESP\r\n",
    "redis-array": b"*3\r\n:1\r\n$-1\r\n*0\r\n",         # wrong shapes inside an array
    "redis-truncated": b"*4\r\n:1\r\n$15\r\n00000",       # then the connection closes
}
HTTP = {
    "http-html": (502, b"text/html", b"<html><body>Bad Gateway</body></html>"),
    "http-truncated": (200, b"application/json", b'[{"found": {"name": "projects/p'),
    "http-wrongtypes": (200, b"application/json",
                        b'[{"found": {"name": 5, "fields": "x", "updateTime": []}, "readTime": 7}]'),
    "http-hostile-commit": (200, b"application/json", b'{"writeResults": "nope", "commitTime": 5}'),
}


def serve(conn):
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            if MODE in REDIS:
                conn.sendall(REDIS[MODE])
                if MODE == "redis-truncated":
                    return
            else:
                while b"\r\n\r\n" not in data:  # read the headers, ignore the body
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                code, ctype, body = HTTP[MODE]
                conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                             % (code, ctype, len(body) + (20 if MODE == "http-truncated" else 0), body))
                if MODE == "http-truncated":
                    return  # promised more than it sends
    finally:
        conn.close()


def watch_owner():
    while True:
        try:
            os.kill(OWNER, 0)
        except OSError:
            os._exit(0)
        time.sleep(0.2)


threading.Thread(target=watch_owner, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", PORT))
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
