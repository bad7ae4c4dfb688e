#!/usr/bin/env python3
"""stall_forwarder.py PORT TARGET_PORT OWNER_PID — a TCP forwarder on
127.0.0.1:PORT to 127.0.0.1:TARGET_PORT that, on SIGUSR1, stops forwarding
without closing anything: bytes are neither relayed nor answered, as when a
network drops packets (no FIN, no RST). New connections are then accepted
and left silent too. Runs until killed, or until OWNER_PID is gone."""
import os
import signal
import socket
import sys
import threading
import time

PORT, TARGET, OWNER = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stalled = threading.Event()
held = []  # sockets kept open (never closed) once stalled


def relay(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data or stalled.is_set():
                break
            dst.sendall(data)
    except OSError:
        pass
    if stalled.is_set():
        held.extend([src, dst])  # stay open and silent
        return
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(client):
    if stalled.is_set():
        held.append(client)
        return
    try:
        server = socket.create_connection(("127.0.0.1", TARGET))
    except OSError:
        client.close()
        return
    threading.Thread(target=relay, args=(client, server), daemon=True).start()
    threading.Thread(target=relay, args=(server, client), daemon=True).start()


def watch_owner():
    while True:
        try:
            os.kill(OWNER, 0)
        except OSError:
            os._exit(0)
        time.sleep(0.2)


signal.signal(signal.SIGUSR1, lambda *_: stalled.set())
threading.Thread(target=watch_owner, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", PORT))
s.listen(64)
while True:
    c, _ = s.accept()
    serve(c)
