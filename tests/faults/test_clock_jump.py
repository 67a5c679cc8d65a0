"""Fault: the master's wall clock is stepped forward or back (an operator's
`date -s`, NTP stepping after a long drift, a VM restored from a snapshot)
while deploy steps run and the daily purchase waits for its time.

The salt-master (and so the engine inside it) runs under libfaketime with
an offset read from a file the test rewrites; `FAKETIME_DONT_FAKE_MONOTONIC`
leaves CLOCK_MONOTONIC and CLOCK_BOOTTIME alone, as a real step does. The
minion, FerretDB and this process keep the real clock.

Invariants (one test each):
- set forward an hour while a step runs: the step keeps its own timeout,
  it is not timed out, killed or alerted; the engine logs the step and
  counts it, and the task's deadline moved with the clock;
- set back while a step with a short timeout runs: it still times out at
  about its own timeout (not an hour late), is killed and alerted;
- the daily purchase at HH:MM runs once in a day whose clock passes HH:MM,
  is set back before it and passes it again.
"""
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from faultlib import engine_conf, last_stats, log_text, start_env, wait_for

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
pytestmark = pytest.mark.skipif(not LIBFAKETIME.exists(),
                                reason="libfaketime is not installed (apt-get install libfaketime)")


class FakeClock:
    """The master's clock offset from the real one, in a file libfaketime
    reads at most every second."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "faketime.rc"
        self.set(0)

    def set(self, seconds):
        tmp = self.path.with_suffix(".new")
        tmp.write_text(f"{seconds:+d}s\n")
        os.replace(tmp, self.path)  # never a half-written offset

    def env(self):
        return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(self.path),
                "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "NO_FAKE_STAT": "1"}  # a real step leaves file times alone


def tasks_env(salt_env, ferretdb, ad_lib, tmp_path, clock):
    from test_tasks import REACTOR_KILL, REACTOR_RUN, STATES, Alerts, Caller  # noqa: E402

    alerts = Alerts()
    conf = engine_conf(ferretdb, tmp_path, watchdog_interval=1, notify={
        "channels": [{"type": "webhook", "url": alerts.url}], "timeout_ms": 2000})
    env = start_env(salt_env, conf, minions=("m1",), master_env=clock.env(),
                    reactor=[{"autodeploy/task/*/run": [str(REACTOR_RUN)]},
                             {"autodeploy/task/*/kill": [str(REACTOR_KILL)]}],
                    file_roots={"base": [str(tmp_path / "srv-unused"), str(STATES)]})
    call = Caller.load(ad_lib, {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
                                "master_key_path": os.path.join(env.master_opts["cachedir"],
                                                                ".root_key")})
    return env, call, alerts


def sleep_task(call, seconds, timeout):
    # created here, on the real clock, before the step: the engine's clock agrees until then
    return call("task.deploy", tgt="m1", mods="autodeploy.test.sleep", timeout=timeout,
                pillar={"autodeploy": {"test": {"seconds": seconds}}},
                created_by="faults")["task"]


def step_logged(env, text):
    return wait_for(lambda: text in log_text(env), timeout=15)


def test_forward_step_does_not_time_out_a_running_step(salt_env, ferretdb, ad_lib, tmp_path):
    """Fault: the wall clock set forward 1 h, 3 s into a step of `sleep 15`
    with a 60 s timeout. Invariant: the step is not timed out (no
    `timed_out`, no kill, no alert); the step is logged and counted, the
    task's deadline moved by the hour; the task succeeds."""
    clock = FakeClock(tmp_path)
    env, call, alerts = tasks_env(salt_env, ferretdb, ad_lib, tmp_path, clock)
    t = sleep_task(call, seconds=15, timeout=60)
    t0 = time.monotonic()
    running = call.wait_state(t["_id"], ("running",), timeout=20)
    time.sleep(3)  # the step runs on the minion
    clock.set(3600)
    t_step = time.monotonic()
    assert step_logged(env, "wall clock stepped by +3600"), "the step was not seen"
    seen_s = time.monotonic() - t_step
    done = call.wait_state(t["_id"], ("succeeded", "timed_out", "failed"), timeout=60)
    took = time.monotonic() - t0
    assert done["state"] == "succeeded", (f"{done['state']} {took:.1f} s after the start",
                                          done["history"])
    st = last_stats(env, lambda s: s.get("clock", {}).get("steps", 0) >= 1)
    assert st["clock"]["deadlines_moved"] == 1, st["clock"]
    assert abs(st["clock"]["last_step_ms"] - 3600000) < 1500, st["clock"]
    assert "wall clock stepped by +3600.0 s; 1 task deadlines moved" in log_text(env)
    moved = done["deadline_ms"] - running["deadline_ms"]
    assert abs(moved - 3600000) < 1500, moved
    notes = [h.get("note", "") for h in done["history"]]
    assert any("wall clock stepped by +3600" in n and "deadline_ms moved" in n
               for n in notes), notes
    assert not any("probe on" in n for n in notes), notes  # no kill was fired
    assert not any("timed_out" in (h.get("to") or "") for h in done["history"])
    assert not alerts.got, alerts.got
    lead = st["leader"]
    print(f"\nforward +1 h: the step logged {seen_s:.1f} s after it was made, 1 deadline moved "
          f"by {moved / 1000:.1f} s; the task succeeded after {took:.1f} s, no kill, no alert; "
          f"leader lease term {lead['term']} (elected {lead['elected']}, lost {lead['lost']})")
    alerts.srv.shutdown()


