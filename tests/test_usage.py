"""What each game server really uses, end to end (issue 15, docs/usage.md).

A real master and FerretDB, the engine with the registry and placement, and one real
minion in its own network namespace (tests/netns.py). The minion gets the
``autodeploy_services`` beacon the way host init gives it (``saltutil.sync_beacons``
from ``salt://_beacons``); ``autodeploy.gameserver`` deploys the service and records
it; a "game server" that burns 0.5 core and holds 256 MiB runs from its pid file.

- the beacon's samples reach ``service_metrics`` through the engine, and the opened
  service's ``usage`` (p95) is within 15% of the truth on cpu and memory;
- the next cycle's footprint is the measured one, and ``autodeploy.why`` of the new
  service says which service each dimension came from;
- a sample for that service fired by a minion under another minion's name is refused:
  counted, logged, not stored;
- the server killed: the beacon reports it down (stored with its reason), not as zero.
"""
import datetime
import json
import re
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymongo
import pytest

import netns
from test_registry import REACTORS, STATES  # noqa: F401
from waiting import wait_for
from test_tasks import Caller

PROFILE = "aliyun:cn-hangzhou:game-8c16g"
CPU_TRUTH, MEM_TRUTH_MB = 0.5, 256

pytestmark = netns.required()

# Burns CPU_TRUTH of one core by its own accounting (it catches up after being
# starved) and holds MEM_TRUTH_MB of touched memory. On a loaded shared machine it
# gets less than CPU_TRUTH, so the cpu truth is what the kernel says it burned
# (/proc/<pid>/stat, read by the test every 50 ms), over the same intervals.
GAME = r"""
import os, sys, time
pid_file, cores, mb = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
hold = bytearray(os.urandom(1024)) * (mb * 1024)
with open(pid_file, "w") as f:
    f.write(str(os.getpid()))
t0, c0 = time.monotonic(), time.process_time()
while True:
    if time.process_time() - c0 < cores * (time.monotonic() - t0):
        for _ in range(2000):
            pass
    else:
        time.sleep(0.005)
"""


@pytest.fixture
def usage_env(salt_env, ferretdb, ad_lib, tmp_path):
    fabric = netns.Fabric()
    registry = {"profiles": ["aliyun:*"], "init_state": "", "liveness_interval": 2,
                "reconcile_interval": 2, "unreachable_after": 60}
    placement = {"cycle_interval": 86400, "headroom": 0.8, "deploy_timeout": 120,
                 "deploy_attempts": 1, "measure_after_hours": 1, "usage_min_samples": 6,
                 "usage_refresh_s": 0}
    engine = {"mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / "spool"), "batch_ms": 20,
              "watchdog_interval": 1, "stats_interval": 1, "registry": registry,
              "placement": placement}
    env = salt_env(host=fabric.master_ip, master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{k: [str(v)]} for k, v in REACTORS.items()],
        "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    import ctypes

    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    conf = {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
            "master_key_path": str(Path(env.master_opts["cachedir"]) / ".root_key"),
            "pki_dir": env.master_opts["pki_dir"], "cachedir": env.master_opts["cachedir"],
            "publish_port": env.master_opts["publish_port"], "registry": registry,
            "placement": placement}
    db = pymongo.MongoClient(ferretdb.uri, tz_aware=True)["autodeploy"]
    procs = []
    try:
        yield env, fabric, Caller(lib, conf), db, procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        env.cleanup()
        fabric.close()


def master_log(env):
    return Path(env.master_opts["log_file"]).read_text(errors="replace")


class Kernel(threading.Thread):
    """The cpu seconds a process has burned, read from /proc every 50 ms, by wall time."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.points = pid, []
        self.read()  # the first reading before the constructor returns
        self.start()

    def read(self):
        tick = os.sysconf("SC_CLK_TCK")
        f = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        self.points.append((time.time(), (int(f[11]) + int(f[12])) / tick))

    def run(self):
        while True:
            try:
                self.read()
            except OSError:
                return
            time.sleep(0.05)

    def at(self, t, timeout=10):
        """cpu seconds at wall time t (linear between the two readings around it);
        waits for a reading after t (this thread can lag on a loaded machine)."""
        deadline = time.time() + timeout
        while (not self.points or self.points[-1][0] < t) and time.time() < deadline \
                and self.is_alive():
            time.sleep(0.05)
        pts = list(self.points)
        for (t0, c0), (t1, c1) in zip(pts, pts[1:]):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0)
        span = f"{pts[0][0]:.3f}..{pts[-1][0]:.3f}" if pts else "none"
        raise AssertionError(f"no /proc reading around {t:.3f} (readings {span}, "
                             f"{len(pts)} of them, reader alive: {self.is_alive()})")


def ms_date(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


def engine_stats(env):
    """The engine's last logged stats (stats_interval 1): {} before the first."""
    lines = [l for l in master_log(env).splitlines() if "stats {" in l]
    return json.loads(lines[-1].split("stats ", 1)[1]) if lines else {}


