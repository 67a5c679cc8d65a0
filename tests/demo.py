"""`make demo`: the running stack, end to end.

FerretDB (SQLite) + a salt-master running the autodeploy engine (C library:
host registry, returns into MongoDB, tasks, the reserve/placement cycle,
alerts) and its reactors; the bus is watched live with autodeploy-events.

1. Two new cloud hosts boot with the image's minion config: each registers as
   <profile>:<private ip> (from the master's own data, not the event), is
   initialised by the autodeploy.host state through the task system (which
   also turns on the load beacons) and becomes ready; a third minion at a
   taken address is quarantined.
2. A game server is deployed by hand (`salt-run autodeploy.deploy`), and a
   broken deploy fails and raises an alert (to a local webhook receiver).
3. Load history flows in from the beacons; a platform is defined; the cycle
   sizes the reserve from the opening rate, places servers on the least-loaded
   fitting host and deploys them; `autodeploy.why` explains a placement; an
   opening lowers the reserve and the next cycle refills it; a simulation
   replays a history of openings.

Each host runs in its own network namespace (its own private address) when run
as root, as `make demo` does on the CI machine; otherwise the addresses are
given as grains. Everything lives under a temp dir and is stopped at the end
(`--keep` leaves it running until Ctrl-C).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import netns  # noqa: E402
from ferretdb import FerretDB  # noqa: E402
from saltenv import SaltEnv  # noqa: E402

PROFILE = "demo-cloud:region-1:game-8c16g"

BIN = Path(os.environ.get("AD_BIN", REPO / "build" / "bin"))
LIB = Path(os.environ.get("AD_LIB", REPO / "build" / "libautodeploy.so"))
VENV = Path(os.environ.get("SALT_VENV", REPO / ".deps" / "venv3008"))


def say(text):
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def watch(proc):
    """Print the live bus, one short line per event."""
    for line in proc.stdout:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        tag, data = ev["tag"], ev["data"]
        extra = ""
        if "/ret/" in tag:
            extra = f"retcode={data.get('retcode')} fun={data.get('fun')}"
            meta = data.get("metadata") or {}
            if meta:
                extra += f" task={meta.get('autodeploy_task')}"
        elif tag.endswith("/new"):
            extra = f"fun={data.get('fun')} minions={data.get('minions')}"
        elif tag.endswith("/start"):
            extra = f"id={data.get('id')}"
        print(f"   bus> {tag:58} {extra}", flush=True)


class AlertSink(BaseHTTPRequestHandler):
    """Stands in for the team's chat webhook: prints each alert."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        print(f"   ALERT> {body.get('title')}", flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def run_task(env, *args):
    res = env.salt_run("autodeploy.deploy", *args)
    task = res["task"]
    print(f"   task {task['_id']} created: {task['state']}, jid {task['jid']}")
    deadline = time.time() + 90
    while time.time() < deadline:
        task = env.salt_run("autodeploy.task", task["_id"])["task"]
        if task["state"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    for h in task["history"]:
        what = f"{h.get('from') or '-'} -> {h.get('to')}" if "to" in h else h.get("note")
        print(f"     {h['at']}  {what:28} by {h.get('actor')}: {h.get('cause')}")
    return task


def table(rows, cols):
    widths = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    print("   " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("   " + "  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)))


def wait_until(fn, timeout=120, interval=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(interval)
    return None


def host_pillar(root, env, mid):
    h = root / "hosts" / mid
    return {"autodeploy": {"host": {
        "base_dir": str(h / "data"), "user": "root", "manage_user": False, "packages": [],
        "apply_sysctl": False,
        "sysctl_file": str(h / "etc" / "sysctl.d" / "90-autodeploy-game.conf"),
        "limits_file": str(h / "etc" / "limits.d" / "90-autodeploy-game.conf"),
        "beacons_file": str(env.minion_conf_dir(mid) / "minion.d" / "autodeploy-beacons.conf"),
        "beacon_interval": 5}}}


def boot_host(env, fabric, mid, n, cpus, mem_mb):
    """A host from the image: the profile grain, and its own address."""
    grains = {"autodeploy_profile": PROFILE, "num_cpus": cpus, "mem_total": mem_mb}
    if fabric:
        ns, ip = fabric.host(n)
        env.start_minion(mid, netns=ns, grains=grains)
    else:
        ip = f"10.99.0.{10 + n}"
        grains["ipv4"] = ["127.0.0.1", ip]
        env.start_minion(mid, grains=grains)
    return f"{PROFILE}:{ip}"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    args = ap.parse_args()
    os.environ["AD_LIB"] = str(LIB)
    os.environ["LD_LIBRARY_PATH"] = str(LIB.parent)
    root = Path(tempfile.mkdtemp(prefix="addemo-", dir="/tmp"))
    game_base = root / "games"

    say("FerretDB v1.24.2 on SQLite (the MongoDB the engine writes to)")
    db = FerretDB(root / "ferretdb").start()
    print(f"   {db.uri}")

    sink = HTTPServer(("127.0.0.1", 0), AlertSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    engine = {
        "mongo_uri": db.uri, "spool_dir": str(root / "spool"),
        "log_events": "salt/minion/*/start", "stats_interval": 30, "workers": 2,
        "watchdog_interval": 2,
        "notify": {"channels": [{"type": "webhook",
                                 "url": f"http://127.0.0.1:{sink.server_port}/alerts"}]},
        "registry": {"profiles": ["demo-cloud:*"], "init_timeout": 300, "init_attempts": 1,
                     "reconcile_interval": 5, "liveness_interval": 5},
        "placement": {"cycle_interval": 600, "headroom": 0.8, "deploy_timeout": 300},
    }
    fabric = netns.Fabric() if netns.available() else None
    env = SaltEnv(root / "salt", VENV / "bin", host=fabric.master_ip if fabric else "127.0.0.1",
                  master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{"autodeploy/task/*/run": [str(REPO / "reactor" / "autodeploy_task.sls")]},
                    {"autodeploy/task/*/kill": [str(REPO / "reactor" / "autodeploy_kill.sls")]},
                    {"autodeploy/host/*/refresh": [str(REPO / "reactor" / "autodeploy_refresh.sls")]}],
        "file_roots": {"base": [str(root / "salt" / "srv" / "salt"), str(REPO / "states")]},
    })
    watcher = None
    mdb = db.client()["autodeploy"]
    try:
        env.__enter__()
        env.write_pillar("top.sls", "base:\n" + "".join(
            f"  '{m}':\n    - {m}\n" for m in ("game-01", "game-02", "game-03")))
        for m in ("game-01", "game-02", "game-03"):
            env.write_pillar(f"{m}.sls", json.dumps(host_pillar(root, env, m)))
        say("salt-master with the autodeploy engine")
        env.start_master()
        print(f"   config {env.master_config_path}\n   bus    {env.sock_dir}/master_event_pub.ipc")

        say("autodeploy-events: the bus, live (C reader, JSON lines)")
        watcher = subprocess.Popen(
            [str(BIN / "autodeploy-events"), "-c", str(env.master_config_path), "-m", "salt/*"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=watch, args=(watcher,), daemon=True).start()
        time.sleep(1.5)

        say("two new cloud hosts boot from the image: they register and are initialised")
        print("   (each in its own network namespace)" if fabric else
              "   (not root: addresses given as grains)")
        keys = {"game-01": boot_host(env, fabric, "game-01", 1, 8, 16384),
                "game-02": boot_host(env, fabric, "game-02", 2, 4, 8192)}
        def all_ready():
            return mdb.hosts.count_documents(
                {"_id": {"$in": list(keys.values())}, "state": "ready"}) == 2

        ready = wait_until(all_ready, 90)
        for mid, key in keys.items():
            if ready or mdb.hosts.find_one({"_id": key}):
                continue
            # never registered: say why (its own log), and start it once more
            print(f"   {mid} has not registered; the end of its log:")
            log = env.minion_log(mid)
            for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])[-8:]:
                print("     " + line[:160])
            env.stop_minion(mid, timeout=10)
            env.start_minion(mid)
        ready = ready or wait_until(all_ready, 120)
        rows = env.salt_run("autodeploy.hosts")["hosts"]
        table([{"key": h["_id"], "state": h["state"], "minion": h["minion"],
                "cpu": h["capacity"]["cpu"], "mem_mb": h["capacity"]["mem_mb"],
                "ip_rule": h.get("ip_rule")} for h in rows],
              ["key", "state", "minion", "cpu", "mem_mb", "ip_rule"])
        if not ready:
            print("   (not all hosts became ready in time)")
        h1 = env.salt_run("autodeploy.host", "game-01")["host"]
        for h in h1["history"]:
            move = f"{h.get('from') or '-'} -> {h['to']}" if h.get("to") else h["what"]
            print(f"     {h['at']}  {move:28} {h['cause'][:90]}")

        if fabric:
            say("a reused address: minion game-03 comes up at game-01's IP -> quarantined")
            ns, _ = fabric.host(1)
            env.start_minion("game-03", netns=ns, grains={"autodeploy_profile": PROFILE})
            q = wait_until(lambda: mdb.hosts.find_one({"_id": "quarantine:game-03"}), 60)
            if q:
                print(f"   quarantine:game-03  {q['state']}: {q['reason']}")
            env.stop_minion("game-03")
            env.salt_run("autodeploy.retire", "quarantine:game-03", reason="demo: not a real host")

        say("deploy game server 1001 of platform demo: salt-run autodeploy.deploy")
        pillar = {"autodeploy": {
            "unit_dir": str(game_base / "units"),
            "service": {"id": "demo-1001", "platform": "demo", "server_no": 1001,
                        "base_dir": str(game_base), "port": 31001, "user": "root",
                        "manage_user": False, "config": {"max_players": 5000}}}}
        task = run_task(env, "game-01", "mods=autodeploy.gameserver",
                        f"pillar={json.dumps(pillar)}", "reason=demo: open s1001")
        print(f"   => {task['state']}; files under {game_base}:")
        for p in sorted(game_base.rglob("*")):
            print(f"     {p.relative_to(game_base)}")

        say("a broken deploy: the task fails and an alert goes out")
        task = run_task(env, "game-01", "mods=autodeploy.test.fail", "reason=demo: bad build")
        time.sleep(2)
        shown = env.salt_run("autodeploy.task", task["_id"])
        for r in shown["results"]:
            for st in r["states"][:2]:
                print(f"   {r['minion']} retcode {r['retcode']}: {st['id']} -> "
                      f"{st['result']}: {str(st['comment'])[:80]}")
        time.sleep(1)

        say("load history: the beacons host init turned on report every 5 s")
        wait_until(lambda: all(mdb.host_metrics.count_documents({"minion": m}) >= 4
                               for m in ("game-01", "game-02")), 60)
        for m in ("game-01", "game-02"):
            n = mdb.host_metrics.count_documents({"minion": m})
            last = mdb.host_metrics.find_one({"minion": m, "beacon": "memusage"}, sort=[("at", -1)]) or {}
            print(f"   {m}: {n} samples, memory {last.get('mem_pct', 0):.1f}% used")

        say("a platform, and the reserve/placement cycle: salt-run autodeploy.cycle")
        template = {"autodeploy": {"unit_dir": str(game_base / "units"), "service": {
            "base_dir": str(game_base), "user": "root", "manage_user": False,
            "config": {"max_players": 5000, "name": "{platform} server {server_no}"}}}}
        env.salt_run("autodeploy.platform", "demo", state="autodeploy.gameserver",
                     profiles=json.dumps([PROFILE]), pillar=json.dumps(template),
                     footprint=json.dumps({"cpu": 1, "mem_mb": 2048}),
                     reserve=json.dumps({"min": 2, "max": 10}), port_base=12000)
        dry = env.salt_run("autodeploy.cycle", dry_run=True)["platforms"][0]
        r = dry["reserve"]
        print(f"   dry run: rate {r.get('rate_per_day', 0):.2f}/day -> reserve {r['size']}"
              f" (clamped: {r.get('clamped')}); supply {dry['supply']}, short {dry['short']}")
        rep = env.salt_run("autodeploy.cycle")["platforms"][0]
        for p in rep["placed"]:
            print(f"   placed {p['service']} on {p['host']} (dominant share {p['score']:.3f})")
        wait_until(lambda: mdb.services.count_documents({"platform": "demo", "state": "deployed"}) >= 2, 180)
        table([{"id": x["_id"], "state": x["state"], "host": x.get("host"), "task": x.get("task")}
               for x in env.salt_run("autodeploy.services", platform="demo")["services"]],
              ["id", "state", "host", "task"])

        say("why there? salt-run autodeploy.why demo-s1")
        why = env.salt_run("autodeploy.why", "demo-s1")
        print("   " + json.dumps(why["decision"], indent=1)[:1200].replace("\n", "\n   "))

        say("an opening: salt-run autodeploy.opened demo-s1, then the next cycle refills the reserve")
        env.salt_run("autodeploy.opened", "demo-s1")
        wait_until(lambda: (mdb.services.find_one({"_id": "demo-s1"}) or {}).get("state") == "opened", 30)
        rep = env.salt_run("autodeploy.cycle")["platforms"][0]
        print(f"   idle {rep['idle']}, reserve {rep['reserve']['size']}: created {rep['created']}, "
              f"placed {[p['service'] for p in rep['placed']]}")

        say("simulation: replay a history of openings before turning a policy on")
        sim = env.salt_run("autodeploy.simulate", path=str(REPO / "tests" / "data" / "simulate" / "input.json"))
        sim = sim.get("report", sim)
        print(f"   {sim['start']} .. {sim['end']}: {sim['openings']} openings, "
              f"{sim['openings_waited']} waited ({sim['opening_wait_hours']['total']:.1f} h), "
              f"services waited for resources {sim['resource_wait_hours']['total']:.1f} h; "
              f"hosts used {sim['hosts']['used']}/{sim['hosts']['total']}, to buy {sim['to_buy']['hosts']}")

        say("job returns, as the engine stored them in MongoDB")
        coll = db.client()["autodeploy"]["returns"]
        deadline = time.time() + 15
        while coll.count_documents({}) < 2 and time.time() < deadline:
            time.sleep(0.2)
        for doc in coll.find({}, {"return": 0}).sort("received_at", 1):
            summary = doc.get("summary")
            s = (f" summary ok={summary['ok']} changed={summary['changed']} "
                 f"failed={summary['failed']} {summary['duration_ms']:.0f} ms") if summary else ""
            print(f"   {doc['_id']:36} fun={doc.get('fun'):12} retcode={doc.get('retcode')}{s}")

        say("the engine's own lines in the master log")
        time.sleep(5)
        for line in env.master_log.read_text(errors="replace").splitlines():
            if "saltext.autodeploy" in line and ("INFO" in line or "ERROR" in line):
                print("  ", line.split("]", 3)[-1].strip()[:150])
        if args.keep:
            say("running; Ctrl-C to stop")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping")
        if watcher:
            watcher.terminate()
        env.__exit__(None, None, None)
        if fabric:
            fabric.close()
        db.cleanup()
        sink.shutdown()
    print("   done")


if __name__ == "__main__":
    main()
