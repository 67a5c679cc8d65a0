"""Reserve and placement end to end: a real master, minions of different capacity,
each in its own network namespace (tests/netns.py), FerretDB, the engine with the
registry and the placement cycle, load history injected through the real backend
path (Salt beacon events on the master bus -> engine -> MongoDB -> the cycle's query).

- the least-loaded fitting host is chosen, and `why` says so (with the rejected host);
- no host fits -> waiting_resources with the reason -> a new host registers -> the
  next cycle places the waiting services first;
- deploys run the platform's state through the task system and end `deployed`;
- an opening (signed, through the runner entry point) lowers the idle count and the
  next cycle refills the reserve; one fired by a minion is refused;
- overlapping cycles never place a service twice;
- a dry run reports the reserve math without writing anything.
"""
import json
import threading
import time
from pathlib import Path

import pymongo
import pytest

import netns
from test_registry import REACTORS, STATES, stop  # noqa: F401
from waiting import wait_for
from test_tasks import Alerts, Caller

PROFILE = "aliyun:cn-hangzhou:game-8c16g"
SMALL = "aliyun:cn-hangzhou:game-4c8g"

pytestmark = netns.required()


@pytest.fixture
def fleet(salt_env, ferretdb, ad_lib, tmp_path):
    fabric = netns.Fabric()
    alerts = Alerts()
    registry = {"profiles": ["aliyun:*"], "init_state": "", "liveness_interval": 2,
                "reconcile_interval": 2, "unreachable_after": 60}
    placement = {"cycle_interval": 86400, "headroom": 0.8, "deploy_timeout": 120,
                 "deploy_attempts": 1}
    engine = {"mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / "spool"), "batch_ms": 20,
              "watchdog_interval": 1, "stats_interval": 0, "registry": registry,
              "placement": placement,
              "notify": {"channels": [{"type": "webhook", "url": alerts.url}], "timeout_ms": 2000}}
    env = salt_env(host=fabric.master_ip, master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{k: [str(v)]} for k, v in REACTORS.items()],
        "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    import ctypes

    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    conf = {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
            "master_key_path": str(Path(env.master_opts["cachedir"]) / ".root_key"),
            "pki_dir": env.master_opts["pki_dir"], "cachedir": env.master_opts["cachedir"],
            "publish_port": env.master_opts["publish_port"], "registry": registry,
            "placement": placement}
    db = pymongo.MongoClient(ferretdb.uri)["autodeploy"]
    try:
        yield env, fabric, Caller(lib, conf), db, alerts
    finally:
        alerts.srv.shutdown()
        env.cleanup()
        fabric.close()


def add_host(env, fabric, db, mid, n, profile, cpus, mem_mb):
    ns, ip = fabric.host(n)
    env.start_minion(mid, netns=ns, grains={"autodeploy_profile": profile, "num_cpus": cpus,
                                            "mem_total": mem_mb})
    key = f"{profile}:{ip}"
    wait_for(lambda: (db.hosts.find_one({"_id": key}) or {}).get("state") == "ready", f"{mid} ready", timeout=90)
    return key


def beacons(env, mid, load1, mem_pct, n=5):
    """What the load and memusage beacons of `mid` send, put on the master bus."""
    import salt.utils.event

    bus = salt.utils.event.get_master_event(env.master_opts, env.master_opts["sock_dir"],
                                            listen=False)
    try:
        for _ in range(n):
            bus.fire_event({"1m": load1, "5m": load1, "15m": load1, "id": mid},
                           f"salt/beacon/{mid}/load/")
            bus.fire_event({"memusage": mem_pct, "id": mid}, f"salt/beacon/{mid}/memusage/")
    finally:
        bus.destroy()


def services(db, platform, state=None):
    q = {"platform": platform}
    if state:
        q["state"] = state
    return list(db.services.find(q).sort("server_no", 1))


