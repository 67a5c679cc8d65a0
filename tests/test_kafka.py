"""Openings from Kafka, end to end: a real Apache Kafka broker (KRaft, one node,
tests/kafkabroker.py), FerretDB, and the engine in this process (ctypes) with a
`kafka` entry. Canal flat messages and plain {service, at} messages go in through
librdkafka's producer; the services in MongoDB and the engine's stats show what
came out.

- a Canal UPDATE of the online column opens the service;
- an INSERT, or an UPDATE of another column, opens nothing (counted as ignored);
- a malformed message is logged with its partition and offset, counted, skipped;
- a redelivered opening changes nothing (counted as a duplicate; rev unchanged);
- an engine restarted mid-topic resumes from its committed offset: the next
  engine consumes exactly the message produced while it was down.
"""
import ctypes
import json
import threading

import pymongo
import pytest

import kafkabroker
from waiting import wait_for

pytestmark = pytest.mark.skipif(kafkabroker.available() is not None,
                                reason=str(kafkabroker.available()))

TOPIC = "gm.game_server"
MAPPING = {"database": "gm", "table": "game_server", "id_column": "server_id",
           "online_column": "status", "online_value": "1"}
LOGFN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


def canal(kind, rows, old=None, table="game_server"):
    return json.dumps({"database": "gm", "table": table, "type": kind, "isDdl": False,
                       "es": 1764237600000, "ts": 1764237600100, "pkNames": ["server_id"],
                       "data": rows, "old": old})


class Engine:
    """ad_engine_new + ad_engine_run on a thread; stats() parses the stats JSON."""

    def __init__(self, lib, conf):
        self.lib = lib
        self.eng = lib.ad_engine_new(json.dumps(conf).encode(), None)
        assert self.eng, "ad_engine_new failed"
        self.thread = threading.Thread(target=lib.ad_engine_run, args=(self.eng, None))
        self.thread.start()

    def stats(self):
        p = self.lib.ad_engine_stats_json(self.eng)
        try:
            return json.loads(ctypes.string_at(p))
        finally:
            self.lib.ad_free(p)

    def close(self):
        box = ctypes.c_void_p(self.eng)
        self.lib.ad_engine_destroy(ctypes.byref(box))
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def kafka_env(ferretdb, ad_lib, tmp_path):
    broker = kafkabroker.KafkaBroker().start()
    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_engine_new.restype = ctypes.c_void_p
    lib.ad_engine_new.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_engine_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.ad_engine_stats_json.restype = ctypes.c_void_p
    lib.ad_engine_stats_json.argtypes = [ctypes.c_void_p]
    lib.ad_engine_destroy.argtypes = [ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    lines = []
    handler = LOGFN(lambda lvl, dom, msg, user: lines.append(f"{dom.decode()}: {msg.decode()}"))
    lib.ad_log_set_handler(handler, None, 4)
    conf = {"mongo_uri": ferretdb.uri, "returns": "off", "sock_dir": str(tmp_path / "no-master"),
            "stats_interval": 0, "placement": {"cycle_interval": 86400},
            "kafka": {"brokers": broker.bootstrap, "topic": TOPIC, "group": "autodeploy-test",
                      "commit_interval_ms": 200, "retry_ms": 200, "mapping": MAPPING}}
    db = pymongo.MongoClient(ferretdb.uri)["autodeploy"]
    producer = kafkabroker.Producer(broker.bootstrap)
    try:
        yield lib, conf, db, producer, lines
    finally:
        lib.ad_log_set_handler(None, None, 0)
        producer.close()
        broker.cleanup()


def test_canal_updates_open_services_once_and_resume_after_restart(kafka_env):
    lib, conf, db, producer, lines = kafka_env
    for n in range(1, 7):
        db.services.insert_one({"_id": f"qq-s{n}", "platform": "qq", "server_no": n,
                                "state": "deployed", "rev": 1, "history": []})
    row = lambda n, status, name="x": {"server_id": f"qq-s{n}", "status": status, "name": name}
    producer.produce(TOPIC, canal("UPDATE", [row(1, "1")], [{"status": "0"}]))    # opening
    producer.produce(TOPIC, canal("INSERT", [row(2, "1")]))                       # not one
    producer.produce(TOPIC, canal("UPDATE", [row(3, "1", "b")], [{"name": "a"}]))  # not one
    producer.produce(TOPIC, b"{not json")                                         # malformed
    producer.produce(TOPIC, json.dumps({"service": "qq-s4", "at": "2025-11-27T10:00:00Z"}))
    producer.flush()

    eng = Engine(lib, conf)
    try:
        wait_for(lambda: eng.stats()["kafka"]["consumed"] == 5, "5 messages consumed", timeout=60)
        k = eng.stats()["kafka"]
        assert (k["openings"], k["ignored"], k["malformed"], k["duplicates"]) == (2, 2, 1, 0), k
        state = {d["_id"]: d for d in db.services.find()}
        assert state["qq-s1"]["state"] == "opened"
        assert state["qq-s1"]["opened_at"].startswith("2025-11-27T10:00:00")
        assert state["qq-s4"]["state"] == "opened"
        assert [state[f"qq-s{n}"]["state"] for n in (2, 3, 5)] == ["deployed"] * 3
        assert any("malformed message skipped" in l and "partition 0 offset 3" in l
                   for l in lines), lines

        # the same opening again (a redelivery): nothing changes
        rev = state["qq-s1"]["rev"]
        producer.produce(TOPIC, canal("UPDATE", [row(1, "1")], [{"status": "0"}]))
        producer.flush()
        wait_for(lambda: eng.stats()["kafka"]["duplicates"] == 1, "the duplicate counted")
        assert db.services.find_one({"_id": "qq-s1"})["rev"] == rev
        assert eng.stats()["kafka"]["openings"] == 2
    finally:
        eng.close()

    # produced while no engine runs; the next one starts from the committed offset
    producer.produce(TOPIC, canal("UPDATE", [row(5, "1")], [{"status": "0"}]))
    producer.flush()
    eng = Engine(lib, conf)
    try:
        wait_for(lambda: eng.stats()["kafka"]["openings"] == 1, "qq-s5 opened after the restart", timeout=60)
        assert db.services.find_one({"_id": "qq-s5"})["state"] == "opened"
        k = eng.stats()["kafka"]
        assert (k["consumed"], k["duplicates"], k["malformed"]) == (1, 0, 0), k
        assert k["lag"] == 0, k
    finally:
        eng.close()
