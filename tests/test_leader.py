"""Two real masters, one FerretDB, one leader (docs/reliability.md#several-masters).

Masters A and B run side by side on one machine (127.0.0.1 and 127.0.0.2 with
the same ports, as two hosts would; their own sock dirs, caches and pki; one
master key pair, as Salt multi-master requires) with the autodeploy
engine each, on one MongoDB. Minion m1 is configured for both
(``master: [A, B]``). One test walks the whole story, because each step
starts where the last one left the lease:

1. one leader is elected: ``leader.get`` names it (term 1); only its
   periodic loops run (its ``passes`` grow, the follower's stay 0 while its
   ``skipped`` grow);
2. a job return that both masters see (the same ``salt/job/<jid>/ret/m1``
   event on both buses) is stored once, and real jobs published by each
   master are stored;
3. a paused leader is fenced: its engine process is stopped (SIGSTOP) past
   the lease, the follower takes over (term 2); on SIGCONT the old leader's
   periodic pass is refused (``fenced`` counted, "refused ... lapsed" in its
   log) and its renewal is refused by the store (``lost``, "term 1 lost");
4. the leader's master dies (SIGKILL to its process group): the other
   engine leads again within leader_lease_s + leader_skew_ms (+ one retry
   period), with a new term;
5. no duplicate alert or task: a deploy task that outlives its timeout is
   timed out by the new leader's watchdog once and alerted once, and exactly
   one task exists for it;
6. the daily purchase runs on the leader only (the follower's ``runs`` stay
   0), once a day across engines (the ``purchase_runs`` claim), and a rerun
   by the new leader after the failover counts today's order as pending (0
   hosts to order): one order.

Evidence is the engines' stats lines (stats_interval 1) and log lines, never
a sleep followed by "nothing changed". Takes about 60 s.
"""
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pymongo
import pytest

from test_tasks import Alerts, Caller, REACTOR_KILL, REACTOR_RUN, STATES
from waiting import wait_for

LEASE_S = 3
SKEW_MS = 300
STATS = re.compile(r"stats (\{.*\})\s*$")
PROFILE = "aliyun:cn-hangzhou:lp"
PLACEMENT = {"cycle_interval": 86400, "headroom": 0.8}
# the daily run at 00:00 UTC: due at once, so each engine would run it when it
# leads; the day's claim (purchase_runs) and the order id keep it to one
PURCHASE = {"time": "00:00", "timezone": "UTC", "drive_interval_s": 1,
            "profiles": {PROFILE: {"flavour": "ecs.c7.xlarge", "cpu": 4, "mem_mb": 8192,
                                   "disk_gb": 50}},
            "approval": {"required": True, "timeout_h": 24}}


def last_stats(env):
    """The engine's last stats line in this master's log ({} before the first)."""
    last = {}
    try:
        text = env.master_log.read_text(errors="replace")
    except FileNotFoundError:
        return last
    for line in text.splitlines():
        m = STATS.search(line)
        if m:
            try:
                last = json.loads(m.group(1))
            except ValueError:
                pass
    return last


def leader_stats(env):
    return last_stats(env).get("leader", {})


def engine_pid(holder):
    """The engine's pid from a holder name "host:pid"."""
    return int(holder.rsplit(":", 1)[1])


def log_has(env, text):
    try:
        return text in env.master_log.read_text(errors="replace")
    except FileNotFoundError:
        return False


