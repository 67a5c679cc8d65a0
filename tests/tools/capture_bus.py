#!/usr/bin/env python3
"""Record the raw byte stream of a Salt master event bus, unmodified.

Connects like any event-bus subscriber to ``<sock_dir>/master_event_pub.ipc``
(or to ``tcp_master_pub_port`` on 127.0.0.1 when the master runs with
``ipc_mode: tcp``) and writes every byte received, exactly as received, to a
file.  It never writes to the socket and never parses anything.

CLI::

    capture_bus.py --sock-dir DIR  -o out.bin [--seconds N] [--max-bytes N]
    capture_bus.py --path SOCK     -o out.bin
    capture_bus.py --tcp [HOST:]PORT -o out.bin

Stops after ``--seconds`` (if given), after ``--max-bytes``, when the master
closes the connection, or on SIGINT/SIGTERM; the file is flushed on every
chunk so a killed capture loses nothing already received.  Prints one JSON
line with the byte count on exit.

Library (stdlib only, usable from any Python)::

    cap = BusCapture(env.event_pub_address, "out.bin").start()  # thread
    ...                                   # cap.size, cap.snapshot()
    cap.wait_quiet(1.0)                   # until no bytes for 1 s
    data = cap.stop()                     # all bytes received
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
import threading
import time

PUB_NAME = "master_event_pub.ipc"


def connect(address, timeout=10.0):
    """Connect to a unix path or (host, port); retry until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if isinstance(address, (tuple, list)):
                sock = socket.create_connection(tuple(address), timeout=2.0)
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(2.0)
                sock.connect(str(address))
            sock.settimeout(None)
            return sock
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class BusCapture:
    """Background thread that appends every received byte to memory (+file)."""

    def __init__(self, address, out_path=None, max_bytes=None, chunk=65536):
        self.address = address
        self.out_path = out_path
        self.max_bytes = max_bytes
        self.chunk = chunk
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._sock = None
        self._fh = None
        self.last_rx = None  # monotonic time of the last chunk
        self.closed_by_peer = False
        self.error = None

    # -- lifecycle
    def start(self, connect_timeout=10.0):
        self._sock = connect(self.address, connect_timeout)
        if self.out_path:
            self._fh = open(self.out_path, "wb")
        self.last_rx = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="bus-capture", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                r, _, _ = select.select([self._sock], [], [], 0.05)
                if not r:
                    continue
                data = self._sock.recv(self.chunk)
                if not data:
                    self.closed_by_peer = True
                    break
                with self._lock:
                    self._buf += data
                    self.last_rx = time.monotonic()
                if self._fh:
                    self._fh.write(data)
                    self._fh.flush()
                if self.max_bytes and len(self._buf) >= self.max_bytes:
                    break
        except OSError as exc:  # pragma: no cover - reported to caller
            self.error = exc

    def stop(self):
        """Stop reading, close the socket and file; return all bytes."""
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._sock:
            self._sock.close()
            self._sock = None
        if self._fh:
            self._fh.close()
            self._fh = None
        return self.snapshot()

    # -- inspection
    @property
    def size(self):
        with self._lock:
            return len(self._buf)

    def snapshot(self):
        with self._lock:
            return bytes(self._buf)

    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def wait_quiet(self, quiet=1.0, timeout=30.0):
        """Block until no byte arrived for ``quiet`` s (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            with self._lock:
                last = self.last_rx
            if time.monotonic() - last >= quiet:
                return True
            time.sleep(0.05)
        return not self.running()

    def wait_for(self, predicate, timeout=30.0, poll=0.05):
        """Block until ``predicate(bytes_so_far)`` is true; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            if not self.running():
                break
            time.sleep(poll)
        return bool(predicate(self.snapshot()))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _parse_address(args):
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        return (host or "127.0.0.1", int(port))
    if args.path:
        return args.path
    return os.path.join(args.sock_dir, PUB_NAME)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--sock-dir", help="master sock_dir (uses master_event_pub.ipc)")
    g.add_argument("--path", help="unix socket path to connect to")
    g.add_argument("--tcp", help="[HOST:]PORT (ipc_mode: tcp; tcp_master_pub_port)")
    ap.add_argument("-o", "--out", required=True, help="output file for raw bytes")
    ap.add_argument("--seconds", type=float, default=None, help="stop after N s")
    ap.add_argument("--max-bytes", type=int, default=None)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    cap = BusCapture(_parse_address(args), args.out, max_bytes=args.max_bytes)
    cap.start(connect_timeout=args.connect_timeout)
    t0 = time.monotonic()
    while not stop.is_set() and cap.running():
        if args.seconds is not None and time.monotonic() - t0 >= args.seconds:
            break
        stop.wait(0.1)
    data = cap.stop()
    print(json.dumps({"out": args.out, "bytes": len(data),
                      "closed_by_peer": cap.closed_by_peer,
                      "seconds": round(time.monotonic() - t0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
