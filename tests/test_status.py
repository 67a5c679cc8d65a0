"""``salt-run autodeploy.status`` and the engine's health, on a real master + FerretDB.

- the engine publishes its status document every ``status_interval``; the runner
  shows every section (engine, bus, spool, returns, tasks, services with the
  reserve target, waiting, orders, last cycle, lease, notifier channels) through
  ``--out=json``, ``--out=yaml`` and ``--out=table``, with nothing else on stdout;
- the engine stopped, its heartbeat stale, or never seen: ``engine.state`` is
  ``down``, the message says which, and ``salt-run`` exits non-zero;
- with MongoDB down, ``salt-run autodeploy.tasks --out=json`` prints only JSON
  (libmongoc's own log goes through the library's handler, never to stdout);
- an engine entry with a bad value logs one ERROR line naming the key, no
  traceback, and is not restarted by Salt.
"""

import json
import re
import time
from pathlib import Path

import yaml

from saltenv import free_ports  # pylint: disable=import-error
from waiting import wait_for

SECTIONS = ("engine", "bus", "spool", "returns", "tasks", "services", "waiting", "orders",
            "cycle", "lease", "notify")


def status(env, *args, out="json"):
    res = env.run_cli("salt-run", ["autodeploy.status", f"--out={out}", *args])
    return res


def only_json(res):
    """stdout is one JSON document and nothing else (json.loads refuses extra lines)."""
    return json.loads(res.stdout)


def test_status_every_section_then_down(salt_env, ferretdb, tmp_path):
    (closed,) = free_ports(1)
    conf = {
        "mongo_uri": ferretdb.uri,
        "spool_dir": str(tmp_path / "spool"),
        "status_interval": 1,
        "placement": {"cycle_interval": 1},
        "notify": {"channels": [{"type": "webhook", "name": "ops",
                                 "url": f"http://127.0.0.1:{closed}/hook"}], "retries": 0},
    }
    env = salt_env(master_opts={"engines": [{"autodeploy": conf}]})
    db = ferretdb.client()["autodeploy"]
    db["tasks"].insert_one({"_id": "t1", "state": "running"})
    db["services"].insert_many([
        {"_id": "s1", "platform": "qq", "state": "waiting_resources"},
        {"_id": "s2", "platform": "qq", "state": "opened"},
    ])
    db["platforms"].insert_one({"_id": "qq", "enabled": True, "state": "open",
                                "reserve": {"min": 2, "max": 10}})
    db["orders"].insert_one({"_id": "o1", "state": "approved"})
    env.start_master()

    def up_with_cycle():
        res = status(env)
        ret = only_json(res)
        if ret["engine"]["state"] == "up" and ret["cycle"] and res.returncode == 0:
            return ret
        return None

    ret = wait_for(up_with_cycle, timeout=40)
    assert ret, status(env).stdout
    assert set(SECTIONS) <= set(ret), sorted(ret)
    assert ret["engine"]["master"] and "up" in ret["engine"]["message"]
    assert set(ret["bus"]) >= {"connected", "framing", "events_per_s", "matched", "dropped",
                               "queue_depth"}
    assert ret["bus"]["connected"] is True
    assert set(ret["spool"]) >= {"records", "bytes", "oldest"}
    assert ret["spool"]["records"] == 0 and ret["spool"]["oldest"] is None
    assert "stored" in ret["returns"]
    assert ret["tasks"] == {"running": 1}
    assert ret["services"]["qq"]["waiting_resources"] == 1
    assert ret["services"]["qq"]["opened"] == 1
    assert ret["services"]["qq"]["reserve_target"] >= 2, ret["services"]
    assert ret["waiting"] == 1
    assert ret["orders"] == {"approved": 1}
    assert "at" in ret["cycle"] and ("placed" in ret["cycle"] or "skipped" in ret["cycle"])
    assert ret["lease"] is None or "holder" in ret["lease"]
    (ops,) = ret["notify"]
    assert ops["name"] == "ops" and {"queue", "last_error", "last_error_at"} <= set(ops)

    ym = yaml.safe_load(status(env, out="yaml").stdout)
    assert set(SECTIONS) <= set(ym)
    table = status(env, out="table").stdout
    for word in ("engine:", "Reserve Target", "Waiting Resources", "Lease Holder",
                 "Last Error", "approved"):
        assert word in table, table

    env.stop_master()
    res = status(env)
    ret = only_json(res)
    assert ret["engine"]["state"] == "down" and "stopped at" in ret["engine"]["message"]
    assert res.returncode != 0

    # killed without a word: the heartbeat goes stale
    master_id = ret["engine"]["master"]
    db["engine_status"].update_one({"_id": master_id}, {"$set": {
        "state": "running", "heartbeat_ms": int(time.time() * 1000) - 60_000}})
    ret = only_json(status(env))
    assert ret["engine"]["state"] == "down" and "DOWN: no heartbeat for 6" in ret["engine"]["message"]

    db["engine_status"].delete_one({"_id": master_id})
    ret = only_json(status(env))
    assert ret["engine"]["state"] == "down" and "never reported" in ret["engine"]["message"]


def test_runner_json_only_with_mongodb_down(salt_env, tmp_path):
    (port,) = free_ports(1)
    conf = {"mongo_uri": f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=1500",
            "spool_dir": str(tmp_path / "spool")}
    env = salt_env(master_opts={"engines": [{"autodeploy": conf}]})
    env.start_master()
    res = env.run_cli("salt-run", ["autodeploy.tasks", "--out=json"])
    ret = json.loads(res.stdout)  # fails on any stray line (libmongoc's "monitor: ...")
    assert isinstance(ret, dict), res
    assert ret["retcode"] == 1 and ret["code"] == "AD_ECONNECT", ret
    assert res.returncode != 0
    res = env.run_cli("salt-run", ["autodeploy.status", "--out=json"])
    assert json.loads(res.stdout)["code"] == "AD_ECONNECT"


def test_bad_engine_config_one_line_no_restart(salt_env):
    env = salt_env(master_opts={"engines": [{"autodeploy": {"workers": "many"}}]})
    env.start_master()
    marker = "autodeploy engine not started: bad configuration"

    def lines():
        return [l for l in env.master_log.read_text(errors="replace").splitlines() if marker in l]

    first = wait_for(lines, timeout=20)
    assert first and "workers" in first[0] and "[ERROR" in first[0], first
    # the engine process that logged it (Salt's log format has the pid) stays,
    # idle: Salt restarts only an engine whose process ended
    pid = int(re.search(r"\[ERROR\s*\]\[(\d+)\]", first[0]).group(1))
    assert Path(f"/proc/{pid}").exists() and pid != env._master.proc.pid, first
    time.sleep(22)  # the wait is the point: Salt restarts a dead engine within ~10 s
    log = env.master_log.read_text(errors="replace")
    assert Path(f"/proc/{pid}").exists(), "the idle engine process ended"
    assert len(lines()) == 1, lines()
    assert "Traceback" not in log
    assert env.master_running()