@pytest.fixture
def two_masters(salt_env, ferretdb, ad_lib, tmp_path):
    alerts = Alerts()

    def engine(name):
        return {"mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / f"spool-{name}"),
                "batch_ms": 20, "watchdog_interval": 1, "stats_interval": 1,
                "leader_lease_s": LEASE_S, "leader_skew_ms": SKEW_MS,
                "placement": PLACEMENT, "purchase": PURCHASE,
                "notify": {"channels": [{"type": "webhook", "url": alerts.url}],
                           "timeout_ms": 2000, "retries": 1}}

    def opts(name):
        return {"id": f"master-{name}", "engines": [{"autodeploy": engine(name)}],
                "reactor": [{"autodeploy/task/*/run": [str(REACTOR_RUN)]},
                            {"autodeploy/task/*/kill": [str(REACTOR_KILL)]}],
                "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]}}

    # Production runs each master on its own host with the same ports (the
    # minion has one master_port and one publish_port for all its masters):
    # here two loopback addresses, 127.0.0.1 and 127.0.0.2, same ports.
    a = salt_env(master_opts=opts("a"))
    b = salt_env(master_opts=opts("b"), host="127.0.0.2")
    b.ports = dict(a.ports)
    b.update_master_opts({})
    a.start_master()
    # Salt multi-master: the masters share one key pair, or the minion
    # refuses the second ("master key has changed")
    pki_b = Path(b.master_opts["pki_dir"])
    pki_b.mkdir(parents=True, exist_ok=True)
    for f in ("master.pem", "master.pub"):
        shutil.copy(Path(a.master_opts["pki_dir"]) / f, pki_b / f)
    b.start_master()
    a.start_minion("m1", extra={"master": [a.host, b.host]})
    a.wait_for_minion("m1", timeout=90)
    b.wait_for_minion("m1", timeout=90)
    import ctypes

    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]

    def caller(env):
        return Caller(lib, {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
                            "leader_lease_s": LEASE_S, "placement": PLACEMENT,
                            "master_key_path": str(Path(env.master_opts["cachedir"]) / ".root_key")})

    db = pymongo.MongoClient(ferretdb.uri)["autodeploy"]
    try:
        yield a, b, caller, db, alerts
    finally:
        alerts.srv.shutdown()


def fire_return(env, jid, minion):
    """What minion sends for a test.ping of `jid`, put on env's master bus."""
    import salt.utils.event

    bus = salt.utils.event.get_master_event(env.master_opts, env.master_opts["sock_dir"],
                                            listen=False)
    try:
        bus.fire_event({"jid": jid, "id": minion, "fun": "test.ping", "fun_args": [],
                        "return": True, "retcode": 0, "success": True, "cmd": "_return"},
                       f"salt/job/{jid}/ret/{minion}")
    finally:
        bus.destroy()


def which(a, b, holder):
    """The env whose engine is `holder` (its log says it was elected)."""
    for env in (a, b):
        if log_has(env, f"leader lease: {holder} holds it"):
            return env
    raise AssertionError(f"no master logged {holder} as elected")


