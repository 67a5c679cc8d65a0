"""The dashboard in a real browser (issue 14): headless Chromium from Debian
(tests/browser.py) opens the engine's page after real cycles and reads it.

A real master and FerretDB, the engine with the registry, placement (its own
cycle every few seconds), the purchase loop and HTTP; two minions of two
profiles in network namespaces (tests/netns.py) with a known load (beacon
events on the master bus). Platform qq's reserve is deployed on h1, platform
big fits no host and waits, the purchase run orders a host for it (awaiting
approval), and one deploy fails. Then the page, opened with the reader token
in its URL fragment as a person would, must show what MongoDB holds:

- hosts by profile and state, and each host's load (p95 + footprints placed)
  against its headroom (capacity x placement.headroom), as the last cycle
  left it on the host's document and as its beacon samples and placed
  services come to;
- each platform's reserve target (the last cycle's, on the platform's
  document) and its idle, deploying, waiting and opened services;
- the waiting services with their reasons;
- the recent tasks with their status, and a task clicked opens its per-state
  results (the returns stored for its job);
- the orders with their state and approval;
- every request the page made went to the engine (it needs no network).

The screenshot is the test's artifact: build/artifacts/dashboard.png (the
one in docs/ is a copy). About 25 s, half of it stopping Salt.
"""
import collections
import datetime
import math
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pymongo
import pytest

import browser
import netns
from ferretdb import free_port
from test_placement import beacons
from test_registry import REACTORS, STATES  # noqa: F401
from waiting import wait_for
from test_tasks import Caller

REPO = Path(__file__).resolve().parents[1]
ARTIFACT = REPO / "build" / "artifacts" / "dashboard.png"
TOKEN = "dashboard-reader-token-0123456789"
SCRAPE = "dashboard-scrape-token-0123456789"
PROFILE = "aliyun:cn-hangzhou:game-8c16g"
SMALL = "aliyun:cn-hangzhou:game-4c8g"
BIG = "aliyun:cn-hangzhou:game-16c32g"  # only bought: no host has it
HEADROOM = 0.8

pytestmark = [m for m in (netns.required(), browser.required()) if m]


@pytest.fixture
def stack(salt_env, ferretdb, ad_lib, tmp_path):
    fabric = netns.Fabric()
    port = free_port()
    registry = {"profiles": ["aliyun:*"], "init_state": "", "liveness_interval": 2,
                "reconcile_interval": 2, "unreachable_after": 60}
    # the engine's own cycle, every 3 s (the first 5 s after it starts)
    placement = {"cycle_interval": 3, "headroom": HEADROOM, "deploy_timeout": 120,
                 "deploy_attempts": 1}
    # orders in a collection of its own name: the API and /metrics read it there
    purchase = {"time": "manual", "timezone": "Asia/Shanghai", "drive_interval_s": 1,
                "collection": "host_orders",
                "profiles": {BIG: {"flavour": "ecs.c7.4xlarge", "cpu": 16, "mem_mb": 32768,
                                   "disk_gb": 100}},
                "approval": {"required": True, "timeout_h": 24}}
    engine = {"mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / "spool"), "batch_ms": 20,
              "watchdog_interval": 1, "stats_interval": 0, "status_interval": 1,
              "registry": registry, "placement": placement, "purchase": purchase,
              "http": {"listen": f"127.0.0.1:{port}", "reader_tokens": [TOKEN],
                       "scrape_token": SCRAPE}}
    env = salt_env(host=fabric.master_ip, master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{k: [str(v)]} for k, v in REACTORS.items()],
        "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    conf = {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
            "master_key_path": str(Path(env.master_opts["cachedir"]) / ".root_key"),
            "pki_dir": env.master_opts["pki_dir"], "cachedir": env.master_opts["cachedir"],
            "publish_port": env.master_opts["publish_port"], "registry": registry,
            "placement": placement, "purchase": purchase}
    db = pymongo.MongoClient(ferretdb.uri)["autodeploy"]
    try:
        yield env, fabric, Caller.load(ad_lib, conf), db, port
    finally:
        env.cleanup()
        fabric.close()


