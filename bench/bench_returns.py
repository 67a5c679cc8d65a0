"""Job-return persistence: autodeploy's batcher against two peers and the store's ceiling.

Same recorded job-return events (real 3008 captures, each given its own jid),
same FerretDB, same run:

- ``ad``:   the C engine reads the events from a Unix socket that serves them
            as a master's event bus does, and stores them (msgpack -> BSON,
            batched upserts). Timed from the first byte until every document
            is in the collection.
- ``salt``: Salt's ``mongo_future_return.event_return``, called once per event
            as the master's EventReturn process calls it with the default
            ``event_return_queue: 0`` (with a larger queue it stores only the
            first event of each batch: ``events = events[0]``), on the events
            decoded by ``salt.payload.loads`` as EventReturn gets them. A new
            ``MongoClient`` per call, one insert per event: Salt as shipped,
            what users run (ratio ``ratio``, named ``vs_salt``).
- ``fair``: the same decoded events (keys sanitized where FerretDB needs it,
            as for ``salt``) with ONE persistent pymongo client, unordered
            ``insert_many`` of ``batch_size`` (1,000, the engine's) and the
            same N as ours: what a careful Python engine would do (ratio
            ``vs_fair``). Decoding is not timed for either peer; ours is.
- ``ceiling``: ``build/bench/bench_store_ceiling`` (C, libmongoc only): the
            very BSON documents our engine stored, read back raw, bulk-inserted
            unordered with the same (default) write concern into a fresh
            collection, in bulks of 1,000, 100 and 20 (ours are as large as
            what arrived during the previous bulk); the best is the ceiling.
            What FerretDB can take; ``of_ceiling`` = ours / ceiling.

Goal per mix (issue #13 item 2b): ``vs_salt`` >= 10 or ``of_ceiling`` >= 0.9.

Run with the Salt 3006 venv (3008 moved the mongo returners out of core):
    .deps/venv3006/bin/python bench/bench_returns.py
Writes bench/results/returns.json: [{mix, n, ad_rps, salt_rps, fair_rps, ceiling_rps,
ratio (= vs_salt), vs_fair, of_ceiling, goal_met, ...}].
"""
import ctypes
import json
import os
import socket
import subprocess
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import msgpack  # noqa: E402

from ferretdb import FerretDB  # noqa: E402

MIXES = {  # name: (capture, events for ad, events for salt)
    "small": ("salt3008/ping.bin", 10000, 2000),
    "medium": ("salt3008/state_small.bin", 10000, 2000),
    "large": ("salt3008/state_large.bin", 2000, 400),
}


def ret_frame(capture):
    """(tag, data) of the first job return in a capture."""
    raw = (REPO / "tests" / "data" / capture).read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw)
    for frame in unpacker:
        body = frame["body"]
        tag, _, data = body.partition(b"\n\n")
        if b"/ret/" in tag:
            return tag.decode(), msgpack.unpackb(data, raw=False, strict_map_key=False)
    raise SystemExit(f"no return in {capture}")


def make_events(capture, n):
    """n (tag, data-bytes) pairs, each its own jid, as a 3008 master sends."""
    tag, data = ret_frame(capture)
    minion = data["id"]
    out = []
    for i in range(n):
        jid = f"2026112700{i:010d}"
        d = dict(data, jid=jid)
        out.append((f"salt/job/{jid}/ret/{minion}", msgpack.packb(d, use_bin_type=True)))
    return out


def wire(events):
    buf = bytearray()
    for tag, data in events:
        body = tag.encode() + b"\n\n" + data
        buf += msgpack.packb({"head": {}, "body": body}, use_bin_type=True)
    return bytes(buf)


def serve_once(path, payload, ready):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    ready.set()
    conn, _ = srv.accept()
    time.sleep(0.2)  # the reader registers, as with a master
    start = time.perf_counter()
    conn.sendall(payload)
    serve_once.start = start
    serve_once.conn = conn  # keep open: closing would look like a master restart
    srv.close()


