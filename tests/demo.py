"""`make demo`: the running stack, end to end, on loopback.

FerretDB (SQLite) + a salt-master running the autodeploy engine (C library,
returns into MongoDB) + a game-host minion; the bus is watched live with
autodeploy-events while a minion starts, a test.ping runs and a game server
is deployed with the gameserver state; then the stored job returns are read
back from MongoDB. Everything lives under a temp dir and is stopped at the
end (`--keep` leaves it running until Ctrl-C).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
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

    engine = {
        "mongo_uri": db.uri, "spool_dir": str(root / "spool"),
        "log_events": "salt/minion/*/start", "stats_interval": 5, "workers": 2,
    }
    env = SaltEnv(root / "salt", VENV / "bin", master_opts={
        "engines": [{"autodeploy": engine}],
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

        say("deploy game server 1001 of platform demo (state autodeploy.gameserver)")
        pillar = {"autodeploy": {
            "unit_dir": str(game_base / "units"),
            "service": {"id": "demo-1001", "platform": "demo", "server_no": 1001,
                        "base_dir": str(game_base), "port": 31001, "user": "root",
                        "manage_user": False, "config": {"max_players": 5000}}}}
        res = env.salt_raw("game-01", "state.apply", "autodeploy.gameserver",
                           f"pillar={json.dumps(pillar)}", timeout=120)
        print(f"   retcode {res.returncode}; files under {game_base}:")
        for p in sorted(game_base.rglob("*")):
            print(f"     {p.relative_to(game_base)}")
        time.sleep(2)

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
    print("   done")


if __name__ == "__main__":
    main()
