"""Load: job returns through a real salt-master, stored by the engine, until the master gives.

Issue #13 item 6. A real salt-master (Salt's default ``worker_threads``, 5) runs
the ``autodeploy`` engine (``returns: all``) on a real FerretDB. ``load_gen.py``
acts as N accepted minions and sends authenticated ``_return`` requests to the
master's request server, as minions do (ReqServer -> MWorker: token check,
job cache, ``salt/job/<jid>/ret/<id>`` on the bus -> the engine -> MongoDB).

1. Steps: the offered rate goes up (``--steps``, ``--step-s`` each). Per step:
   offered and acknowledged (achieved) rates, request latency, returns stored
   (documents counted by the step's jids after a drain), loss (acknowledged but
   not stored), the engine's counters (its stats line), and CPU per component
   over the step: the engine process, the master's other processes (MWorkers,
   the request router, the event publisher, the rest), FerretDB, the generator,
   and the whole machine (2 cores shared by all of them and by anything else
   running). Stepping stops when the master no longer keeps up (achieved below
   ``--keep-up`` of offered) or a return is lost.
2. Sustained: ``--sustain-s`` at the highest step that kept up with no loss,
   sampled every 10 s; zero loss is asserted (the run exits 1 otherwise).
3. ``--also-workers 8``: the steps again with a master of 8 MWorkers.

Ratios: stored / acknowledged (1.0: nothing lost, the engine keeps up) and the
engine's CPU per 1,000 returns/s against the master's.

    .deps/venv3008/bin/python bench/bench_load.py [--quick]
Writes bench/results/load.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_register import lib_identity  # noqa: E402  (one record of which library was measured)

HZ = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---- processes and their CPU ------------------------------------------------------


def proc_table():
    """{pid: (ppid, cpu ticks, rss kB, title)} for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                st = f.read().decode("utf-8", "replace")
            with open(f"/proc/{d}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        try:
            out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]),
                           int(rest[21]) * PAGE_KB, title)
        except (IndexError, ValueError):
            continue
    return out


def tree(table, root):
    pids, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in pids or p not in table:
            continue
        pids.add(p)
        todo.extend(c for c, v in table.items() if v[0] == p)
    return pids


def machine_ticks():
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(f), f[3] + f[4]  # all, idle + iowait


def component(title):
    """The master process's role, by the title Salt gives it."""
    for key, name in (("MWorker-", "mworkers"), ("MWorkerQueue", "req_router"),
                      ("ReqServer_ProcessManager", "req_router"),
                      ("EventPublisher", "event_publisher")):
        if key in title:
            return name
    return "master_other"


class Meter:
    """CPU ticks per component between two snapshots."""

    def __init__(self, master_pid, engine_pid, ferret_pid, gen_pids):
        self.master_pid, self.engine_pid = master_pid, engine_pid
        self.ferret_pid, self.gen_pids = ferret_pid, list(gen_pids)

    def snap(self):
        t = proc_table()
        comp = {}
        master = tree(t, self.master_pid)
        for p in master:
            name = "engine" if p == self.engine_pid else component(t[p][3])
            comp[name] = comp.get(name, 0) + t[p][1]
        comp["ferretdb"] = sum(t[p][1] for p in tree(t, self.ferret_pid))
        comp["generator"] = sum(t[p][1] for g in self.gen_pids for p in tree(t, g))
        rss = {"engine_rss_kb": t.get(self.engine_pid, (0, 0, 0))[2],
               "master_rss_kb": sum(t[p][2] for p in master if p != self.engine_pid),
               "ferretdb_rss_kb": sum(t[p][2] for p in tree(t, self.ferret_pid))}
        return {"at": time.monotonic(), "ticks": comp, "machine": machine_ticks(),
                "rss": rss, "load1": float(Path("/proc/loadavg").read_text().split()[0])}

    @staticmethod
    def cpu(a, b):
        """% of one core per component between snapshots a and b."""
        dt = b["at"] - a["at"]
        out = {k: round(100.0 * (b["ticks"].get(k, 0) - a["ticks"].get(k, 0)) / HZ / dt, 1)
               for k in b["ticks"]}
        out["master"] = round(sum(v for k, v in out.items()
                                  if k in ("mworkers", "req_router", "event_publisher",
                                           "master_other")), 1)
        tot, idle = b["machine"][0] - a["machine"][0], b["machine"][1] - a["machine"][1]
        ncpu = os.cpu_count() or 1
        out["machine_busy"] = round(100.0 * ncpu * (1 - idle / max(tot, 1)), 1)
        ours = out["master"] + out.get("engine", 0) + out["ferretdb"] + out["generator"]
        out["other_processes"] = round(max(0.0, out["machine_busy"] - ours), 1)
        return out