def run_ad(lib, ferret, db, events, tmp):
    sock_dir = tempfile.mkdtemp(prefix="adbr-", dir="/tmp")
    path = os.path.join(sock_dir, "master_event_pub.ipc")
    payload = wire(events)
    ready = threading.Event()
    t = threading.Thread(target=serve_once, args=(path, payload, ready), daemon=True)
    t.start()
    ready.wait()
    conf = {
        "sock_dir": sock_dir, "mongo_uri": ferret.uri, "mongo_db": db,
        "spool_dir": str(tmp / f"spool-{db}"), "stats_interval": 0,
        "batch_size": BATCH, "batch_ms": 20,
    }
    err = ErrorT()
    eng = lib.ad_engine_new(json.dumps(conf).encode(), ctypes.byref(err))
    if not eng:
        raise SystemExit(err.message.decode())
    runner = threading.Thread(target=lib.ad_engine_run, args=(eng, None), daemon=True)
    runner.start()
    coll = ferret.client()[db]["returns"]
    t.join()
    # the engine's own counter (a count query would load FerretDB while timing)
    lib.ad_engine_stats_json.restype = ctypes.c_void_p
    while True:
        p = lib.ad_engine_stats_json(eng)
        stats = json.loads(ctypes.string_at(p).decode())
        lib.ad_free(ctypes.c_void_p(p))
        if stats["returns"]["stored"] >= len(events):
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - serve_once.start
    lib.ad_engine_stop(eng)
    runner.join()
    lib.ad_engine_destroy(ctypes.byref(ctypes.c_void_p(eng)))
    assert coll.count_documents({}) == len(events)
    serve_once.conn.close()
    return len(events) / elapsed