def iso_ms(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def numbers(text):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def p95(values):
    """Nearest rank, as the metrics backends compute it."""
    values = sorted(values)
    return values[math.ceil(0.95 * len(values)) - 1] if values else 0.0


def expected_load(db, host):
    """A ready host's load as MongoDB says it: the p95 of its beacon samples
    (cpu: min(load1, cores); mem: mem_pct of its memory), the footprints of
    the services placed on it and not yet measured, capacity x headroom."""
    cap = host["capacity"]
    loads = [min(d["load1"], cap["cpu"]) for d in db.host_metrics.find({"minion": host["minion"],
                                                                       "beacon": "load"})]
    mems = [d["mem_pct"] / 100 * cap["mem_mb"]
            for d in db.host_metrics.find({"minion": host["minion"], "beacon": "memusage"})]
    placed = list(db.services.find({"host": host["_id"], "state": {"$in": ["deploying", "deployed"]}}))
    return {"cpu": (p95(loads), sum(s["footprint"]["cpu"] for s in placed), cap["cpu"] * HEADROOM),
            "mem_mb": (p95(mems), sum(s["footprint"]["mem_mb"] for s in placed),
                       cap["mem_mb"] * HEADROOM)}


def approval_of(order):
    """The approval column, from the order's state (docs/api-http.md)."""
    via = f" ({order['approval']['via']})" if (order.get("approval") or {}).get("via") else ""
    if order["state"] == "awaiting_approval":
        return "awaiting" + via
    if order["state"] in ("approved", "ordered", "partner_notified", "fulfilled", "closed"):
        return ("approved" if order.get("approval") else "not required") + via
    return {"planned": "not asked yet", "rejected": "rejected" + via,
            "expired": "expired" + via}.get(order["state"], "-")


def test_dashboard_shows_what_mongodb_holds(stack):
    env, fabric, call, db, port = stack
    t0 = time.monotonic()
    call("platform.set", code="qq", state="autodeploy.test.ok", profiles=[PROFILE],
         footprint={"cpu": 1, "mem_mb": 1024}, reserve={"min": 2, "max": 2})
    # needs 7 cores: more than an 8-core host's headroom (6.4); a 16-core host is bought
    call("platform.set", code="big", state="autodeploy.test.ok", profiles=[PROFILE, BIG],
         footprint={"cpu": 7, "mem_mb": 2048}, reserve={"min": 1, "max": 1})
    hosts = {}
    for n, (mid, profile, cpus, mem) in enumerate([("h1", PROFILE, 8, 16384),
                                                   ("h2", SMALL, 4, 8192)], 1):
        ns, ip = fabric.host(n)
        env.start_minion(mid, netns=ns, grains={"autodeploy_profile": profile, "num_cpus": cpus,
                                                "mem_total": mem})
        hosts[mid] = f"{profile}:{ip}"
    wait_for(lambda: db.hosts.count_documents({"_id": {"$in": list(hosts.values())},
                                           "state": "ready"}) == 2, "h1, h2 ready", timeout=90)
    beacons(env, "h1", 2.0, 25.0)
    beacons(env, "h2", 1.0, 50.0)
    wait_for(lambda: db.host_metrics.count_documents({}) >= 20, "beacon samples stored", timeout=30)
    wait_for(lambda: db.services.count_documents({"platform": "qq", "state": "deployed"}) == 2, "qq's reserve deployed by the engine's own cycle", timeout=90)
    wait_for(lambda: db.services.count_documents({"platform": "big", "state": "waiting_resources"}) == 1, "big-s1 waiting", timeout=30)
    call("purchase.run", dry_run=False)
    wait_for(lambda: db.host_orders.count_documents({"state": "awaiting_approval"}) == 1, "the order awaiting approval", timeout=30)
    bad = call("task.deploy", tgt="h1", mods="autodeploy.test.fail", created_by="dashboard-test",
               reason="a broken build")["task"]
    call.wait_state(bad["_id"], ("failed",))
    wait_for(lambda: db.returns.count_documents({"jid": bad["jid"]}) == 1, "its return stored", timeout=20)
    settled = time.time() * 1000
    wait_for(lambda: all(iso_ms((p.get("last_cycle") or {}).get("at", "1970-01-01T00:00:00Z")) > settled
                     for p in db.platforms.find()), "the engine's next cycle", timeout=30)

    url = f"http://127.0.0.1:{port}/dashboard#token={TOKEN}"
    with browser.Browser() as b:
        b.goto(url)  # the token in the fragment, as a person pastes the link
        b.wait("+document.body.dataset.loaded >= 1", what="the page's first refresh")
        page = b.eval(browser.TABLES)
        now_ms = b.eval("Date.now()")
        # a task clicked opens its per-state results
        b.eval(f"document.querySelector('tr.task[data-task=\"{bad['_id']}\"]').click()")
        detail = b.wait(f"document.getElementById('results-{bad['_id']}')"
                        f" && ({browser.TABLES})['results-{bad['_id']}']", what="the task's results")
        b.screenshot(ARTIFACT)
        requests, errors = list(b.requests), list(b.errors)

    # hosts by profile and state
    by = collections.Counter((h.get("profile") or "-", h["state"]) for h in db.hosts.find())
    assert {(r["data"]["profile"], r["data"]["state"]): int(r["k"]["n"])
            for r in page["fleet-sum"]} == dict(by), page["fleet-sum"]
    # each ready host's load against its headroom: what the last cycle left on
    # the host's document, which is what its beacon samples and the services
    # placed on it come to
    rows = {r["data"]["host"]: r for r in page["fleet-load"]}
    assert sorted(rows) == sorted(h["_id"] for h in db.hosts.find()), rows
    for h in db.hosts.find({"state": "ready"}):
        stored, want = h["load"], expected_load(db, h)
        for res, tol in (("cpu", 0.05), ("mem_mb", 0.5)):
            got = numbers(rows[h["_id"]]["k"][res])
            kept = (stored["p95"][res], stored["placed"][res], stored["limit"][res])
            assert len(got) == 3 and all(abs(g - w) <= tol + 1e-9 and abs(w - x) <= 1e-6
                                         for g, w, x in zip(got, kept, want[res])), \
                (h["_id"], res, rows[h["_id"]]["k"][res], kept, want[res])
    assert numbers(rows[hosts["h1"]]["k"]["cpu"]) == [2.0, 2.0, 6.4]  # what the test put there
    # each platform's reserve: the target the last cycle left on the platform,
    # the services idle, deploying, waiting and opened now
    rows = {r["data"]["platform"]: r["k"] for r in page["reserves-t"]}
    assert sorted(rows) == sorted(p["_id"] for p in db.platforms.find())
    for p in db.platforms.find():
        n = lambda st: str(db.services.count_documents({"platform": p["_id"], "state": st}))  # noqa: E731
        assert rows[p["_id"]] == {
            "target": str(p["last_cycle"]["reserve"]["size"]), "idle": n("deployed"),
            "deploying": n("deploying"), "waiting": n("waiting_resources"),
            "opened": n("opened")}, (p["_id"], rows[p["_id"]])
    assert rows["qq"]["idle"] == "2" and rows["big"]["waiting"] == "1", rows
    # the waiting services, their reasons and hours waited
    waiting = {s["_id"]: s for s in db.services.find({"state": "waiting_resources"})}
    rows = {r["data"]["service"]: r["k"] for r in page["waiting-t"]}
    assert sorted(rows) == sorted(waiting) == ["big-s1"]
    for sid, k in rows.items():
        assert k["reason"] == waiting[sid]["reason"] and "no host fits" in k["reason"], k
        assert abs(float(k["hours"]) - (now_ms - waiting[sid]["created_at_ms"]) / 3.6e6) <= 0.051
    # the recent tasks (newest first) with their status and duration
    tasks = list(db.tasks.find().sort("created_at", -1).limit(20))
    assert [(r["data"]["task"], r["k"]["state"]) for r in page["tasks-t"]] == \
        [(t["_id"], t["state"]) for t in tasks]
    assert {t["state"] for t in tasks} == {"succeeded", "failed"}
    for r, t in zip(page["tasks-t"], tasks):
        secs = (iso_ms(t["updated_at"]) - iso_ms(t["created_at"])) / 1000
        assert abs(numbers(r["k"]["duration"])[0] - secs) <= 0.5 + 1e-9, (r, secs)
    # the clicked task's per-state results: the states of its stored return
    ret = db.returns.find_one({"jid": bad["jid"]})
    states = ret["return"]
    assert sorted((r["data"]["minion"], r["data"]["state"], r["k"]["result"]) for r in detail) == \
        sorted((ret["minion"], sid, str(st["result"]).lower()) for sid, st in states.items())
    assert [r["k"]["result"] for r in detail] == ["false"], detail
    # the orders with their state and approval
    orders = {o["_id"]: o for o in db.host_orders.find()}
    rows = {r["data"]["order"]: r["k"] for r in page["orders-t"]}
    assert sorted(rows) == sorted(orders) and len(rows) == 1
    for oid, k in rows.items():
        o = orders[oid]
        assert k == {"count": str(o["count"]), "state": o["state"], "approval": approval_of(o)}, k
    assert list(rows.values())[0]["approval"] == "awaiting (salt)"
    # nothing but the engine was asked for anything, and the page raised nothing
    assert requests and all(u.startswith(f"http://127.0.0.1:{port}/") for u in requests), requests
    assert not errors, errors

    # the same store read by another system: the API with curl's request, and
    # /metrics as Prometheus scrapes it, against MongoDB's numbers
    def get(path, token=TOKEN):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    ready = json.loads(get("/api/v1/hosts?state=ready"))
    assert sorted(h["_id"] for h in ready["hosts"]) == sorted(hosts.values()), ready
    assert json.loads(get("/api/v1/hosts/" + urllib.parse.quote(hosts["h1"], safe="")))["host"][
        "history"], "a host with its history"
    failed = json.loads(get("/api/v1/tasks?status=failed"))
    assert [t["_id"] for t in failed["tasks"]] == [bad["_id"]], failed
    waiting = json.loads(get("/api/v1/services?platform=big&state=waiting_resources"))
    assert [x["_id"] for x in waiting["services"]] == [
        x["_id"] for x in db.services.find({"platform": "big", "state": "waiting_resources"})]
    metrics = get("/metrics", SCRAPE)
    series = dict(re.findall(r"^(autodeploy_[a-z_]+\{[^}]*\}) (\S+)$", metrics, re.M))
    for state in ("ready",):
        want = db.hosts.count_documents({"state": state})
        assert float(series[f'autodeploy_hosts{{state="{state}"}}']) == want, series
    assert float(series['autodeploy_tasks{state="failed"}']) == db.tasks.count_documents(
        {"state": "failed"}), series
    assert float(series['autodeploy_services_waiting{platform="big"}']) == 1, series
    assert float(series['autodeploy_orders{state="awaiting_approval"}']) == 1, series
    print(f"screenshot {ARTIFACT}; test took {time.monotonic() - t0:.1f} s")
