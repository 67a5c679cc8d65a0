"""Fault: the salt-master is killed (SIGKILL, its whole process tree, the
engine with it) while jobs return, and started again.

Invariants:
- returns the master had written to its job cache but not yet published
  when it died (a return is cached first, then fired: salt/master.py
  AESFuncs._return) are reconciled from the job cache by the new engine,
  which says how many it backfilled;
- a real job that was running on the minion across the restart is stored
  (the minion resends its return to the new master);
- every return of the burst is stored exactly once.
"""
import os
import signal
import time

from faultlib import (CachedReturns, _tree, backfilled_counts, engine_conf, last_stats,
                      start_env, wait_for)


def test_master_killed_and_restarted_while_jobs_return(salt_env, ferretdb, tmp_path):
    env = start_env(salt_env, engine_conf(ferretdb, tmp_path), minions=("m1",))
    coll = ferretdb.client()["autodeploy"]["returns"]
    last_stats(env, lambda st: st.get("backfill", {}).get("runs", 0) >= 1)
    res = env.salt_raw("m1", "test.sleep", "6", cli_args=("--async",))
    sleep_jid = res.stdout.strip().split()[-1]
    assert sleep_jid.isdigit(), res

    rets = CachedReturns(env, minion="r1")
    rets.burst(500, rate=1000)
    rets.close()
    for pid in _tree(env.master_pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    env._master.proc.wait()  # pylint: disable=protected-access
    t_down = time.monotonic()
    # what the master cached but never published before it died
    unfired = [rets.one(fire=False) for _ in range(200)]
    env.start_master()
    down_s = time.monotonic() - t_down

    def all_stored():
        return coll.count_documents({"minion": "r1"}) == len(rets.jids)
    assert wait_for(all_stored, timeout=90), \
        f"{coll.count_documents({'minion': 'r1'})} of {len(rets.jids)} stored"
    assert coll.count_documents({"jid": {"$in": unfired}, "backfilled": True}) == len(unfired)
    assert wait_for(lambda: coll.find_one({"_id": f"{sleep_jid}/m1"}), timeout=90), \
        "the job running across the restart was not stored"
    assert len(set(d["jid"] for d in coll.find({"minion": "r1"}, {"jid": 1}))) == \
        len(rets.jids)
    counts = backfilled_counts(env)
    assert max(counts) >= len(unfired), counts
    print(f"\nmaster down {down_s:.1f} s; backfilled per start {counts}; "
          f"{len(rets.jids)} returns stored once; test.sleep {sleep_jid} stored")
