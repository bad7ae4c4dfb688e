#!/usr/bin/env python3
"""tls_forwarder.py PORT TARGET_PORT CERT KEY OWNER_PID — a TLS server on
127.0.0.1:PORT (python3 ssl, certificate CERT/KEY) that relays the decrypted
bytes to plain 127.0.0.1:TARGET_PORT: HTTPS in front of the Firestore
emulator. Runs until killed, or until OWNER_PID is gone."""
import os
import socket
import ssl
import sys
import threading
import time

PORT, TARGET, CERT, KEY, OWNER = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                  sys.argv[4], int(sys.argv[5]))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)


def relay(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.close()
        except OSError:
            pass


def serve(raw):
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError):
        raw.close()  # a client that refused our certificate
        return
    up = socket.create_connection(("127.0.0.1", TARGET))
    threading.Thread(target=relay, args=(tls, up), daemon=True).start()
    relay(up, tls)


def watch_owner():
    while True:
        try:
            os.kill(OWNER, 0)
        except OSError:
            os._exit(0)
        time.sleep(0.5)


threading.Thread(target=watch_owner, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT))
srv.listen(64)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