# ---- the engine's stats line ---------------------------------------------------------


class StatsLog:
    """The engine's 'stats {...}' lines from the master log, read incrementally."""

    def __init__(self, path):
        self.path, self.pos, self.lines = path, 0, []

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return self.lines
        cut = data.rfind(b"\n") + 1
        self.pos += cut
        for line in data[:cut].decode("utf-8", "replace").splitlines():
            i = line.find("stats {")
            if i >= 0:
                try:
                    self.lines.append((time.monotonic(), json.loads(line[i + 6:])))
                except ValueError:
                    pass
        return self.lines

    def last(self):
        self.poll()
        return self.lines[-1][1] if self.lines else None


def counters(st):
    r = (st or {}).get("returns") or {}
    return {"received": r.get("received", 0), "stored": r.get("stored", 0),
            "spooled": r.get("spooled", 0), "rejected": r.get("rejected", 0),
            "queued": r.get("queued", 0), "bus_dropped": (st or {}).get("dropped", 0),
            "bus_queue_depth": (st or {}).get("queue_depth", 0),
            "bus_queue_full": (st or {}).get("queue_full", 0),
            "reconnects": (st or {}).get("reconnects", 0)}


def delta(a, b):
    return {k: b[k] - a[k] for k in ("received", "stored", "spooled", "rejected", "bus_dropped",
                                      "bus_queue_full", "reconnects")}


# ---- one master, its engine, the generators ----------------------------------------


