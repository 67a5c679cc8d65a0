"""Run FerretDB v1.24.2 (SQLite backend) on loopback for tests and the demo.

FerretDB speaks MongoDB's wire protocol: the library talks to it with
libmongoc, the tests check what was stored with pymongo, and Salt's own
``mongo_future_return`` (the benchmark's peer) uses pymongo too.
"""
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BINARY = Path(os.environ.get("FERRETDB", REPO / ".deps" / "bin" / "ferretdb"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FerretDB:
    """A FerretDB process; ``stop()``/``start()`` simulate an outage while the
    data directory (SQLite files) survives."""

    def __init__(self, root=None, port=None):
        self.root = Path(root or tempfile.mkdtemp(prefix="adferret-"))
        self.data = self.root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc = None
        self.log = self.root / "ferretdb.log"

    @property
    def uri(self):
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout=20):
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} missing: run `make deps`")
        self.proc = subprocess.Popen(
            [str(BINARY), "-listen-addr", f"127.0.0.1:{self.port}",
             "-sqlite-url", f"file:{self.data}/", "-log-level", "warn"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ferretdb exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("ferretdb did not listen in time")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self):
        import pymongo  # pylint: disable=import-outside-toplevel

        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000)