def test_one_leader_failover_and_fencing(two_masters):
    a, b, caller, db, alerts = two_masters
    call = caller(a)

    # 1. one leader; only its loops run
    doc = wait_for(lambda: (lambda d: d if d.get("holder") else None)(call("leader.get")),
                   "a leader", timeout=20)
    assert doc["term"] == 1 and doc["expired"] is False and doc["lease_s"] == LEASE_S
    lead = which(a, b, doc["holder"])
    follow = b if lead is a else a
    wait_for(lambda: leader_stats(lead).get("passes", 0) >= 3
             and leader_stats(follow).get("skipped", 0) >= 3, "passes on the leader, "
             "skips on the follower")
    assert leader_stats(follow)["passes"] == 0, leader_stats(follow)
    assert leader_stats(lead)["held"] is True and leader_stats(follow)["held"] is False

    # 2. a return seen by both masters is stored once; each master's own job too
    jid = "20261204000000123456"
    fire_return(a, jid, "m1")
    fire_return(b, jid, "m1")
    wait_for(lambda: last_stats(a).get("returns", {}).get("received", 0) >= 1
             and last_stats(b).get("returns", {}).get("received", 0) >= 1,
             "both engines received the return")
    wait_for(lambda: db.returns.count_documents({"_id": f"{jid}/m1"}) == 1, "the return stored")
    assert db.returns.count_documents({"jid": jid}) == 1
    for env in (a, b):
        res = env.salt_raw("m1", "test.ping", cli_args=("--show-jid",))
        jid_env = re.search(r"(\d{20})", res.stdout).group(1)
        wait_for(lambda: db.returns.count_documents({"_id": f"{jid_env}/m1"}) == 1,
                 f"the return of the job published by {env.master_opts['id']}")
    assert db.returns.count_documents({"jid": jid}) == 1  # still once, after both stored

    # 2b. the daily purchase runs on the leader only, once a day for both
    #     engines: its first run (at start, nothing waited) claimed the day;
    #     the claim removed, as if the day had not run, the leader runs it again
    call("platform.set", code="lp", state="autodeploy.test.ok", profiles=[PROFILE],
         footprint={"cpu": 1.5, "mem_mb": 1024}, reserve={"min": 3, "max": 3})
    call("cycle.run")
    wait_for(lambda: db.services.count_documents({"platform": "lp",
                                                  "state": "waiting_resources"}) == 3,
             "three services waiting")
    wait_for(lambda: db.purchase_runs.count_documents({}) == 1, "the day claimed at start")
    db.purchase_runs.delete_many({})
    order = wait_for(lambda: db.orders.find_one({"profile": PROFILE}), "the day's order")
    assert order["count"] == 2 and db.orders.count_documents({}) == 1, order  # 2 per 3.2 cores
    wait_for(lambda: last_stats(lead).get("purchase", {}).get("planned", 0) == 1,
             "the leader's planned count")
    assert last_stats(follow)["purchase"]["runs"] == 0, last_stats(follow)["purchase"]
    assert db.purchase_runs.count_documents({}) == 1

    # 3. the leader paused past its lease: the follower takes over; the old
    #    leader's late pass and its renewal are refused
    old = doc["holder"]
    pid = engine_pid(old)
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        doc2 = wait_for(lambda: (lambda d: d if d.get("term") == 2 else None)(call("leader.get")),
                        "the follower's takeover", timeout=LEASE_S + SKEW_MS / 1000 + 10)
        took = time.monotonic() - t0
        assert doc2["holder"] != old
        assert which(a, b, doc2["holder"]) is follow
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: leader_stats(lead).get("fenced", 0) >= 1 and
             leader_stats(lead).get("lost", 0) >= 1, "the old leader fenced and its renewal refused")
    assert log_has(lead, "lapsed") and log_has(lead, "term 1 lost")
    assert call("leader.get")["holder"] == doc2["holder"]  # the store kept the new term's document
    print(f"takeover after SIGSTOP: {took:.1f} s (lease {LEASE_S} s + skew {SKEW_MS} ms)")

    # 4. the leader's master dies: the other leads again within the lease time
    new_lead, survivor = follow, lead
    killed_pid = engine_pid(doc2["holder"])
    t0 = time.monotonic()
    os.killpg(new_lead.master_pid, signal.SIGKILL)
    try:
        os.kill(killed_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    new_lead._master = None  # pylint: disable=protected-access
    call = caller(survivor)
    doc3 = wait_for(lambda: (lambda d: d if d.get("term") == 3 else None)(call("leader.get")),
                    "a takeover after the master's death", timeout=LEASE_S * 4)
    took = time.monotonic() - t0
    assert engine_pid(doc3["holder"]) != killed_pid
    assert took <= LEASE_S + SKEW_MS / 1000 + LEASE_S / 5 + 1.5, took
    print(f"takeover after SIGKILL of the leader's master: {took:.1f} s")

    # 5. no duplicate task or alert: one task, timed out and alerted once
    t = call("task.deploy", tgt="m1", mods="autodeploy.test.sleep", timeout=3,
             pillar={"autodeploy": {"test": {"seconds": 60}}}, created_by="leader-test")["task"]
    timed = call.wait_state(t["_id"], {"timed_out"}, timeout=40)
    assert [h["actor"] for h in timed["history"] if h.get("to") == "timed_out"] == ["watchdog"]
    wait_for(lambda: any(t["_id"] in x.get("title", "") and "timed_out" in x.get("title", "")
                         for x in alerts.got), "the timed_out alert")
    wait_for(lambda: leader_stats(survivor).get("passes", 0) > 0, "the survivor's passes")
    n = sum(1 for x in alerts.got if t["_id"] in x.get("title", "") and "timed_out" in x.get("title", ""))
    assert n == 1, alerts.got
    assert db.tasks.count_documents({"created_by": "leader-test"}) == 1

    # 6. the new leader runs the day again (its claim removed): today's order
    #    is pending (its hosts not arrived), so the plan has 0 hosts to order
    def day_runs():
        return survivor.master_log.read_text(errors="replace").count(": 0 hosts to order")

    before, runs = day_runs(), last_stats(survivor).get("purchase", {}).get("runs", 0)
    db.purchase_runs.delete_many({})
    wait_for(lambda: db.purchase_runs.count_documents({}) == 1, "the survivor's run of the day")
    wait_for(lambda: last_stats(survivor)["purchase"]["runs"] > runs, "the run counted")
    wait_for(lambda: day_runs() > before, "its log line: 0 hosts to order")
    (only,) = list(db.orders.find({}))
    assert only["_id"] == order["_id"] and only["count"] == 2, only
