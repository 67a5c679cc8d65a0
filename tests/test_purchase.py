"""The daily purchase loop on a real master, FerretDB and the engine (issue 11):

- a dry run prints the plan and its reasoning and writes nothing;
- a run writes exactly one order per profile; a rerun through salt-run and two
  more runs at once write none (the order id is the idempotency key);
- the engine asks for approval; an approve event fired by a minion (unsigned)
  is refused with evidence (a note on the order, a counter); `salt-run
  autodeploy.approve` (signed) approves, `autodeploy.reject` rejects;
- the `none` backend places the order (ordered; the partner mail is not merged
  yet, so the loop stops there until hosts arrive);
- a new host of the profile registers and becomes ready: the order is
  fulfilled, the next cycle places the waiting services on it, and the order
  closes;
- an order nobody decides expires after approval.timeout_h, with an alert.

Runtime: about 40 s (two masters, two netns minions).
"""
import json
import threading
import time
from pathlib import Path

import pymongo
import pytest

import netns
from test_placement import add_host
from test_registry import REACTORS, STATES  # noqa: F401
from waiting import wait_for
from test_tasks import Alerts, Caller

BIG = "aliyun:cn-hangzhou:game-8c16g"
SMALL = "aliyun:cn-hangzhou:game-4c8g"
OTHER = "aliyun:cn-hangzhou:other"

pytestmark = netns.required()


def purchase_conf(timeout_h):
    # no daily run: the tests plan by hand (any HH:MM has passed at some hours of the day)
    return {"time": "manual", "timezone": "Asia/Shanghai", "drive_interval_s": 1,
            "preference": ["big", "small"],
            "profiles": {"big": {"flavour": "ecs.c7.2xlarge", "cpu": 8, "mem_mb": 16384,
                                 "disk_gb": 100},
                         "small": {"flavour": "ecs.c7.xlarge", "cpu": 4, "mem_mb": 8192,
                                   "disk_gb": 100}},
            "caps": {"day": 20}, "approval": {"required": True, "timeout_h": timeout_h}}


def profile_names():
    # the registry's profile string is the purchase profile's name
    return {"big": BIG, "small": SMALL}


