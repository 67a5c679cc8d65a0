"""Job returns into MongoDB (FerretDB) through the engine, on a real master.

- every return of test.ping and state.apply is stored once, keyed jid/minion,
  with retcode and, for state runs, the summary (ok/changed/failed, the
  failed ids with comments, duration);
- dotted and $ keys are stored escaped and read back intact;
- FerretDB stopped while jobs return, then restarted: every return is stored
  exactly once (spooled, replayed in order, spool emptied).
"""
import json
import urllib.parse

import pytest

from waiting import wait_for

STATE = """
dotted.conf:
  test.succeed_with_changes:
    - name: /etc/game/dotted.conf
price$tag:
  test.succeed_without_changes
will-fail:
  test.fail_without_changes:
    - comment: this state fails on purpose
"""


def unescape(key):
    return urllib.parse.unquote(key)


def engine_env(salt_env, ferretdb, tmp_path, **extra):
    conf = {
        "mongo_uri": ferretdb.uri,
        "spool_dir": str(tmp_path / "spool"),
        "batch_ms": 20,
        "store_retry_ms": 200,
        "stats_interval": 1,
    }
    conf.update(extra)
    env = salt_env(master_opts={"engines": [{"autodeploy": conf}]})
    env.start_master()
    env.start_minion("m1")
    env.wait_for_minion("m1")
    env.write_state("ad_returns.sls", STATE)
    return env


def job_jid(env, *args):
    res = env.salt_raw("m1", *args, cli_args=("--show-jid",))
    for line in res.stdout.splitlines():
        if line.startswith("jid:"):
            return line.split(":", 1)[1].strip(), res
    raise AssertionError(f"no jid in {res.stdout!r}")


def last_stats(env, pred=lambda st: True, timeout=15):
    """The engine's newest stats line (logged every stats_interval) that
    satisfies `pred`, as a dict; the counters are the evidence that each
    return was received, stored, spooled or replayed exactly as often as
    claimed (a count of documents cannot show it: _id is jid/minion)."""
    def find():
        for line in reversed(env.master_log.read_text(errors="replace").splitlines()):
            i = line.find("stats {")
            if i >= 0:
                st = json.loads(line[i + 6:])
                return st if "returns" in st and pred(st) else None
        return None
    st = wait_for(find, timeout=timeout)
    if not st:
        lines = [l for l in env.master_log.read_text(errors="replace").splitlines()
                 if "stats {" in l]
        raise AssertionError(f"no engine stats line as expected; the last: {lines[-1:]}")
    return st


def test_returns_stored_with_summary_and_escaped_keys(salt_env, ferretdb, tmp_path):
    env = engine_env(salt_env, ferretdb, tmp_path)
    coll = ferretdb.client()["autodeploy"]["returns"]
    ping_jid, _ = job_jid(env, "test.ping")
    state_jid, res = job_jid(env, "state.apply", "ad_returns")
    assert res.returncode != 0  # one state fails on purpose

    ping = wait_for(lambda: coll.find_one({"_id": f"{ping_jid}/m1"}))
    assert ping, "test.ping return not stored"
    assert ping["jid"] == ping_jid and ping["minion"] == "m1"
    assert ping["fun"] == "test.ping" and ping["return"] is True
    assert ping["retcode"] == 0

    doc = wait_for(lambda: coll.find_one({"_id": f"{state_jid}/m1"}))
    assert doc, "state.apply return not stored"
    assert doc["retcode"] == 2
    summary = doc["summary"]
    assert summary["total"] == 3 and summary["failed"] == 1 and summary["ok"] == 2
    assert summary["changed"] == 1
    assert summary["failed_states"][0]["comment"] == "this state fails on purpose"
    assert "will-fail" in unescape(summary["failed_states"][0]["id"])
    assert summary["duration_ms"] >= 0
    # keys with '.' and '$' are escaped, and unescape to Salt's own ids
    stored_ids = {unescape(k) for k in doc["return"]}
    assert any("/etc/game/dotted.conf" in k for k in stored_ids)
    assert any("price$tag" in k for k in stored_ids)
    assert all("." not in k and not k.startswith("$") for k in doc["return"])
    # each return received once and stored once: as many events as documents
    # (the harness's own test.ping included)
    n = coll.count_documents({})
    st = last_stats(env, lambda st: st["returns"]["stored"] >= n)["returns"]
    assert st["received"] == n and st["stored"] == n and n >= 2, (st, n)
    assert st["spooled"] == 0 and st["rejected"] == 0 and st["bad"] == 0, st


def test_store_outage_loses_nothing(salt_env, ferretdb, tmp_path):
    env = engine_env(salt_env, ferretdb, tmp_path)
    coll = ferretdb.client()["autodeploy"]["returns"]
    before, _ = job_jid(env, "test.ping")
    assert wait_for(lambda: coll.find_one({"_id": f"{before}/m1"}))

    ferretdb.stop()
    jids = [job_jid(env, "test.ping")[0] for _ in range(4)]
    jids.append(job_jid(env, "state.apply", "ad_returns")[0])
    spool = tmp_path / "spool" / "returns.spool"
    assert wait_for(lambda: spool.exists() and spool.stat().st_size > 0, timeout=20), \
        "returns were not spooled while FerretDB was down"

    ferretdb.start()
    def all_there():
        return all(coll.count_documents({"_id": f"{j}/m1"}) == 1 for j in jids)
    assert wait_for(all_there, timeout=30), "spooled returns not replayed"
    assert wait_for(lambda: spool.stat().st_size == 0, timeout=10)
    # exactly once: every return received is one document; what was spooled
    # (the outage's returns that met the store down) was replayed once each,
    # none rejected
    st = last_stats(env, lambda st: st["returns"]["spool_records"] == 0
                    and st["returns"]["replayed"] == st["returns"]["spooled"] >= 1)["returns"]
    assert 1 <= st["spooled"] <= 5, st
    assert st["rejected"] == 0 and st["bad"] == 0, st
    assert st["received"] == coll.count_documents({}), st
    # replayed in the order they were spooled: FerretDB (SQLite) returns a
    # collection in insertion order when no sort is given
    natural = [d["jid"] for d in coll.find({"jid": {"$in": jids}}, {"jid": 1})]
    assert natural == jids, (natural, jids)
    log = env.master_log.read_text(errors="replace")
    assert "spooling returns" in log and "replayed" in log