def test_back_step_still_times_out_on_time(salt_env, ferretdb, ad_lib, tmp_path):
    """Fault: the wall clock set back 2 h, 2 s into a step of `sleep 60`
    with a 5 s timeout. Invariant: the step times out at about its own
    timeout (within 3x), is killed (the probe), and the alert is sent; the
    step is logged and counted."""
    clock = FakeClock(tmp_path)
    env, call, alerts = tasks_env(salt_env, ferretdb, ad_lib, tmp_path, clock)
    t = sleep_task(call, seconds=60, timeout=5)
    t0 = time.monotonic()
    call.wait_state(t["_id"], ("running",), timeout=20)
    time.sleep(max(0.0, 2 - (time.monotonic() - t0)))
    clock.set(-7200)
    timed = call.wait_state(t["_id"], ("timed_out", "succeeded", "failed"), timeout=15)
    timed_s = time.monotonic() - t0
    assert timed["state"] == "timed_out", timed["history"]
    assert wait_for(lambda: any(t["_id"] in x and "timed_out" in x for x in alerts.titles()),
                    timeout=15 - (time.monotonic() - t0)), "no timed_out alert within 3x timeout"
    alert_s = time.monotonic() - t0
    assert "wall clock stepped by -7200" in log_text(env)
    st = last_stats(env, lambda s: s.get("clock", {}).get("steps", 0) >= 1)
    assert st["clock"]["deadlines_moved"] == 1, st["clock"]
    def probes():
        hist = call("task.get", id=t["_id"])["task"]["history"]
        return [h["note"] for h in hist if "probe on m1" in (h.get("note") or "")]

    probe = wait_for(probes, timeout=30)
    assert probe and "job was alive and was killed" in probe[0], probe
    lead = last_stats(env, lambda s: "leader" in s)["leader"]
    print(f"\nback -2 h: timed out {timed_s:.1f} s after the start (timeout 5 s), alert at "
          f"{alert_s:.1f} s, the job killed ({probe[0][:60]}...); leader lease term "
          f"{lead['term']} (elected {lead['elected']}, lost {lead['lost']}, "
          f"fenced {lead['fenced']})")
    alerts.srv.shutdown()


def purchase_zone():
    """An Etc/GMT zone where it is about noon now, and that offset in hours:
    the test's hour of clock steps stays within one local day."""
    k = 12 - datetime.now(timezone.utc).hour
    return ("Etc/GMT" if k == 0 else f"Etc/GMT{'-' if k > 0 else '+'}{abs(k)}"), k


def test_daily_purchase_runs_once_across_steps(salt_env, ferretdb, tmp_path):
    """Fault: the daily purchase time HH:MM is 30 min ahead; the wall clock
    is set forward 1 h over it, back over it, and forward over it again.
    Invariant: the daily run happens once (one `purchase_runs` document for
    the day, the `runs` counter 1, one "daily run" log line), after the
    first forward step and not before."""
    zone, k = purchase_zone()
    at = datetime.now(timezone.utc) + timedelta(hours=k, minutes=30)
    clock = FakeClock(tmp_path)
    purchase = {"time": at.strftime("%H:%M"), "timezone": zone, "drive_interval_s": 1,
                "profiles": {"p": {"flavour": "ecs.g7.2xlarge", "cpu": 8, "mem_mb": 32768,
                                   "disk_gb": 100}}}
    conf = engine_conf(ferretdb, tmp_path, registry={"enabled": False},
                       placement={"cycle_interval": 86400}, purchase=purchase)
    env = start_env(salt_env, conf, master_env=clock.env())
    runs = ferretdb.client()["autodeploy"]["purchase_runs"]

    def passes():
        return last_stats(env, lambda s: "leader" in s)["leader"]["passes"]

    # before: the engine's purchase passes go by, nothing runs
    p0 = passes()
    assert wait_for(lambda: passes() >= p0 + 10, timeout=30)
    assert runs.count_documents({}) == 0
    assert last_stats(env, lambda s: "purchase" in s)["purchase"]["runs"] == 0
    clock.set(3600)  # forward over HH:MM
    assert wait_for(lambda: runs.count_documents({}) == 1, timeout=20), "no daily run"
    assert step_logged(env, "wall clock stepped by +3600")
    clock.set(0)  # back before HH:MM
    assert step_logged(env, "wall clock stepped by -3600")
    clock.set(3600)  # over it again
    st = last_stats(env, lambda s: s.get("clock", {}).get("steps", 0) >= 3, timeout=20)
    p1 = st["leader"]["passes"]
    assert wait_for(lambda: passes() >= p1 + 10, timeout=30)  # purchase passes since
    st = last_stats(env, lambda s: s["leader"]["passes"] >= p1 + 10)
    assert st["purchase"]["runs"] == 1, st["purchase"]
    assert runs.count_documents({}) == 1
    daily = [l for l in log_text(env).splitlines() if "daily run" in l]
    assert len(daily) == 1, daily
    print(f"\ndaily purchase at {purchase['time']} {zone}: forward over it, back, forward again: "
          f"{runs.count_documents({})} run ({daily[0].split('daily run', 1)[1].strip()}); "
          f"clock steps counted {st['clock']['steps']}")
