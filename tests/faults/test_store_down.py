"""Fault: the store (FerretDB) is killed (SIGKILL) during a burst of 10,000
job returns, and restarted.

Invariants:
- all 10,000 are stored exactly once: 10,000 documents of the burst, and
  the engine's counters agree (received == stored + spooled-then-replayed,
  nothing rejected, the spool empty at the end);
- the engine said the store was unreachable and that it replayed the spool.
"""
import signal

from faultlib import CachedReturns, engine_conf, last_stats, log_text, start_env, wait_for

N = 10000


def test_store_killed_during_burst_stores_each_return_once(salt_env, ferretdb, tmp_path):
    env = start_env(salt_env, engine_conf(ferretdb, tmp_path))
    coll = ferretdb.client()["autodeploy"]["returns"]
    rets = CachedReturns(env, minion="s1")

    def during(i):
        if i == 3000:
            ferretdb.proc.send_signal(signal.SIGKILL)
            ferretdb.proc.wait()
            ferretdb.proc = None
        if i == 7000:
            ferretdb.start()

    rets.burst(N, rate=2000, during=during)
    assert rets.fired == N
    assert wait_for(lambda: coll.count_documents({"minion": "s1"}) == N, timeout=120), \
        f"{coll.count_documents({'minion': 's1'})} of {N} stored"
    st = last_stats(env, lambda st: st["returns"]["stored"] + st["returns"]["replayed"] >= N
                    and st["returns"]["spool_records"] == 0 and st["returns"]["queued"] == 0)
    r = st["returns"]
    assert r["received"] == N, r
    assert r["spooled"] >= 1 and r["replayed"] == r["spooled"], r
    assert r["rejected"] == 0 and r["bad"] == 0, r
    # exactly once: every jid of the burst is one document
    assert len(set(d["jid"] for d in coll.find({"minion": "s1"}, {"jid": 1}))) == N
    log = log_text(env)
    assert "MongoDB unreachable" in log and "spooled returns replayed" in log
    print(f"\n{N} returns, FerretDB SIGKILLed after 3000 and back after 7000: {r}")
    rets.close()