class Rig:
    def __init__(self, args, tmp, ferret, workers):
        # pylint: disable=import-outside-toplevel
        import faults.faultlib as fl
        import load_gen
        from saltenv import SaltEnv

        self.args, self.tmp, self.ferret, self.workers = args, tmp, ferret, workers
        conf = {"mongo_uri": ferret.uri, "mongo_db": f"load_w{workers}", "returns": "all",
                "stats_interval": 5, "spool_dir": str(tmp / f"spool-w{workers}")}
        # the master at Salt's log level (warning: no per-return line), the engine at info
        # (its stats line)
        self.env = SaltEnv(tmp / f"w{workers}", Path(sys.executable).parent,
                           log_level="info",
                           master_opts={"engines": [{"autodeploy": conf}],
                                        "worker_threads": workers,
                                        "log_granular_levels": {
                                            "salt": "warning", "saltext.autodeploy": "info",
                                            "salt.loaded.ext.engines.autodeploy": "info"}})
        self.env.start_master()
        self.engine_pid = fl.wait_for(lambda: fl.engine_pids(self.env), timeout=60)[0]
        self.stats = StatsLog(self.env.master_log)
        fl.wait_for(self.stats.last, timeout=30)
        self.db = ferret.client()[conf["mongo_db"]]["returns"]
        ids = [f"lg{i:04d}" for i in range(args.minions)]
        gen_root = tmp / f"gen-w{workers}"
        load_gen.make_minions(self.env.master_opts, gen_root, ids)
        self.gens = []
        per = [ids[k::args.procs] for k in range(args.procs)]
        for k, part in enumerate(per):
            gc = tmp / f"gen-w{workers}-{k}.json"
            gc.write_text(json.dumps({"ids": part, "root": str(gen_root), "host": "127.0.0.1",
                                      "ret_port": self.env.ports["ret_port"],
                                      "mix": args.mix, "timeout": 60}))
            p = subprocess.Popen([sys.executable, str(REPO / "bench" / "load_gen.py"),
                                  "--conf", str(gc)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True,
                                 stderr=open(tmp / f"gen-w{workers}-{k}.log", "ab"))
            self.gens.append(p)
        for p in self.gens:
            line = p.stdout.readline()
            if not line.startswith("ready"):
                raise SystemExit(f"load_gen did not sign in: {line!r}")
        self.meter = Meter(self.env.master_pid, self.engine_pid, ferret.proc.pid,
                           [p.pid for p in self.gens])
        self.jid_seq = 0

    def new_jid_base(self):
        # distinct 20-digit jids per run: this second, then a run number
        self.jid_seq += 1
        return time.strftime("%Y%m%d%H%M%S") + f"{self.jid_seq % 100:02d}0000"

    def idle(self, seconds=10):
        """The engine's CPU and RSS with no load: its timers, the lease, the mark."""
        a = self.meter.snap()
        time.sleep(seconds)
        b = self.meter.snap()
        return {"cpu_pct": Meter.cpu(a, b), "rss_kb": b["rss"]}

    def run(self, rate, seconds, sample_every=None):
        """One paced run; its figures. sample_every: a per-interval series too."""
        base = self.new_jid_base()
        st0 = counters(self.stats.last())
        rss0 = self.meter.snap()["rss"]
        a = self.meter.snap()
        for p in self.gens:
            p.stdin.write(f"go {rate / len(self.gens)} {seconds} {base}\n")
            p.stdin.flush()
        series, stop = [], threading.Event()
        peak = {"queued": 0, "bus_queue_depth": 0, "engine_rss_kb": rss0["engine_rss_kb"]}

        def sampler():
            prev = a
            prev_st = st0
            every = sample_every or 5
            while not stop.wait(every):
                s = self.meter.snap()
                c = counters(self.stats.last())
                peak["queued"] = max(peak["queued"], c["queued"])
                peak["bus_queue_depth"] = max(peak["bus_queue_depth"], c["bus_queue_depth"])
                peak["engine_rss_kb"] = max(peak["engine_rss_kb"], s["rss"]["engine_rss_kb"])
                if sample_every:
                    series.append({"t_s": round(s["at"] - a["at"]),
                                   "engine_received": c["received"] - prev_st["received"],
                                   "engine_stored": c["stored"] - prev_st["stored"],
                                   "engine_queued": c["queued"],
                                   "cpu_pct": Meter.cpu(prev, s), "rss_kb": s["rss"],
                                   "load1": s["load1"]})
                prev, prev_st = s, c

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        results = [json.loads(p.stdout.readline()) for p in self.gens]
        b = self.meter.snap()
        stop.set()
        th.join()
        acked_ids = [i for r in results for i in r.pop("acked_ids")]
        acked = len(acked_ids)
        total_s = max(r["total_s"] for r in results)
        lo = base
        hi = max(r["jids"][1] for r in results)
        q = {"jid": {"$gte": lo, "$lte": hi}}
        # drain: every acknowledged return stored, or no progress for 10 s
        t = time.monotonic()
        stored, last_change, last = 0, t, -1
        while time.monotonic() - t < self.args.drain_s:
            stored = self.db.count_documents(q)
            if stored >= acked:
                break
            if stored != last:
                last, last_change = stored, time.monotonic()
            elif time.monotonic() - last_change > 10:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - t
        missing = []
        if stored < acked:
            have = {d["_id"] for d in self.db.find(q, {"_id": 1})}
            missing = [i for i in acked_ids if i not in have]
        time.sleep(5.5)  # one more stats line after the drain
        st1 = counters(self.stats.last())
        cpu = Meter.cpu(a, b)
        achieved = acked / total_s
        lat = sorted(results, key=lambda r: r["lat_p99_ms"] or 0)[-1]
        out = {
            "offered_rate": rate, "seconds": seconds, "sent": sum(r["sent"] for r in results),
            "acked": acked, "errors": _merge([r["errors"] for r in results]),
            "achieved_rate": round(achieved, 1),
            "lat_p50_ms": max(r["lat_p50_ms"] or 0 for r in results),
            "lat_p99_ms": lat["lat_p99_ms"], "lat_max_ms": max(r["lat_max_ms"] or 0 for r in results),
            "lag_p99_ms": max(r["lag_p99_ms"] or 0 for r in results),
            "stored": stored, "lost": len(missing) if stored < acked else 0,
            "lost_examples": missing[:5], "drain_s": round(drain_s, 1),
            "stored_over_acked": round(stored / acked, 4) if acked else None,
            "engine": delta(st0, st1), "engine_peak": peak,
            "cpu_pct": cpu, "rss_kb": b["rss"], "engine_rss_kb_before": rss0["engine_rss_kb"],
            "load1": b["load1"], "gen_cpu_s": round(sum(r["gen_cpu_s"] for r in results), 2),
            "acks_per_s": [sum(x) for x in zip(*[r["acks_per_s"] for r in results])],
        }
        k = achieved / 1000.0
        if k:
            out["engine_cpu_per_1k"] = round(cpu.get("engine", 0) / k, 1)
            out["master_cpu_per_1k"] = round(cpu["master"] / k, 1)
        if series:
            per_s = out["acks_per_s"]
            prev_t = 0
            for e in series:
                e["acked"] = sum(per_s[prev_t:e["t_s"]])
                prev_t = e["t_s"]
            out["series"] = series
        return out

    def close(self):
        for p in self.gens:
            try:
                p.stdin.close()
                p.wait(timeout=20)
            except Exception:  # pylint: disable=broad-except
                p.kill()
        self.env.cleanup()


def _merge(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def kept_up(step, keep_up):
    return step["achieved_rate"] >= keep_up * step["offered_rate"] and not step["errors"]


def line(s):
    c = s["cpu_pct"]
    return (f"  {s['offered_rate']:>6,.0f}/s offered {s['achieved_rate']:>7,.1f}/s acked "
            f"p50 {s['lat_p50_ms']:>7.1f} p99 {s['lat_p99_ms']:>7.1f} ms; stored {s['stored']:,}"
            f"/{s['acked']:,} lost {s['lost']}; cpu% engine {c.get('engine', 0)} master "
            f"{c['master']} (mworkers {c.get('mworkers', 0)}, router {c.get('req_router', 0)}, "
            f"pub {c.get('event_publisher', 0)}) ferretdb {c['ferretdb']} gen {c['generator']} "
            f"machine {c['machine_busy']} (other {c['other_processes']}); engine rss "
            f"{s['rss_kb']['engine_rss_kb'] // 1024} MB; load1 {s['load1']}")


def stepping(rig, args, label):
    steps = []
    for rate in args.steps:
        s = rig.run(rate, args.step_s)
        steps.append(s)
        print(f"[{label}]" + line(s), flush=True)
        if s["lost"] or not kept_up(s, args.keep_up):
            break
    return steps


def best(steps, keep_up):
    ok = [s for s in steps if kept_up(s, keep_up) and not s["lost"]]
    return max(ok, key=lambda s: s["offered_rate"]) if ok else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="50,100,200,300,400,600,800,1200,1600",
                    type=lambda v: [float(x) for x in v.split(",")])
    ap.add_argument("--step-s", type=float, default=30)
    ap.add_argument("--sustain-s", type=float, default=180)
    ap.add_argument("--minions", type=int, default=100)
    ap.add_argument("--procs", type=int, default=1, help="generator processes")
    ap.add_argument("--mix", default="small:4,medium:1",
                    help="payloads: small (test.ping), medium (state.apply, 10 states)")
    ap.add_argument("--workers", type=int, default=5, help="worker_threads (Salt's default 5)")
    ap.add_argument("--also-workers", type=int, default=8, help="0: skip")
    ap.add_argument("--keep-up", type=float, default=0.95,
                    help="a step keeps up when acked/s >= this x offered")
    ap.add_argument("--drain-s", type=float, default=60)
    ap.add_argument("--quick", action="store_true", help="short steps, no sustain: a smoke run")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "load.json"))
    args = ap.parse_args()
    if args.quick:
        args.step_s, args.sustain_s, args.also_workers = 8, 20, 0
        args.steps = args.steps[:4]

    # pylint: disable=import-outside-toplevel
    import salt.version
    from ferretdb import FerretDB

    t_start = time.monotonic()
    lib_src = os.path.realpath(os.environ.get("AD_LIB", REPO / "build" / "libautodeploy.so"))
    tmp = Path(tempfile.mkdtemp(prefix="adl-", dir="/tmp"))
    lib = tmp / "libautodeploy.so"  # a private copy: the library may be rebuilt mid-run
    shutil.copy(lib_src, lib)
    os.environ["AD_LIB"] = str(lib)
    load_start = float(Path("/proc/loadavg").read_text().split()[0])
    res = {"salt_version": salt.version.__version__, "library": lib_identity(lib_src),
           "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load1_start": load_start, "minions": args.minions, "generator_procs": args.procs,
           "mix": args.mix, "step_s": args.step_s, "keep_up": args.keep_up}
    ferret = FerretDB(tmp / "ferret")
    rig = None
    ok = True
    try:
        ferret.start()
        rig = Rig(args, tmp, ferret, args.workers)
        print(f"master worker_threads {args.workers}, {args.minions} minions signed in, "
              f"engine pid {rig.engine_pid}", flush=True)
        res["idle"] = rig.idle()
        print(f"idle: engine {res['idle']['cpu_pct'].get('engine')}% cpu, "
              f"{res['idle']['rss_kb']['engine_rss_kb'] // 1024} MB", flush=True)
        steps = stepping(rig, args, f"w{args.workers}")
        top = best(steps, args.keep_up)
        res["worker_threads"] = args.workers
        res["steps"] = steps
        res["highest_no_loss_rate"] = top["offered_rate"] if top else None
        res["first_not_kept_up"] = next((s["offered_rate"] for s in steps
                                         if not kept_up(s, args.keep_up)), None)
        if top:
            s = rig.run(top["offered_rate"], args.sustain_s, sample_every=10)
            print("[sustained]" + line(s), flush=True)
            res["sustained"] = s
            ok = s["lost"] == 0 and s["stored"] >= s["acked"]
            res["sustained_zero_loss"] = ok
            res["sustained_kept_up"] = kept_up(s, args.keep_up)
        rig.close()
        rig = None
        if args.also_workers:
            rig = Rig(args, tmp, ferret, args.also_workers)
            # from the step below the top found above: the comparison, not the whole ladder
            floor = (top or steps[0])["offered_rate"]
            below = [r for r in args.steps if r < floor]
            args.steps = ([below[-1]] if below else []) + [r for r in args.steps if r >= floor]
            steps2 = stepping(rig, args, f"w{args.also_workers}")
            top2 = best(steps2, args.keep_up)
            res["also"] = {"worker_threads": args.also_workers, "steps": steps2,
                           "highest_no_loss_rate": top2["offered_rate"] if top2 else None}
            rig.close()
            rig = None
    finally:
        if rig is not None:
            rig.close()
        ferret.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    res["load1_end"] = float(Path("/proc/loadavg").read_text().split()[0])
    res["run_s"] = round(time.monotonic() - t_start)
    res.update(summarize(res))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("highest_no_loss_rate", "first_not_kept_up",
                                          "bottleneck", "notes") if k in res}, indent=1))
    print(f"wrote {out} in {res['run_s']} s")
    return 0 if ok else 1


