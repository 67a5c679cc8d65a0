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


def test_task_step_returned_while_engine_dead_completes(salt_env, ferretdb, ad_lib, tmp_path):
    """Fault: the engine is frozen (SIGSTOP), then a task's step is started
    (by salt-run's side, as an operator would): the job's
    salt/job/<jid>/new and the minion's return both reach the master (the
    job cache has the job's minions and the return, the events sit unread
    in the frozen engine's socket), then the engine is killed (SIGKILL: the
    unread events die with it). Invariant: the restarted engine backfills
    the return, learns the job's minions from the job cache, and the task
    moves on to succeeded; it is not left running (nor timed out by the
    watchdog). Red before the minions were read from the job cache: the
    task stayed running with no minions known."""
    import ctypes  # pylint: disable=import-outside-toplevel
    import json  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel
    import signal  # pylint: disable=import-outside-toplevel

    import salt.utils.jid  # pylint: disable=import-outside-toplevel
    from test_tasks import REACTOR_KILL, REACTOR_RUN, STATES, Caller  # noqa: E402

    from faultlib import engine_pids  # pylint: disable=import-outside-toplevel

    conf = engine_conf(ferretdb, tmp_path, watchdog_interval=1)
    env = start_env(salt_env, conf, minions=("m1",),
                    reactor=[{"autodeploy/task/*/run": [str(REACTOR_RUN)]},
                             {"autodeploy/task/*/kill": [str(REACTOR_KILL)]}],
                    file_roots={"base": [str(tmp_path / "srv-unused"), str(STATES)]})
    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    call = Caller(lib, {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
                        "master_key_path": os.path.join(env.master_opts["cachedir"],
                                                        ".root_key")})
    last_stats(env, lambda st: st.get("backfill", {}).get("runs", 0) >= 1)
    pid = wait_for(lambda: engine_pids(env), timeout=20)[0]
    os.kill(pid, signal.SIGSTOP)
    t = call("task.deploy", tgt="m1", mods="autodeploy.test.sleep", timeout=120,
             pillar={"autodeploy": {"test": {"seconds": 4}}}, created_by="faults")["task"]
    running = call.wait_state(t["_id"], ("running",), timeout=60)
    jid = running["jid"]
    ret = os.path.join(salt.utils.jid.jid_dir(jid, os.path.join(env.master_opts["cachedir"],
                                                                 "jobs"), "sha256"),
                       "m1", "return.p")
    try:
        assert wait_for(lambda: os.path.exists(ret), timeout=60), \
            "the step's return never reached the master's job cache"
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_engine_restarted(env, pid)
    done = call.wait_state(t["_id"], ("succeeded", "failed", "timed_out"), timeout=60)
    assert done["state"] == "succeeded", json.dumps(done["history"], indent=1)
    assert done["minions"] == ["m1"], done
    assert f"the minions of job {jid} read from the master's job cache" in log_text(env)
    st = last_stats(env, lambda s: s.get("tasks", {}).get("settled_from_store", 0) >= 1)
    assert st["backfill"]["task_returns"] >= 1, st["backfill"]
    print(f"\ntask {t['_id']}: return written while the engine was frozen then killed; "
          f"backfill {st['backfill']}, settled {st['tasks']['settled_from_store']}")