@pytest.fixture
def loop(salt_env, ferretdb, ad_lib, tmp_path, request):
    timeout_h = getattr(request, "param", 24)
    fabric = netns.Fabric()
    alerts = Alerts()
    conf = purchase_conf(timeout_h)
    conf["profiles"] = {profile_names()[k]: v for k, v in conf["profiles"].items()}
    conf["preference"] = [BIG, SMALL]
    registry = {"profiles": ["aliyun:*"], "init_state": "", "liveness_interval": 2,
                "reconcile_interval": 2, "unreachable_after": 60}
    placement = {"cycle_interval": 86400, "headroom": 0.8, "deploy_timeout": 120,
                 "deploy_attempts": 1}
    engine = {"mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / "spool"), "batch_ms": 20,
              "watchdog_interval": 1, "stats_interval": 1, "registry": registry,
              "placement": placement, "purchase": conf,
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
    cconf = {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
             "master_key_path": str(Path(env.master_opts["cachedir"]) / ".root_key"),
             "pki_dir": env.master_opts["pki_dir"], "cachedir": env.master_opts["cachedir"],
             "publish_port": env.master_opts["publish_port"], "registry": registry,
             "placement": placement, "purchase": conf}
    db = pymongo.MongoClient(ferretdb.uri)["autodeploy"]
    try:
        yield env, fabric, Caller(lib, cconf), db, alerts
    finally:
        alerts.srv.shutdown()
        env.cleanup()
        fabric.close()


def waiting_services(call, db, code, profiles, cpu, n):
    call("platform.set", code=code, state="autodeploy.test.ok", profiles=profiles,
         footprint={"cpu": cpu, "mem_mb": 2048}, reserve={"min": n, "max": n})
    call("cycle.run")
    wait_for(lambda: db.services.count_documents({"platform": code, "state": "waiting_resources"}) == n, f"{n} {code} services waiting", timeout=30)


def state_of(db, oid):
    return (db.orders.find_one({"_id": oid}) or {}).get("state")


def test_plan_approve_reject_place_fulfil(loop):
    env, fabric, call, db, alerts = loop
    # qq: 3 x 2 cores fit one big host (6.4 usable cores); ww: 4 x 3 cores
    # allowed only on small hosts (3.2 usable): 4 hosts
    waiting_services(call, db, "qq", [BIG], 2, 3)
    waiting_services(call, db, "ww", [SMALL], 3, 4)

    dry = env.salt_run("autodeploy.purchase")  # dry_run=True by default
    assert dry["dry_run"] is True and db.orders.count_documents({}) == 0, dry
    lines = {ln["profile"]: ln for ln in dry["lines"]}
    assert lines[BIG]["to_order"] == 1 and lines[BIG]["lower_bound"] == 1, lines[BIG]
    assert lines[SMALL]["to_order"] == 4 and lines[SMALL]["packed"] == 4
    assert {s["platform"] for s in lines[BIG]["services"]} == {"qq"}
    assert all("no host fits" in s["reason"] for s in lines[BIG]["services"])
    day = dry["day"]
    big_id, small_id = f"{BIG}-{day}", f"{SMALL}-{day}"

    run = env.salt_run("autodeploy.purchase", dry_run=False)
    assert sorted(o["id"] for o in run["orders"]) == sorted([big_id, small_id]), run
    assert {o["result"] for o in run["orders"]} == {"planned"}
    order = db.orders.find_one({"_id": big_id})
    assert order["count"] == 1 and order["plan"]["packed"] == 1 and order["platforms"] == ["qq"]
    assert "qq" in order["reason"]

    # a rerun, and two at once: nothing new (already planned, or the lease)
    again = env.salt_run("autodeploy.purchase", dry_run=False)
    assert {o["result"] for o in again.get("orders", [])} <= {"already planned"}, again
    # more services wait: the plan wants more hosts of the profile, but today's
    # order of the profile exists already: one order per profile per day
    waiting_services(call, db, "qq", [BIG], 2, 6)
    again = env.salt_run("autodeploy.purchase", dry_run=False)
    assert [(o["id"], o["result"]) for o in again.get("orders", [])] == [(big_id, "already planned")], again
    assert db.orders.find_one({"_id": big_id})["count"] == 1
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        _try(call, "purchase.run", dry_run=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.orders.count_documents({}) == 2, results
    assert all(isinstance(r, dict) for r in results), results  # the second waited its turn

    # the cycle lease held elsewhere (a cycle on another master): a run waits
    # wait_s, then fails naming the holder; released while it waits, it runs
    until = int(time.time() * 1000) + 120_000
    db.locks.replace_one({"_id": "cycle"}, {"_id": "cycle", "owner": "test-holder",
                                             "until_ms": until}, upsert=True)
    refused = env.salt_run("autodeploy.purchase", dry_run=False, wait_s=1)
    assert refused.get("retcode") == 1, refused
    assert "test-holder" in refused["error"] and "waited 1s" in refused["error"], refused
    threading.Timer(1.5, lambda: db.locks.update_one(
        {"_id": "cycle"}, {"$set": {"until_ms": 0}})).start()
    late = env.salt_run("autodeploy.purchase", dry_run=False, wait_s=60)
    assert {o["result"] for o in late["orders"]} == {"already planned"}, late

    # the engine asks for approval
    wait_for(lambda: state_of(db, big_id) == "awaiting_approval", "approval asked", timeout=30)
    wait_for(lambda: state_of(db, small_id) == "awaiting_approval", "approval asked", timeout=30)

    # an approve fired by a minion (not signed with the master key) is refused
    ns, _ = fabric.host(9)
    env.start_minion("m-other", netns=ns, grains={"autodeploy_profile": OTHER, "num_cpus": 2,
                                                  "mem_total": 2048})
    # forged through the preload path, so that it arrives unwrapped, looking
    # master-made: {"body", "sig"} at the top, a signature that is not the key's
    body = json.dumps({"order_id": big_id, "action": "approve", "reason": "", "actor": "x"})
    preload = {"events": [{"tag": f"autodeploy/order/{big_id}/approve",
                           "data": {"body": body, "sig": "Zm9yZ2Vk"}}]}
    env.salt_call("m-other", "event.fire_master", "{}", "x", f"preload={json.dumps(preload)}",
                  timeout=300)
    note = wait_for(lambda: db.orders.find_one({"_id": big_id}).get("last_refusal"), "the refusal noted on the order", timeout=30)
    assert "approve refused" in note and "signature" in note, note
    wait_for(lambda: '"refused_unsigned":1' in Path(env.master_opts["log_file"]).read_text(), "the refusal counted in the engine's stats", timeout=10)
    assert state_of(db, big_id) == "awaiting_approval"

    # signed, through salt-run: approve one, reject the other
    r = env.salt_run("autodeploy.reject", small_id)
    assert r.get("retcode") == 1 and "reason" in r["error"], r  # a reason is required
    assert env.salt_run("autodeploy.reject", small_id, reason="merge tonight")["fired"] is True
    assert env.salt_run("autodeploy.approve", big_id)["fired"] is True
    wait_for(lambda: state_of(db, small_id) == "rejected", "rejected", timeout=30)
    # approved, then placed by the `none` backend
    wait_for(lambda: state_of(db, big_id) == "ordered", "ordered", timeout=30)
    order = env.salt_run("autodeploy.order", big_id)["order"]
    moves = [(h.get("what"), h.get("to")) for h in order["history"] if h.get("to")]
    assert moves == [("planned", "planned"), ("ask", "awaiting_approval"), ("approve", "approved"),
                     ("place", "ordered")], moves
    assert any(h["what"] == "approve" and h["actor"].startswith("salt:") for h in order["history"])
    assert env.salt_run("autodeploy.order_cancel", big_id)["retcode"] == 1  # placed already
    titles = " | ".join(alerts.titles())
    for what in ("planned", "approval requested", "approved", "rejected", "placed"):
        assert f": {what}" in titles, (what, titles)

    # a host of the profile registers: the order is fulfilled; the cycle
    # places the waiting services on it, and the order closes
    add_host(env, fabric, db, "h1", 1, BIG, 8, 16384)
    wait_for(lambda: state_of(db, big_id) == "fulfilled", "fulfilled", timeout=30)
    assert len(db.orders.find_one({"_id": big_id})["arrived"]) == 1
    rep = call("cycle.run")
    planned_for = [x["service"] for x in db.orders.find_one({"_id": big_id})["plan"]["services"]]
    assert db.services.count_documents({"_id": {"$in": planned_for},
                                        "state": "waiting_resources"}) == 0, rep
    wait_for(lambda: state_of(db, big_id) == "closed", "closed", timeout=30)
    assert "fulfilled" in " | ".join(alerts.titles())
    assert env.salt_run("autodeploy.orders", state="closed")["orders"][0]["_id"] == big_id


def _try(call, command, **args):
    try:
        return call(command, **args)
    except ValueError as exc:
        return str(exc)


@pytest.mark.parametrize("loop", [0.0005], indirect=True)  # 1.8 s
def test_undecided_order_expires(loop):
    env, fabric, call, db, alerts = loop
    waiting_services(call, db, "qq", [BIG], 2, 2)
    run = call("purchase.run", dry_run=False)
    oid = run["orders"][0]["id"]
    wait_for(lambda: state_of(db, oid) == "expired", "expired", timeout=30)
    order = db.orders.find_one({"_id": oid})
    assert "timeout_h" in order["end_reason"], order
    wait_for(lambda: any(": expired" in t for t in alerts.titles()), "the expiry alert", timeout=10)
    assert env.salt_run("autodeploy.approve", oid)["retcode"] == 1  # final