def resummarize(path):
    """Recompute the summary of a written load.json (the figures are untouched)."""
    res = json.loads(Path(path).read_text())
    for k in ("notes", "bottleneck"):
        res.pop(k, None)
    res.update(summarize(res))
    Path(path).write_text(json.dumps(res, indent=1) + "\n")


def summarize(res):
    """The headline: ratios at the top rate and which component is the bottleneck."""
    out = {"notes": []}
    steps = res.get("steps") or []
    top = next((s for s in steps if s["offered_rate"] == res.get("highest_no_loss_rate")), None)
    sus = res.get("sustained")
    at = sus or top
    if at:
        out["stored_over_acked"] = at["stored_over_acked"]
        out["engine_cpu_per_1k"] = at.get("engine_cpu_per_1k")
        out["master_cpu_per_1k"] = at.get("master_cpu_per_1k")
        if at.get("engine_cpu_per_1k"):
            out["master_vs_engine_cpu"] = round(at["master_cpu_per_1k"] / at["engine_cpu_per_1k"], 1)
        out["engine_cpu_pct"] = at["cpu_pct"].get("engine")
        out["master_cpu_pct"] = at["cpu_pct"]["master"]
        out["engine_rss_mb"] = round(at["engine_peak"]["engine_rss_kb"] / 1024, 1)
    sat = next((s for s in steps if s["offered_rate"] == res.get("first_not_kept_up")), None)
    if sat:
        c = sat["cpu_pct"]
        e = sat["engine"]
        backlog = sat["engine_peak"]["queued"] + sat["engine_peak"]["bus_queue_depth"]
        master_bound = c["master"] > 3 * c.get("engine", 0)
        out["bottleneck"] = {
            "at_offered": sat["offered_rate"], "achieved": sat["achieved_rate"],
            "component": "salt-master (MWorkers)" if master_bound and not sat["lost"]
                         else "undetermined: read the step",
            "evidence": (f"offered {sat['offered_rate']:,.0f}/s, master acked "
                         f"{sat['achieved_rate']:,.1f}/s (p99 {sat['lat_p99_ms']:,.0f} ms); "
                         f"master CPU {c['master']}% of a core (MWorkers {c.get('mworkers', 0)}%, "
                         f"router {c.get('req_router', 0)}%, publisher "
                         f"{c.get('event_publisher', 0)}%) vs engine {c.get('engine', 0)}%; "
                         f"machine {c['machine_busy']}% of 200% (other processes "
                         f"{c['other_processes']}%); engine stored {e['stored']:,} of "
                         f"{e['received']:,} received, peak backlog {backlog} "
                         f"(returns queue + bus queue), spooled {e['spooled']}, bus dropped "
                         f"{e['bus_dropped']}; {sat['lost']} lost; requests in flight (acked/s x p50 "
                         f"latency) about {sat['achieved_rate'] * sat['lat_p50_ms'] / 1000:,.0f}, "
                         f"with {res.get('minions')} minions of one request each: the queue is "
                         "at the master")}
    if res.get("load1_start", 0) > 0.5:
        out["notes"].append(f"machine busy: load1 {res['load1_start']} at the start, "
                            f"{res.get('load1_end')} at the end (2 CPUs, shared with other work)")
    out["notes"] += [
        "returns enter as minions send them: AES _return requests over Salt's own client "
        "channel to the master's request server (MWorker: token check, job cache, event); "
        "the generator reuses each minion's token (deterministic RSA X9.31) instead of "
        "signing it per request",
        "lost = acknowledged by the master but not stored after the drain; cpu_pct is % of "
        "one core over the step, machine_busy of 200",
    ]
    return out


if __name__ == "__main__":
    sys.exit(main())
