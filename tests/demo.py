"""`make demo`: the running stack, end to end, on loopback.

FerretDB (SQLite) + a salt-master running the autodeploy engine (C library,
returns into MongoDB, tasks, alerts) and the task reactor + a game-host
minion; the bus is watched live with autodeploy-events while a minion
starts, a test.ping runs, a game server is deployed as a task created with
`salt-run autodeploy.deploy`, and a broken deploy fails and raises an alert
(to a local webhook receiver); then the stored job returns and the task's
audit trail are read back from MongoDB. Everything lives under a temp dir and
is stopped at the end (`--keep` leaves it running until Ctrl-C).
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

from ferretdb import FerretDB  # noqa: E402
from saltenv import SaltEnv  # noqa: E402

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
        "log_events": "salt/minion/*/start", "stats_interval": 5, "workers": 2,
        "watchdog_interval": 2,
        "notify": {"channels": [{"type": "webhook",
                                 "url": f"http://127.0.0.1:{sink.server_port}/alerts"}]},
    }
    env = SaltEnv(root / "salt", VENV / "bin", master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{"autodeploy/task/*/run": [str(REPO / "reactor" / "autodeploy_task.sls")]},
                    {"autodeploy/task/*/kill": [str(REPO / "reactor" / "autodeploy_kill.sls")]}],
        "file_roots": {"base": [str(root / "salt" / "srv" / "salt"), str(REPO / "states")]},
    })
    watcher = None
    try:
        env.__enter__()
        say("salt-master with the autodeploy engine")
        env.start_master()
        print(f"   config {env.master_config_path}\n   bus    {env.sock_dir}/master_event_pub.ipc")

        say("autodeploy-events: the bus, live (C reader, JSON lines)")
        watcher = subprocess.Popen(
            [str(BIN / "autodeploy-events"), "-c", str(env.master_config_path), "-m", "salt/*"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=watch, args=(watcher,), daemon=True).start()
        time.sleep(1.5)

        say("a new game host boots: minion game-01 connects")
        env.start_minion("game-01", grains={"autodeploy": {"profile": "demo-cloud:region-1"}})
        env.wait_for_minion("game-01")
        time.sleep(1)

        say("salt game-01 test.ping")
        print("  ", env.salt("game-01", "test.ping"))
        time.sleep(1)

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
        db.cleanup()
        sink.shutdown()
    print("   done")


if __name__ == "__main__":
    main()
