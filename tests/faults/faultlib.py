"""Helpers shared by the fault-injection suite (tests/faults/).

Each test there states its fault and its invariant in its docstring, and
asserts on counts: documents in the store, the engine's own counters (its
stats line, logged every stats_interval) and its log lines. Never "sleep,
then nothing changed": every wait is for positive evidence.

Job returns at volume without thousands of minions: `CachedReturns` does
what the master does for an authenticated return (salt/master.py
AESFuncs._return -> local_cache.returner, then the event): it writes the
job to Salt's local job cache (jid, .load.p, <minion>/return.p, with Salt's
own jid_dir and payload code) and fires salt/job/<jid>/ret/<minion> on the
master bus. A return fired without the cache write (as bench/ does) is not
a real return: nothing can reconcile it after a crash, and task decisions
refuse it (store/jobcache.h).
"""
import json
import os
import re
import signal
import time
from pathlib import Path

from waiting import wait_for


def engine_conf(ferretdb, tmp_path, **extra):
    conf = {
        "mongo_uri": ferretdb.uri,
        "spool_dir": str(tmp_path / "spool"),
        "batch_ms": 20,
        "store_retry_ms": 200,
        "stats_interval": 1,
        "reconnect_max_ms": 500,
        "backfill_margin_s": 30,
    }
    conf.update(extra)
    return conf


def start_env(salt_env, conf, minions=(), master_env=None, **master_opts):
    """A master running the engine with `conf` (`master_env`: more environment
    for its processes), and `minions` accepted."""
    env = salt_env(master_opts={"engines": [{"autodeploy": conf}], **master_opts})
    env.start_master(env=master_env)
    for m in minions:
        env.start_minion(m)
    for m in minions:
        env.wait_for_minion(m)
    return env


def log_text(env):
    return env.master_log.read_text(errors="replace")


def stats_lines(env):
    out = []
    for line in log_text(env).splitlines():
        i = line.find("stats {")
        if i >= 0:
            try:
                out.append(json.loads(line[i + 6:]))
            except ValueError:
                pass
    return out


def last_stats(env, pred=lambda st: True, timeout=30):
    def find():
        for st in reversed(stats_lines(env)):
            if pred(st):
                return st
        return None
    st = wait_for(find, timeout=timeout)
    assert st, f"no engine stats line as expected; the last: {stats_lines(env)[-1:]}"
    return st


def backfilled_counts(env):
    """The N of every 'backfilled N returns from the job cache' line."""
    return [int(n) for n in re.findall(r"backfilled (\d+) returns from the job cache",
                                       log_text(env))]


# ---- the engine process ------------------------------------------------------

def _children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d.name))
    return out


def _tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(_children(p))
    return seen


def engine_pids(env):
    """The master's process that runs the autodeploy engine, as a list (empty
    while there is none). The shim logs "autodeploy engine starting (pid N"
    in the engine process; N must be alive, in the master's process tree and
    map libautodeploy. Not the process title: Salt titles the first engine
    process "Engine(salt.loaded.ext.engines.autodeploy)" but one its
    ProcessManager restarts only "Engine", and processes forked after the
    loader imported the shim (the reactor's) map the library too."""
    logged = re.findall(r"autodeploy engine starting \(pid (\d+)", log_text(env))
    if not logged:
        return []
    pid = int(logged[-1])
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    return [pid] if "libautodeploy" in maps and pid in _tree(env.master_pid) else []


def kill_engine(env):
    """SIGKILL the engine process; its pid."""
    pids = wait_for(lambda: engine_pids(env), timeout=20)
    assert len(pids) == 1, f"engine processes: {pids}"
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def wait_engine_restarted(env, old_pid, timeout=60):
    pids = wait_for(lambda: [p for p in engine_pids(env) if p != old_pid], timeout=timeout)
    assert pids, "Salt did not restart the engine"
    return pids[0]


# ---- returns that the master authenticated -------------------------------------

class CachedReturns:
    """Write returns to the master's local job cache as local_cache does,
    and fire their events on the master bus. `jids` lists every jid made."""

    def __init__(self, env, minion="m1", fun="test.ping", metadata=None):
        import salt.payload  # pylint: disable=import-outside-toplevel
        import salt.utils.event  # pylint: disable=import-outside-toplevel
        import salt.utils.jid  # pylint: disable=import-outside-toplevel
        self._payload = salt.payload
        self._jid_dir = salt.utils.jid.jid_dir
        self.opts = dict(env.master_opts)
        self.job_dir = os.path.join(self.opts["cachedir"], "jobs")
        self.hash_type = self.opts.get("hash_type", "sha256")
        self.minion = minion
        self.fun = fun
        self.metadata = metadata
        self.bus = salt.utils.event.get_master_event(self.opts, self.opts["sock_dir"],
                                                     listen=False)
        self.jids = []
        self.fired = 0

    _seq = 0  # shared by every instance: jids never collide within a run

    def new_jid(self):
        CachedReturns._seq += 1
        return time.strftime("%Y%m%d%H%M%S") + f"{CachedReturns._seq % 1000000:06d}"

    def cache(self, jid, minion, ret, retcode=0):
        d = self._jid_dir(jid, self.job_dir, self.hash_type)
        os.makedirs(os.path.join(d, minion), exist_ok=True)
        load = {"fun": self.fun, "arg": [], "tgt": minion, "tgt_type": "glob", "jid": jid,
                "user": "root"}
        if self.metadata:
            load["metadata"] = self.metadata
        if not os.path.exists(os.path.join(d, "jid")):
            with open(os.path.join(d, "jid"), "w", encoding="utf-8") as f:
                f.write(jid)
            with open(os.path.join(d, ".load.p"), "wb") as f:
                self._payload.dump(load, f)
        with open(os.path.join(d, minion, "return.p"), "wb") as f:
            self._payload.dump({"return": ret, "retcode": retcode, "success": retcode == 0}, f)

    def one(self, fire=True):
        jid = self.new_jid()
        self.cache(jid, self.minion, True)
        self.jids.append(jid)
        if fire:
            data = {"jid": jid, "id": self.minion, "fun": self.fun, "fun_args": [],
                    "return": True, "retcode": 0, "success": True, "cmd": "_return",
                    "_stamp": "2026-01-01T00:00:00.000000"}
            if self.metadata:
                data["metadata"] = self.metadata
            if self.bus.fire_event(data, f"salt/job/{jid}/ret/{self.minion}"):
                self.fired += 1
        return jid

    def burst(self, n, rate=None, during=None):
        """n returns, at `rate` per second if given; `during(i)` is called
        before return i (to inject the fault mid-stream)."""
        t0 = time.monotonic()
        for i in range(n):
            if during:
                during(i)
            self.one()
            if rate:
                ahead = t0 + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def close(self):
        self.bus.destroy()
