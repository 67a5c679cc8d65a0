"""Fault: the engine process is killed with SIGKILL mid-stream.

Invariants:
- Salt restarts the engine; the new engine says in its log that the
  previous one did not stop cleanly, and how many returns it backfilled
  from the job cache;
- every return the master authenticated while the engine was dead, or
  still in its memory when it died, is stored: the count of documents of
  the burst equals the returns written, each exactly once (inserts keyed
  by jid/minion);
- a real job run by a real minion while the engine is dead is stored too.
"""
import threading
import time

from faultlib import (CachedReturns, backfilled_counts, engine_conf, kill_engine, last_stats,
                      log_text, start_env, wait_engine_restarted, wait_for)


def test_engine_sigkill_mid_stream_loses_nothing(salt_env, ferretdb, tmp_path):
    env = start_env(salt_env, engine_conf(ferretdb, tmp_path), minions=("m1",))
    coll = ferretdb.client()["autodeploy"]["returns"]
    last_stats(env, lambda st: st.get("backfill", {}).get("runs", 0) >= 1)
    rets = CachedReturns(env, minion="g1")
    killed = {}

    def during(i):
        if i == 1000:  # mid-stream: returns are in flight and in memory
            killed["pid"] = kill_engine(env)
            killed["at"] = time.monotonic()
            # a real job while nobody listens: its return is in the job cache only
            killed["job"] = threading.Thread(target=real_job)
            killed["job"].start()

    def real_job():
        res = env.salt_raw("m1", "test.ping", cli_args=("--show-jid",))
        killed["jid"] = next(l.split(":", 1)[1].strip() for l in res.stdout.splitlines()
                             if l.startswith("jid:"))

    rets.burst(3000, rate=1000, during=during)
    killed["job"].join()
    n = len(rets.jids)
    new_pid = wait_engine_restarted(env, killed["pid"])
    restart_s = time.monotonic() - killed["at"]

    def burst_stored():
        return coll.count_documents({"minion": "g1"}) == n
    assert wait_for(burst_stored, timeout=90), \
        f"{coll.count_documents({'minion': 'g1'})} of {n} stored"
    assert wait_for(lambda: coll.find_one({"_id": f"{killed['jid']}/m1"}), timeout=30), \
        "the real job's return written while the engine was dead was not stored"
    # exactly once: one document per jid of the burst
    jids = set(d["jid"] for d in coll.find({"minion": "g1"}, {"jid": 1}))
    assert jids == set(rets.jids)
    log = log_text(env)
    assert "did not stop cleanly" in log
    backfilled = backfilled_counts(env)
    assert sum(backfilled) >= 1, backfilled
    missed = coll.count_documents({"minion": {"$in": ["g1", "m1"]}, "backfilled": True})
    st = last_stats(env, lambda st: st.get("backfill", {}).get("runs", 0) >= 1
                    and st["backfill"]["backfilled"] >= 1)
    print(f"\nengine {killed['pid']} killed after 1000 of {n} returns; Salt restarted it as "
          f"{new_pid} within {restart_s:.1f} s; backfilled {backfilled} "
          f"({missed} documents marked backfilled); stats {st['backfill']}")
    rets.close()