def sanitize(obj):
    """What a mongo_future_return user must do first: no '.' or '$' in keys."""
    if isinstance(obj, dict):
        return {str(k).replace(".", "_").replace("$", "_"): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [sanitize(v) for v in obj]
    return obj


def run_salt(ferret, db, events):
    """(returns/s, events refused as Salt sends them)."""
    import pymongo.errors  # pylint: disable=import-outside-toplevel
    import salt.payload  # pylint: disable=import-outside-toplevel
    import salt.returners.mongo_future_return as mfr  # pylint: disable=import-outside-toplevel

    mfr.__opts__ = {"mongo.db": db, "mongo.host": "127.0.0.1", "mongo.port": ferret.port,
                    "mongo.user": None, "mongo.password": None, "mongo.indexes": False}
    mfr.__salt__ = {}
    # EventReturn hands the returner events as get_event(full=True) decodes them
    decoded = [{"tag": tag, "data": salt.payload.loads(data, encoding="utf-8")}
               for tag, data in events]
    refused = 0
    try:
        mfr.event_return([decoded[0]])
    except pymongo.errors.WriteError:
        # state runs: "key must not contain '.'" -- the peer cannot store them
        # at all; time it on keys made storable so there is a rate to compare
        refused = len(decoded)
        decoded = [sanitize(ev) for ev in decoded]
        mfr.event_return([decoded[0]])
    coll = ferret.client()[db]["events"]
    coll.delete_many({})
    start = time.perf_counter()
    for ev in decoded:
        mfr.event_return([ev])
    elapsed = time.perf_counter() - start
    assert coll.count_documents({}) == len(events)
    return len(events) / elapsed, refused


BATCH = 1000  # the engine's batch_size in run_ad, and the fair peer's
# the engine's bulks hold what arrived during the previous one (1 .. BATCH), and
# FerretDB's cost per document depends on the bulk's size: the ceiling is the best
CEILING_BATCHES = (BATCH, 100, 20)


def run_fair(ferret, db, events):
    """A fair Python peer: one persistent client, unordered insert_many of BATCH, same N."""
    import pymongo  # pylint: disable=import-outside-toplevel
    import salt.payload  # pylint: disable=import-outside-toplevel

    decoded = []
    for tag, d in events:
        data = salt.payload.loads(d, encoding="utf-8")
        # keyed as ours (duplicates are idempotent), keys storable on FerretDB
        decoded.append({"_id": f"{data['jid']}/{data['id']}", "tag": tag, "data": sanitize(data)})
    client = pymongo.MongoClient("127.0.0.1", ferret.port)
    coll = client[db]["returns"]
    coll.insert_one({"_id": "warm-up"})  # connect and create the collection untimed
    coll.delete_one({"_id": "warm-up"})
    start = time.perf_counter()
    for i in range(0, len(decoded), BATCH):
        coll.insert_many(decoded[i:i + BATCH], ordered=False)
    elapsed = time.perf_counter() - start
    assert coll.count_documents({}) == len(events)
    client.close()
    return len(events) / elapsed


def run_ceiling(ferret, src_db, db, tmp):
    """The store's ceiling: our stored documents, bulk-inserted by bare libmongoc."""
    import pymongo  # pylint: disable=import-outside-toplevel
    from bson.codec_options import CodecOptions  # pylint: disable=import-outside-toplevel
    from bson.raw_bson import RawBSONDocument  # pylint: disable=import-outside-toplevel

    client = pymongo.MongoClient("127.0.0.1", ferret.port)
    raw = client[src_db].get_collection(
        "returns", codec_options=CodecOptions(document_class=RawBSONDocument))
    path = tmp / f"{db}.bson"
    with open(path, "wb") as f:
        for doc in raw.find({}):
            f.write(doc.raw)
    for b in CEILING_BATCHES:  # each size its own collection, existing, as ours did
        client[db][f"returns_b{b}"].insert_one({"_id": "warm-up"})
        client[db][f"returns_b{b}"].delete_one({"_id": "warm-up"})
    exe = REPO / "build" / "bench" / "bench_store_ceiling"
    out = subprocess.run([str(exe), "--uri", ferret.uri, "--db", db, "--coll", "returns",
                          "--file", str(path), "--batch", ",".join(map(str, CEILING_BATCHES))],
                         check=True, capture_output=True, text=True).stdout
    res = json.loads(out)
    for b in CEILING_BATCHES:
        assert client[db][f"returns_b{b}"].count_documents({}) == res["n"]
    client.close()
    path.unlink()
    return res


def load1():
    return round(os.getloadavg()[0], 2)


class ErrorT(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("domain", ctypes.c_char * 16),
                ("message", ctypes.c_char * 240)]


def main():
    lib = ctypes.CDLL(os.environ.get("AD_LIB", str(REPO / "build" / "libautodeploy.so")))
    lib.ad_engine_new.restype = ctypes.c_void_p
    lib.ad_engine_new.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_engine_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.ad_engine_stop.argtypes = [ctypes.c_void_p]
    lib.ad_engine_destroy.argtypes = [ctypes.c_void_p]
    lib.ad_engine_stats_json.argtypes = [ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    tmp = Path(tempfile.mkdtemp(prefix="adbench-"))
    ferret = FerretDB(tmp / "ferret").start()
    rows = []
    load_start = load1()
    try:
        for mix, (capture, n_ad, n_salt) in MIXES.items():
            ad_events = make_events(capture, n_ad)
            salt_events = ad_events[:n_salt]
            t0 = time.perf_counter()
            ad = run_ad(lib, ferret, f"ad_{mix}", ad_events, tmp)
            t1 = time.perf_counter()
            ceil = run_ceiling(ferret, f"ad_{mix}", f"ceil_{mix}", tmp)
            ceiling = ceil["rps"]
            t2 = time.perf_counter()
            fair = run_fair(ferret, f"fair_{mix}", ad_events)
            t3 = time.perf_counter()
            peer, refused = run_salt(ferret, f"salt_{mix}", salt_events)
            print(f"  {mix}: ad {len(ad_events)} in {t1 - t0:.1f}s, ceiling {t2 - t1:.1f}s, "
                  f"fair {t3 - t2:.1f}s, salt {len(salt_events)} in "
                  f"{time.perf_counter() - t3:.1f}s", flush=True)
            row = {"mix": mix, "n": len(ad_events), "salt_n": len(salt_events),
                   "batch": BATCH, "ad_rps": round(ad, 1), "salt_rps": round(peer, 1),
                   "fair_rps": round(fair, 1), "ceiling_rps": round(ceiling, 1),
                   "ceiling_batch": ceil["best_batch"], "ceiling_runs": ceil["runs"],
                   "ratio": round(ad / peer, 1), "vs_fair": round(ad / fair, 2),
                   "of_ceiling": round(ad / ceiling, 2),
                   "salt_refused_as_sent": refused,
                   "event_bytes": len(ad_events[0][1])}
            row["goal_met"] = row["ratio"] >= 10 or row["of_ceiling"] >= 0.9
            rows.append(row)
    finally:
        ferret.cleanup()
    print("ratio = vs Salt as shipped (mongo_future_return: a new MongoClient and one insert per "
          "event);\nvs_fair = vs one persistent pymongo client, insert_many of "
          f"{BATCH}, same N; of_ceiling = ours / bare libmongoc bulk inserts of our documents "
          f"(best of batches {CEILING_BATCHES})")
    print(f"{'mix':8} {'bytes':>7} {'ours r/s':>9} {'salt r/s':>9} {'fair r/s':>9} "
          f"{'ceil r/s':>9} {'vs salt':>8} {'vs fair':>8} {'of ceil':>8} goal")
    for r in rows:
        print(f"{r['mix']:8} {r['event_bytes']:>7} {r['ad_rps']:>9,.0f} {r['salt_rps']:>9,.0f} "
              f"{r['fair_rps']:>9,.0f} {r['ceiling_rps']:>9,.0f} {r['ratio']:>7.1f}x "
              f"{r['vs_fair']:>7.2f}x {r['of_ceiling']:>7.0%} "
              f"{'met' if r['goal_met'] else 'MISSED'}")
        if r["salt_refused_as_sent"]:
            print(f"         {r['mix']}: Salt refuses every event as sent (dotted state ids); "
                  "both peers are timed on sanitized keys")
    measured_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in rows:
        r["load1_start"], r["load1_end"] = load_start, load1()
        r["measured_at"] = measured_at
    out = REPO / "bench" / "results" / "returns.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