def test_measured_usage_sizes_the_next_server(usage_env, tmp_path):
    env, fabric, call, db, procs = usage_env
    t0 = time.monotonic()
    # the engine's own first cycle (5 s after it starts; then every cycle_interval,
    # a day here) has run, so that every cycle below is the test's own: otherwise
    # it may refill the reserve itself once qq-s1 opens
    wait_for(lambda: re.search(r"fleet.*\] (cycle: \d+ platforms|cycle skipped)",
                           Path(env.master_opts["log_file"]).read_text()), "the engine's first cycle", timeout=30)
    services_dir = tmp_path / "services.d"
    ns, ip = fabric.host(1)
    beacons = {"autodeploy_services": [{"interval": 1}, {"services_dir": str(services_dir)}]}
    env.start_minion("h1", netns=ns, grains={"autodeploy_profile": PROFILE, "num_cpus": 8,
                                             "mem_total": 16384},
                     extra={"beacons": beacons})
    key = f"{PROFILE}:{ip}"
    wait_for(lambda: (db.hosts.find_one({"_id": key}) or {}).get("state") == "ready", "h1 ready", timeout=90)
    # what host init does: the module from salt://_beacons, then the beacons reloaded
    synced = env.salt("h1", "saltutil.sync_beacons", refresh=True)["h1"]
    assert "beacons.autodeploy_services" in synced, synced

    base = tmp_path / "game"
    call("platform.set", code="qq", state="autodeploy.gameserver", profiles=[PROFILE],
         footprint={"cpu": 2, "mem_mb": 4096}, reserve={"min": 1, "max": 1},
         pillar={"autodeploy": {"unit_dir": str(tmp_path / "units"), "daemon_reload": False,
                                "services_dir": str(services_dir),
                                "service": {"user": "root", "manage_user": False,
                                            "base_dir": str(base)}}})
    rep = call("cycle.run")["platforms"][0]
    assert rep["created"] == ["qq-s1"] and rep["footprint"]["from"] == "platform default", rep
    wait_for(lambda: db.services.find_one({"_id": "qq-s1"})["state"] == "deployed", "deployed", timeout=120)
    record = json.loads((services_dir / "qq-s1.json").read_text())
    assert record["unit"] == "game-qq-1.service", record

    # the "game server", started the way the record says it is found (its pid file)
    game = tmp_path / "game.py"
    game.write_text(GAME)
    pid_file = Path(record["pid_file"])
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    procs.append(subprocess.Popen([sys.executable, str(game), str(pid_file), str(CPU_TRUTH),
                                   str(MEM_TRUTH_MB)]))
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "pid file", timeout=20)
    kernel = Kernel(procs[-1].pid)
    assert call("service.opened", id="qq-s1")["fired"] is True
    wait_for(lambda: db.services.find_one({"_id": "qq-s1"})["state"] == "opened", "opened", timeout=30)

    # 1. samples through the engine; usage within 15% once enough of them exist
    wait_for(lambda: (db.services.find_one({"_id": "qq-s1"}).get("usage") or {}).get("samples", 0)
         >= 8, "usage from 8 samples", timeout=60)
    usage = db.services.find_one({"_id": "qq-s1"})["usage"]
    rows = list(db.service_metrics.find(
        {"service": "qq-s1", "up": True, "at": {"$gte": ms_date(usage["from_ms"]),
                                                "$lte": ms_date(usage["at_ms"])}}).sort("at", 1))
    cpus = [r for r in rows if "cpu" in r]
    # the samples measure what the kernel says the server burned, within 15%
    t_a, t_b = cpus[0]["at"].timestamp(), cpus[-1]["at"].timestamp()
    truth = (kernel.at(t_b) - kernel.at(t_a)) / (t_b - t_a)
    spans = [(b["at"].timestamp() - a["at"].timestamp(), b["cpu"]) for a, b in zip(cpus, cpus[1:])]
    measured = sum(dt * c for dt, c in spans) / sum(dt for dt, _ in spans)
    assert abs(measured - truth) <= 0.15 * truth, (measured, truth, [r["cpu"] for r in cpus])
    # usage is their p95 (nearest rank), with the count
    vals = sorted(r["cpu"] for r in cpus)
    assert usage["cpu"] == pytest.approx(vals[math.ceil(0.95 * len(vals)) - 1]), (usage, vals)
    assert usage["samples"] == len(rows), (usage, len(rows))
    if os.getloadavg()[0] < 1:  # an idle machine gives the burner all it asks for
        assert abs(usage["cpu"] - CPU_TRUTH) <= 0.15 * CPU_TRUTH, usage
    assert abs(usage["mem_mb"] - MEM_TRUTH_MB) <= 0.15 * MEM_TRUTH_MB, usage
    print(f"cpu: truth {truth:.3f}, measured mean {measured:.3f}, usage p95 {usage['cpu']:.3f}"
          f" (asked {CPU_TRUTH}); mem {usage['mem_mb']:.1f} MiB (held {MEM_TRUTH_MB})")
    assert usage["final"] is False and usage["source"] == "autodeploy_services beacon", usage
    row = db.service_metrics.find_one({"service": "qq-s1", "up": True, "cpu": {"$exists": True}})
    assert row["minion"] == "h1", row
    print("usage:", json.dumps({k: v for k, v in usage.items() if k != "window"}))

    # 2. the next cycle is sized by it, and `why` says where each dimension came from
    rep = call("cycle.run")["platforms"][0]
    fp = rep["footprint"]
    assert fp["cpu"] == pytest.approx(usage["cpu"]) and fp["mem_mb"] == pytest.approx(usage["mem_mb"])
    assert fp["sources"]["cpu"]["from"] == "measured" and fp["sources"]["cpu"]["service"] == "qq-s1"
    assert rep["created"] == ["qq-s2"], rep
    why = env.salt_run("autodeploy.why", "qq-s2")
    src = why["decision"]["footprint_from"]
    assert src["cpu"]["service"] == "qq-s1" and src["mem_mb"]["service"] == "qq-s1", why
    assert src["cpu"]["samples"] >= 8
    assert why["decision"]["footprint"]["cpu"] == pytest.approx(usage["cpu"], rel=1e-3)

    # 3. claims about qq-s1 under another minion's name (h9) are refused.
    #    a. event.fire_master from h1: the master puts the sender's id (h1) in the data
    forged = {"qq-s1": {"state": "up", "cpu": 60.0, "mem_mb": 1}}
    out = subprocess.run(["ip", "netns", "exec", ns, str(env.venv_bin / "salt-call"), "-c",
                          str(env.minion_conf_dir("h1")), "event.fire_master",
                          json.dumps({"id": "h9", "services": forged}),
                          "salt/beacon/h9/autodeploy_services/"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: "salt/beacon/h9/autodeploy_services/: autodeploy_services beacon: \"id\" does "
         "not match the minion in the tag (h9)" in master_log(env), "refusal (a) logged", timeout=30)
    #    b. tag and data both say h9 (what a minion's own event batch can carry)
    import salt.utils.event

    bus = salt.utils.event.get_master_event(env.master_opts, env.master_opts["sock_dir"],
                                            listen=False)
    many = dict(forged, **{f"zz-s{i}": {"state": "up", "cpu": 1.0} for i in range(7)})
    try:
        bus.fire_event({"id": "h9", "services": many}, "salt/beacon/h9/autodeploy_services/")
    finally:
        bus.destroy()
    wait_for(lambda: "sample for qq-s1 refused: it is placed on h1, not on this minion"
         in master_log(env), "refusal (b) logged", timeout=30)
    #    eight refusals: five lines, then one that counts the rest (no log flood)
    wait_for(lambda: "3 more samples refused (8 in all" in master_log(env), "the rest counted", timeout=10)
    assert master_log(env).count("sample for zz-s") == 4
    wait_for(lambda: (engine_stats(env).get("usage") or {}).get("refused", 0) >= 9, "all counted in usage.refused", timeout=10)
    assert db.service_metrics.count_documents({"minion": "h9"}) == 0
    assert db.service_metrics.count_documents({"cpu": {"$gt": 50}}) == 0

    # 4. the server killed: reported down with the reason, never as zero load
    #    (down samples from before the server started say "no pid in ...": not these)
    killed = datetime.datetime.now(datetime.timezone.utc)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    procs[-1].wait()
    after = {"service": "qq-s1", "up": False, "at": {"$gt": killed}}
    down = wait_for(lambda: db.service_metrics.find_one(after), "a down sample", timeout=30)
    assert "is not running" in down["reason"] and "cpu" not in down and "mem_mb" not in down, down
    print(f"test took {time.monotonic() - t0:.1f} s")


# ------------------------------------------------------------- the beacon on its own
BEACON = Path(__file__).resolve().parents[1] / "salt-ext/src/saltext/autodeploy/beacons/autodeploy_services.py"


def load_beacon():
    import importlib.util

    spec = importlib.util.spec_from_file_location("autodeploy_services_under_test", BEACON)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_beacon_for_minions_is_the_extension_file():
    """Minions get states/_beacons/ (saltutil.sync_beacons): a relative symlink to the
    extension's beacon, so there is one file (Salt's fileserver follows it:
    ``fileserver_followsymlinks``, default True). The packages install the file itself
    (tests/test_packages.py)."""
    link = STATES / "_beacons" / "autodeploy_services.py"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link)), "want a relative symlink"
    assert link.resolve() == BEACON.resolve()


