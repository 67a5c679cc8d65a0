"""The autodeploy_services beacon's own CPU cost on a host with 50 game servers.

50 real processes (each a parent with one child, as a launcher script and its server
would be), each recorded as autodeploy.gameserver records it, with a pid file; and the
same 50 as systemd-style cgroup v2 directories (a copy of the files the beacon reads,
under a temporary cgroup_root, so the run needs neither systemd nor root). The beacon
function is called as the minion calls it, N times; its CPU time per call (user +
system of this process, so psutil's /proc reads count) is set against the budget:

    cost = cpu per call / interval (60 s, host init's default beacon_interval)
    goal: < 1% of one core

Peer in the same run: Salt's own `load` + `memusage` beacons (salt.beacons.*), which
host init already runs at that interval on every host.

Run with a Salt venv: .deps/venv3008/bin/python bench/bench_usage_beacon.py
Writes bench/results/usage_beacon.json.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
N_SERVICES, CALLS, INTERVAL_S, GOAL = 50, 200, 60, 0.01


def load_beacon():
    path = REPO / "salt-ext/src/saltext/autodeploy/beacons/autodeploy_services.py"
    spec = importlib.util.spec_from_file_location("autodeploy_services", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cpu():
    t = os.times()
    return t.user + t.system


def per_call(fn, calls):
    fn()  # first call: baselines (no cpu rate yet)
    c0, w0 = cpu(), time.perf_counter()
    for _ in range(calls):
        fn()
    return (cpu() - c0) / calls, (time.perf_counter() - w0) / calls


def main():
    beacon = load_beacon()
    tmp = Path(tempfile.mkdtemp(prefix="adbeacon-"))
    procs = []
    try:
        sdir, cg = tmp / "services.d", tmp / "cgroup"
        sdir.mkdir()
        cgdir = tmp / "services-cg.d"
        cgdir.mkdir()
        (cg / "system.slice").mkdir(parents=True)
        (cg / "cgroup.controllers").write_text("cpu memory io\n")
        for i in range(N_SERVICES):
            pid_file = tmp / f"g{i}.pid"
            p = subprocess.Popen(["sh", "-c", f"echo $$ > {pid_file}; sleep 3600 & wait"])
            procs.append(p)
            sid = f"bench-s{i}"
            rec = {"id": sid, "unit": f"game-bench-{i}.service", "pid_file": str(pid_file)}
            (sdir / f"{sid}.json").write_text(json.dumps(rec))
            (cgdir / f"{sid}.json").write_text(json.dumps({**rec, "pid_file": None}))
            u = cg / "system.slice" / f"game-bench-{i}.service"
            u.mkdir()
            (u / "cgroup.procs").write_text(f"{p.pid}\n")
            (u / "cpu.stat").write_text(f"usage_usec {1000 * i}\nuser_usec 0\nsystem_usec 0\n")
            (u / "memory.stat").write_text(f"anon {i * 1048576}\nfile 0\nkernel 0\n")
        while not all((tmp / f"g{i}.pid").exists() for i in range(N_SERVICES)):
            time.sleep(0.05)
        conf_pid = [{"services_dir": str(sdir)}, {"cgroup_root": str(tmp / "nocgroup")}]
        conf_cg = [{"services_dir": str(cgdir)}, {"cgroup_root": str(cg)}]
        ev = beacon.beacon(conf_pid)[0]
        assert ev["count"] == N_SERVICES and all(s["state"] == "up" for s in ev["services"].values()), ev
        ev = beacon.beacon(conf_cg)[0]
        assert all(s.get("how") == "cgroup" for s in ev["services"].values()), ev
        size = len(json.dumps(beacon.beacon(conf_pid)[0]))

        import salt.beacons.load as load_b
        import salt.beacons.memusage as mem_b

        load_b.__grains__ = {"kernel": "Linux"}
        mem_b.__grains__ = {"kernel": "Linux"}

        def salt_peer():
            load_b.beacon([{"averages": {"1m": [-1.0, -1.0], "5m": [-1.0, -1.0], "15m": [-1.0, -1.0]}},
                           {"onchangeonly": False}])
            mem_b.beacon([{"percent": "0%"}])

        rows = []
        for name, fn in (("pid_file (/proc, 50 x 2 processes)", lambda: beacon.beacon(conf_pid)),
                         ("cgroup v2 (50 units)", lambda: beacon.beacon(conf_cg)),
                         ("peer: salt load + memusage beacons", salt_peer)):
            c, w = per_call(fn, CALLS)
            rows.append({"case": name, "cpu_ms_per_call": round(c * 1e3, 3),
                         "wall_ms_per_call": round(w * 1e3, 3),
                         "core_share_at_60s": round(c / INTERVAL_S, 6)})
        peer = rows[-1]["cpu_ms_per_call"] or 1e-3
        for r in rows:
            r["vs_goal"] = round(r["core_share_at_60s"] / GOAL, 4)
            r["vs_salt_peer"] = round(r["cpu_ms_per_call"] / peer, 2)
            print(f"{r['case']:40s} {r['cpu_ms_per_call']:8.3f} ms cpu/call  "
                  f"{100 * r['core_share_at_60s']:.4f}% of a core at 60 s "
                  f"(goal 1%: x{r['vs_goal']})  x{r['vs_salt_peer']} the Salt peer")
        out = {"services": N_SERVICES, "calls": CALLS, "interval_s": INTERVAL_S,
               "event_bytes": size, "goal_core_share": GOAL, "rows": rows,
               "python": sys.version.split()[0]}
        print(f"event size with {N_SERVICES} services: {size} bytes")
        (REPO / "bench/results/usage_beacon.json").write_text(json.dumps(out, indent=1) + "\n")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
