"""Fault: the spool's disk is full (a 192 KiB tmpfs) while MongoDB is
down, or read-only (the tmpfs mounted ro before the master starts: a
mounted filesystem with the spool open for writing cannot be remounted ro).

Invariants:
- a clear error: the log names the spool and the OS's reason ("No space
  left on device": the engine holds the returns and counts spool_errors;
  "Read-only file system": the engine refuses to start, naming the spool);
- the master is not stalled: a real job (test.ping to a minion) completes
  meanwhile;
- nothing already accepted is lost: once MongoDB is back (full) or the disk
  writable (read-only), every return of the burst is stored, exactly once;
  for read-only, the engine that finally starts backfills them from the
  job cache.
"""
import signal
import subprocess
import time

import pytest

from faultlib import (CachedReturns, engine_conf, last_stats, log_text, start_env,
                      wait_for)

N = 2000
REASON = {"full": "No space left on device", "readonly": "Read-only file system"}


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "spoolfs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_spool_disk_full_is_clear_and_loses_nothing(salt_env, ferretdb, tmp_path, small_fs):
    conf = engine_conf(ferretdb, tmp_path, spool_dir=str(small_fs / "spool"),
                       returns_queue=200, queue_size=1000)
    env = start_env(salt_env, conf, minions=("m1",))
    coll = ferretdb.client()["autodeploy"]["returns"]
    last_stats(env, lambda st: st.get("backfill", {}).get("runs", 0) >= 1)
    ferretdb.proc.send_signal(signal.SIGKILL)
    ferretdb.proc.wait()
    ferretdb.proc = None

    rets = CachedReturns(env, minion="d1")
    rets.burst(N, rate=1000)
    st = last_stats(env, lambda st: st["returns"]["spool_errors"] >= 1, timeout=60)
    assert wait_for(lambda: REASON["full"] in log_text(env) and "holding" in log_text(env),
                    timeout=30), "no clear error naming the spool's disk"
    ping_s = ping(env)

    ferretdb.start()
    assert wait_for(lambda: coll.count_documents({"minion": "d1"}) == N, timeout=120), \
        f"{coll.count_documents({'minion': 'd1'})} of {N} stored"
    assert len(set(d["jid"] for d in coll.find({"minion": "d1"}, {"jid": 1}))) == N
    end = last_stats(env, lambda s: s["returns"]["queued"] == 0
                     and s["returns"]["spool_records"] == 0 and not s["returns"]["store_down"])
    print(f"\nspool full: {st['returns']['spool_errors']} refused batches while held; "
          f"test.ping answered in {ping_s:.1f} s meanwhile; end {end['returns']}; "
          f"bus {dict((k, end[k]) for k in ('queue_full', 'dropped'))}")
    rets.close()


def test_spool_disk_read_only_is_clear_and_loses_nothing(salt_env, ferretdb, tmp_path,
                                                         small_fs):
    (small_fs / "spool").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    conf = engine_conf(ferretdb, tmp_path, spool_dir=str(small_fs / "spool"))
    env = start_env(salt_env, conf, minions=("m1",))
    coll = ferretdb.client()["autodeploy"]["returns"]
    assert wait_for(lambda: REASON["readonly"] in log_text(env), timeout=30), \
        "no clear error naming the read-only spool"
    rets = CachedReturns(env, minion="d2")
    rets.burst(500, rate=1000)
    ping_s = ping(env)
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert wait_for(lambda: coll.count_documents({"minion": "d2"}) == 500, timeout=120), \
        f"{coll.count_documents({'minion': 'd2'})} of 500 stored"
    assert coll.count_documents({"minion": "d2", "backfilled": True}) == 500
    line = next(l for l in log_text(env).splitlines() if REASON["readonly"] in l)
    print(f"\nspool read-only: {line.split('] ', 1)[-1][:200]}; test.ping answered in "
          f"{ping_s:.1f} s meanwhile; 500 returns backfilled once the disk was writable")
    rets.close()


def ping(env):
    """A real job through the master; its duration."""
    t0 = time.monotonic()
    res = env.salt_raw("m1", "test.ping")
    assert res.returncode == 0 and '"m1": true' in res.stdout, res
    return time.monotonic() - t0