def test_beacon_reads_cgroups_v2_and_v1(tmp_path):
    b = load_beacon()
    assert b.validate([{"interval": 60}, {"services_dir": "/x"}]) == (True, "valid")
    assert b.validate([{"max_services": 0}])[0] is False
    assert "unknown setting 'service_dir'" in b.validate([{"service_dir": "/x"}])[1]
    sdir = tmp_path / "services.d"
    sdir.mkdir()
    for i in (1, 2):
        (sdir / f"qq-s{i}.json").write_text(json.dumps({"id": f"qq-s{i}", "unit": f"game-qq-{i}.service"}))
    v2 = tmp_path / "v2"
    (v2 / "system.slice").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory\n")
    u = v2 / "system.slice" / "game-qq-1.service"
    u.mkdir()
    (u / "cgroup.procs").write_text("4242\n")
    (u / "memory.stat").write_text("anon 268435456\nfile 999999999\n")  # page cache left out
    (u / "cpu.stat").write_text("usage_usec 1000000\nuser_usec 1\n")
    conf = [{"services_dir": str(sdir)}, {"cgroup_root": str(v2)}]
    ev = b.beacon(conf)[0]
    assert ev["count"] == 2 and ev["left_out"] == 0
    assert ev["services"]["qq-s1"] == {"state": "up", "mem_mb": 256.0, "how": "cgroup"}  # no rate yet
    assert ev["services"]["qq-s2"]["state"] == "down"  # no cgroup, no pid file: down, not zero
    assert "cpu" not in ev["services"]["qq-s2"]
    b._LAST["qq-s1"] = (b._LAST["qq-s1"][0], 1.0, b._LAST["qq-s1"][2] - 2.0)  # 2 s ago
    (u / "cpu.stat").write_text("usage_usec 2000000\n")  # 1 more cpu second in 2 s
    cpu = b.beacon(conf)[0]["services"]["qq-s1"]["cpu"]
    assert 0.45 < cpu <= 0.5, cpu
    (u / "cgroup.procs").write_text("")  # the unit stopped
    assert b.beacon(conf)[0]["services"]["qq-s1"]["state"] == "down"
    # v1: cpuacct + memory hierarchies
    v1 = tmp_path / "v1"
    c = v1 / "cpu,cpuacct" / "system.slice" / "game-qq-1.service"
    m = v1 / "memory" / "system.slice" / "game-qq-1.service"
    c.mkdir(parents=True)
    m.mkdir(parents=True)
    (c / "cgroup.procs").write_text("4242\n")
    (c / "cpuacct.usage").write_text("5000000000\n")
    (m / "memory.stat").write_text("cache 1\ntotal_rss 104857600\n")
    ev = b.beacon([{"services_dir": str(sdir)}, {"cgroup_root": str(v1)}, {"max_services": 1}])[0]
    assert ev["services"] == {"qq-s1": {"state": "up", "mem_mb": 100.0, "how": "cgroup"}}
    assert ev["left_out"] == 1  # bounded: qq-s2 is counted, not sent


