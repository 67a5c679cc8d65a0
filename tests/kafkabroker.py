"""A real Apache Kafka broker for tests: KRaft mode, one node acting as broker
and controller, on 127.0.0.1 random ports, run on the machine's Java from the
jars `make deps` fetched from Maven Central (tests/kafka/pom.xml ->
.deps/kafka/libs). Logs go to <root>/broker.log.

Also a tiny producer through librdkafka (the library the engine consumes
with), via ctypes, so the tests need no Python Kafka client.
"""
import ctypes
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import base64
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIBS = Path(os.environ.get("KAFKA_LIBS", REPO / ".deps" / "kafka" / "libs"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    """None, or why no broker can run here."""
    if not shutil.which("java"):
        return "no java (make deps installs openjdk-17-jre-headless)"
    if not list(LIBS.glob("kafka_2.13-*.jar")):
        return f"no Kafka jars in {LIBS} (make deps fetches them)"
    return None


class KafkaBroker:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="adkafka-"))
        self.port, self.cport = _free_port(), _free_port()
        self.proc = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def _java(self, *args, **kw):
        return ["java", "-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-cp", f"{LIBS}/*", *args]

    def start(self, timeout=60):
        props = self.root / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"controller.quorum.voters=1@127.0.0.1:{self.cport}",
            f"log.dirs={self.root / 'data'}",
            "num.partitions=1", "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0", "auto.create.topics.enable=true", ""]))
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c",
                                  str(props)), check=True, capture_output=True, timeout=60)
        log = open(self.root / "broker.log", "wb")
        self.proc = subprocess.Popen(self._java("kafka.Kafka", str(props)), stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kafka broker exited: see {self.root}/broker.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"kafka broker not listening after {timeout}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Producer:
    """librdkafka's producer through ctypes: produce(topic, bytes) then flush()."""

    def __init__(self, bootstrap):
        rk = ctypes.CDLL("librdkafka.so.1")
        rk.rd_kafka_conf_new.restype = ctypes.c_void_p
        rk.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.c_char_p, ctypes.c_size_t]
        rk.rd_kafka_new.restype = ctypes.c_void_p
        rk.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        rk.rd_kafka_topic_new.restype = ctypes.c_void_p
        rk.rd_kafka_topic_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        rk.rd_kafka_produce.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int,
                                        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                        ctypes.c_size_t, ctypes.c_void_p]
        rk.rd_kafka_flush.argtypes = [ctypes.c_void_p, ctypes.c_int]
        rk.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
        rk.rd_kafka_topic_destroy.argtypes = [ctypes.c_void_p]
        self.rk, self.topics = rk, {}
        errbuf = ctypes.create_string_buffer(512)
        conf = rk.rd_kafka_conf_new()
        for k, v in {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": "0"}.items():
            assert rk.rd_kafka_conf_set(conf, k.encode(), v.encode(), errbuf, 512) == 0, errbuf.value
        self.h = rk.rd_kafka_new(0, conf, errbuf, 512)
        assert self.h, errbuf.value

    def produce(self, topic, payload):
        if topic not in self.topics:
            self.topics[topic] = self.rk.rd_kafka_topic_new(self.h, topic.encode(), None)
        data = payload if isinstance(payload, bytes) else payload.encode()
        # partition RD_KAFKA_PARTITION_UA (-1), RD_KAFKA_MSG_F_COPY (2)
        assert self.rk.rd_kafka_produce(self.topics[topic], -1, 2, data, len(data), None, 0,
                                        None) == 0

    def flush(self, timeout_ms=30000):
        assert self.rk.rd_kafka_flush(self.h, timeout_ms) == 0, "messages not delivered"

    def close(self):
        self.flush()
        for t in self.topics.values():
            self.rk.rd_kafka_topic_destroy(t)
        self.rk.rd_kafka_destroy(self.h)