def test_reserve_placement_waiting_and_refill(fleet):
    env, fabric, call, db, alerts = fleet
    k1 = add_host(env, fabric, db, "h1", 1, PROFILE, 8, 16384)
    k2 = add_host(env, fabric, db, "h2", 2, PROFILE, 8, 16384)
    k3 = add_host(env, fabric, db, "h3", 3, SMALL, 4, 8192)  # not an allowed profile
    beacons(env, "h1", 6.0, 80.0)   # busy
    beacons(env, "h2", 1.0, 20.0)   # nearly idle
    beacons(env, "h3", 0.0, 5.0)    # idle, but the platform does not allow its profile
    wait_for(lambda: db.host_metrics.count_documents({}) >= 30, "beacon samples stored", timeout=30)

    with pytest.raises(ValueError, match="footprint"):
        call("platform.set", code="qq", footprint={"cpu": -1, "mem_mb": 1})
    call("platform.set", code="qq", state="autodeploy.test.ok", profiles=[PROFILE],
         footprint={"cpu": 2, "mem_mb": 4096}, reserve={"min": 2, "max": 2},
         pillar={"game": {"name": "{platform}-{server_no}", "bind": "{private_ip}"}})

    # dry run: the reserve math, nothing written
    dry = call("cycle.run", dry_run=True)
    qq = dry["platforms"][0]
    assert "error" not in qq, qq
    assert qq["reserve"]["size"] == 2 and qq["short"] == 2 and dry["hosts"] == 3
    assert len(qq["placed"]) == 2 and db.services.count_documents({}) == 0

    # 1. the least-loaded fitting host: h2 (h1 is over the headroom on cpu)
    rep = call("cycle.run")["platforms"][0]
    assert rep["created"] == ["qq-s1", "qq-s2"], rep
    assert {p["host"] for p in rep["placed"]} == {k2}, rep
    wait_for(lambda: len(services(db, "qq", "deployed")) == 2, "qq deployed", timeout=90)
    s1 = db.services.find_one({"_id": "qq-s1"})
    assert s1["host"] == k2 and s1["minion"] == "h2"
    task = call("task.get", id=s1["task"])["task"]
    assert task["pillar"]["game"] == {"name": "qq-1", "bind": k2.rsplit(":", 1)[1]}
    svc = task["pillar"]["autodeploy"]["service"]
    assert svc["id"] == "qq-s1" and svc["server_no"] == 1 and svc["port"] == 10001
    why = env.salt_run("autodeploy.why", "qq-s1")
    dec = why["decision"]
    assert dec["chosen"]["host"] == k2 if "chosen" in dec else dec["host"] == k2, dec
    # h3 is rejected for its profile; h1 (6 of 8 cores and 80% of its memory
    # busy) for both cpu and mem: 6 + 2 > 6.4 cores, 13107 + 4096 > 13107 MiB
    rej = dec["rejected"]
    assert rej == {"unreachable": 0, "invalid": 0, "profile": 1, "region": 0, "cpu": 0,
                   "mem": 0, "both": 1}, rej
    assert dec["fitting"] == 1 and [c["host"] for c in dec["candidates"]] == [k2], dec

    # 2. no host fits -> waiting_resources, with the reason
    call("platform.set", code="qq", state="autodeploy.test.ok", profiles=[PROFILE],
         footprint={"cpu": 2, "mem_mb": 4096}, reserve={"min": 4, "max": 4})
    rep = call("cycle.run")["platforms"][0]
    assert rep["created"] == ["qq-s3", "qq-s4"] and rep["placed"] == [], rep
    waiting = services(db, "qq", "waiting_resources")
    assert [s["_id"] for s in waiting] == ["qq-s3", "qq-s4"]
    assert "no host fits" in waiting[0]["reason"], waiting[0]["reason"]
    assert env.salt_run("autodeploy.services", state="waiting_resources")["count"] == 2

    #    ... a new host registers; the next cycle places the waiting ones first
    k4 = add_host(env, fabric, db, "h4", 4, PROFILE, 8, 16384)
    rep = call("cycle.run")["platforms"][0]
    assert rep["created"] == [] and [p["service"] for p in rep["placed"]] == ["qq-s3", "qq-s4"]
    assert {p["host"] for p in rep["placed"]} == {k4}
    wait_for(lambda: len(services(db, "qq", "deployed")) == 4, "4 deployed", timeout=90)
    hist = db.services.find_one({"_id": "qq-s3"})["history"]
    assert [h.get("to") for h in hist if h.get("to")] == ["pending", "waiting_resources",
                                                         "deploying", "deployed"]

    # 3. an opening lowers the idle count; the next cycle refills the reserve
    r = call("service.opened", id="qq-s1")
    assert r["fired"] is True
    wait_for(lambda: db.services.find_one({"_id": "qq-s1"})["state"] == "opened", "opened", timeout=30)
    rep = call("cycle.run")["platforms"][0]
    assert rep["idle"] == 3 and rep["created"] == ["qq-s5"], rep
    #    an opening fired by a minion is refused (unsigned)
    ns, _ = fabric.host(2)
    import subprocess

    out = subprocess.run(["ip", "netns", "exec", ns, str(env.venv_bin / "salt-call"), "-c",
                          str(env.minion_conf_dir("h2")), "event.fire_master",
                          '{"service": "qq-s2"}', "autodeploy/service/qq-s2/opened"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # the refusal is logged (the evidence); only then is "nothing changed" meaningful
    wait_for(lambda: "autodeploy/service/qq-s2/opened refused"
         in Path(env.master_opts["log_file"]).read_text(), "the refusal logged", timeout=30)
    assert db.services.find_one({"_id": "qq-s2"})["state"] == "deployed"


def test_overlapping_cycles_never_double_place(fleet):
    env, fabric, call, db, alerts = fleet
    add_host(env, fabric, db, "h1", 1, PROFILE, 16, 65536)
    call("platform.set", code="ww", state="autodeploy.test.ok", footprint={"cpu": 1, "mem_mb": 1024},
         reserve={"min": 6, "max": 6})
    results, errors = [], []

    def run():
        try:
            results.append(call("cycle.run"))
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    def three_at_once():
        results.clear()
        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors

    # The lease held by someone else (as a cycle on another master would):
    # every cycle is refused, says by whom, and creates nothing.
    until = int(time.time() * 1000) + 120_000
    db.locks.replace_one({"_id": "cycle"}, {"_id": "cycle", "owner": "test-holder",
                                             "until_ms": until}, upsert=True)
    three_at_once()
    assert len(results) == 3 and not any(r["ran"] for r in results), results
    assert all("test-holder" in r["skipped"] for r in results), results
    assert db.services.count_documents({"platform": "ww"}) == 0

    # Released: three cycles at once make the reserve exactly once.
    db.locks.update_one({"_id": "cycle"}, {"$set": {"until_ms": 0}})
    three_at_once()
    ran = [r for r in results if r["ran"]]
    assert ran, results
    svcs = services(db, "ww")
    assert len(svcs) == 6, [s["_id"] for s in svcs]
    tasks = list(db.tasks.find({"owner.kind": "service_deploy"}))
    per_service = {}
    for t in tasks:
        per_service.setdefault(t["owner"]["service"], []).append(t["_id"])
    assert sorted(per_service) == sorted(s["_id"] for s in svcs)
    assert all(len(v) == 1 for v in per_service.values()), per_service
    # and a cycle while nothing is short changes nothing
    rep = call("cycle.run")["platforms"][0]
    assert rep["short"] == 0 and rep["placed"] == []