def test_beacon_follows_the_process_tree(tmp_path):
    b = load_beacon()
    sdir = tmp_path / "services.d"
    sdir.mkdir()
    pid_file = tmp_path / "game.pid"
    (sdir / "qq-s1.json").write_text(json.dumps({"id": "qq-s1", "unit": "game-qq-1.service",
                                                 "pid_file": str(pid_file)}))
    # a launcher (the pid file's process) whose child holds the memory
    p = subprocess.Popen(["sh", "-c", f"echo $$ > {pid_file}; {sys.executable} -c "
                          "'import time; x = bytearray(64 << 20); x[::4096] = b\"x\" * (len(x) // 4096); "
                          "time.sleep(60)' & wait"], start_new_session=True)
    try:
        conf = [{"services_dir": str(sdir)}, {"cgroup_root": str(tmp_path / "none")}]
        wait_for(lambda: b.beacon(conf)[0]["services"]["qq-s1"].get("mem_mb", 0) > 64, "child's rss", timeout=20)
        s = b.beacon(conf)[0]["services"]["qq-s1"]
        assert s["state"] == "up" and s["how"] == "pid_file" and "cpu" in s, s
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    wait_for(lambda: b.beacon(conf)[0]["services"]["qq-s1"]["state"] == "down", "down", timeout=10)
    assert "is not running" in b.beacon(conf)[0]["services"]["qq-s1"]["reason"]
