#!/usr/bin/env python3
"""stall_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT — a TCP forwarder on
127.0.0.1 that can stop forwarding without closing anything (a network that
silently drops packets): SIGUSR1 stalls every connection, old and new (bytes
are no longer read or written, sockets stay open); SIGUSR2 resumes. Prints
"ready" once listening. Used by e2e tests of loss deadlines."""
import selectors
import signal
import socket
import sys

listen_port, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
stalled = False


def on_usr1(*_):
    global stalled
    stalled = True


def on_usr2(*_):
    global stalled
    stalled = False


signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGUSR2, on_usr2)

sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(128)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ, None)
print("ready", flush=True)

while True:
    try:
        events = sel.select(timeout=0.05)
    except InterruptedError:
        continue
    if stalled:
        continue  # accept nothing, read nothing, write nothing, close nothing
    for key, _ in events:
        if key.data is None:
            try:
                client, _ = srv.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection((host, port))
            except OSError:
                client.close()
                continue
            client.setblocking(False)
            upstream.setblocking(False)
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            continue
        src, dst = key.fileobj, key.data
        try:
            data = src.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            data = b""
        if not data:
            for s in (src, dst):
                try:
                    sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
            continue
        try:
            dst.setblocking(True)
            dst.sendall(data)
            dst.setblocking(False)
        except OSError:
            pass
