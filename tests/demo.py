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
4. The daily purchase turns a service that fits no host into an approved order,
   and a host of that profile arrives (stage 7); the job returns as stored
   (stage 8).
5. The engine's dashboard (its `http` entry) in headless Chromium: the newest
   failed task clicked open, the screenshot saved as
   build/artifacts/demo-dashboard.png and named in the closing lines.

Each host runs in its own network namespace (its own private address) when run
as root, as `make demo` does on the CI machine; otherwise the addresses are
given as grains. Everything lives under a temp dir and is stopped at the end.

Each stage prints one line with its time when it starts and one when it ends;
waits show a progress bar; the bus is summarised per stage (`--verbose` prints
every event); a summary table closes the run. `--keep` leaves the stack
running in the background and prints the commands to explore it; `make
demo-stop` stops it (and `make demo` stops a kept one before it starts).
"""
import argparse
import collections
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import browser  # noqa: E402
import netns  # noqa: E402
from ferretdb import FerretDB, free_port  # noqa: E402
from saltenv import SaltEnv  # noqa: E402

PROFILE = "demo-cloud:region-1:game-8c16g"

BIN = Path(os.environ.get("AD_BIN", REPO / "build" / "bin"))
LIB = Path(os.environ.get("AD_LIB", REPO / "build" / "libautodeploy.so"))
VENV = Path(os.environ.get("SALT_VENV", REPO / ".deps" / "venv3008"))


STATE = Path(os.environ.get("AD_DEMO_STATE", "/tmp/autodeploy-demo.json"))
SHOT = REPO / "build" / "artifacts" / "demo-dashboard.png"  # the dashboard, as the demo ends
T0 = time.time()
VERBOSE = False
TTY = sys.stdout.isatty()
BUS = collections.Counter()  # events seen on the bus since the stage began, by kind
ALERTS = []                  # titles the alert receiver got
DINGTALK = []                # titles of the DingTalk robot messages
ORDERS = {}                  # the local order API: idempotency key -> cloud order id
MAILS = []                   # what the partner's mail server received
BIG = "demo-cloud:region-1:game-48c96g"  # the profile hosts are bought in


def clock():
    return f"[{time.time() - T0:6.1f}s]"


class Stages:
    """One line when a stage starts, one when it ends, and the summary table."""

    def __init__(self):
        self.rows = []

    def __call__(self, title, what="", fatal=False):
        return _Stage(self, title, what, fatal)

    def summary(self):
        print(f"\n\033[1m== summary ({time.time() - T0:.0f} s)\033[0m")
        table([{"stage": r[0], "result": r[1], "seconds": f"{r[2]:.1f}", "what happened": r[3]}
               for r in self.rows], ["stage", "result", "seconds", "what happened"])
        return all(r[1] == "ok" for r in self.rows)


class _Stage:
    def __init__(self, stages, title, what, fatal):
        self.stages, self.title, self.what, self.fatal = stages, title, what, fatal

    def __enter__(self):
        BUS.clear()
        self.t = time.time()
        print(f"\n{clock()} \033[1m▶ {self.title}\033[0m", flush=True)
        return self

    def note(self, text):
        """What happened, for the summary table."""
        self.what = text

    def __exit__(self, kind, exc, tb):
        took = time.time() - self.t
        if BUS and not VERBOSE:
            print("   bus: " + ", ".join(f"{n} {k}" for k, n in BUS.most_common()), flush=True)
        if kind is KeyboardInterrupt:
            return False
        ok = kind is None
        mark = "✓" if ok else "✗"
        print(f"{clock()} {mark} {self.title} ({took:.1f} s)"
              + ("" if ok else f": {kind.__name__}: {exc}"), flush=True)
        self.stages.rows.append((self.title, "ok" if ok else "FAILED", took,
                                 self.what if ok else f"{kind.__name__}: {exc}"[:70]))
        # a failed stage is shown and the story goes on, unless nothing could
        return not self.fatal and not ok and issubclass(kind, Exception)


def say(text):
    print(f"   {text}", flush=True)


def bus_kind(tag):
    if "/ret/" in tag:
        return "job returns"
    if tag.endswith("/new"):
        return "job starts"
    if "/beacon/" in tag:
        return "beacon samples"
    if tag.endswith("/start"):
        return "minion starts"
    if tag.startswith("salt/auth") or tag.startswith("salt/key"):
        return "auth/key"
    return "other"


def watch(proc):
    """The live bus: one line per event with --verbose, else counted per stage."""
    for line in proc.stdout:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        tag, data = ev["tag"], ev["data"]
        BUS[bus_kind(tag)] += 1
        if not VERBOSE:
            continue
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
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw)
        answer = {}
        if self.path.startswith("/dingtalk"):  # a DingTalk robot, as its API takes it
            md = body.get("markdown") or {}
            DINGTALK.append(md.get("title"))
            print(f"   DINGTALK> {md.get('title')}", flush=True)
            answer = {"errcode": 0, "errmsg": "ok"}
        elif self.path.startswith("/orders"):  # the cloud's (or a broker's) order API
            key = self.headers.get("Idempotency-Key")
            signed = bool(self.headers.get("X-Autodeploy-Signature"))
            oid = ORDERS.setdefault(key, f"cloud-{len(ORDERS) + 1:04d}")
            print(f"   ORDER API> {key}: {body.get('count')} x {body.get('flavour')} "
                  f"(signed: {signed}) -> {oid}", flush=True)
            answer = {"order_id": oid}
        else:
            ALERTS.append(body.get("title"))
            print(f"   ALERT> {body.get('title')}", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(answer).encode())

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


def wait_until(fn, timeout=120, interval=1.0, label="waiting", soft=False):
    """Poll fn until it is truthy, drawing a progress bar on a terminal; a
    wait that runs out fails its stage (RuntimeError naming it) unless soft."""
    start = time.time()
    deadline = start + timeout
    got = None
    while time.time() < deadline:
        got = fn()
        if got:
            break
        if TTY:
            frac = (time.time() - start) / timeout
            bar = "#" * int(frac * 30)
            print(f"\r   [{bar:<30}] {time.time() - start:5.1f}s/{timeout}s {label}", end="",
                  flush=True)
        time.sleep(interval)
    if TTY:
        print("\r" + " " * 80 + "\r", end="")
    took = time.time() - start
    if took > 2:
        say(f"{label}: {'done' if got else 'NOT done'} after {took:.1f} s")
    if not got and not soft:
        raise RuntimeError(f"{label}: not done within {timeout} s")
    return got


def start_smtp():
    """The paying partner's mail server, on loopback (aiosmtpd)."""
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            import email

            msg = email.message_from_bytes(envelope.content)
            MAILS.append(msg)
            print(f"   MAIL> to {', '.join(envelope.rcpt_tos)}: {msg['Subject']}", flush=True)
            return "250 OK"

    import socket

    with socket.socket() as probe:  # a free port (aiosmtpd cannot take port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    return ctl, port


def why_table(why):
    """`autodeploy.why` as a small table: the chosen host, the candidates with
    their scores, the rejected hosts by reason."""
    dec = why.get("decision") or {}
    host = dec.get("host") or (dec.get("chosen") or {}).get("host")
    fp = dec.get("footprint") or {}
    say(f"chosen: {host}   footprint cpu {fp.get('cpu')} mem {fp.get('mem', fp.get('mem_mb'))}"
        f"   headroom {dec.get('headroom')}   fitting hosts {dec.get('fitting')}")
    cands = dec.get("candidates") or []
    if cands:
        table([{"candidate": c.get("host"), "score": f"{c.get('score', 0):.3f}",
                "cpu share": f"{c.get('cpu', 0):.3f}", "mem share": f"{c.get('mem', 0):.3f}",
                "free cpu": f"{c.get('free_cpu', 0):.2f}"} for c in cands],
              ["candidate", "score", "cpu share", "mem share", "free cpu"])
    rej = {k: v for k, v in (dec.get("rejected") or {}).items() if v}
    say("rejected: " + (", ".join(f"{v} by {k}" for k, v in rej.items()) if rej else "none"))


def host_pillar(root, env, mid):
    h = root / "hosts" / mid
    return {"autodeploy": {"host": {
        "base_dir": str(h / "data"), "user": "root", "manage_user": False, "packages": [],
        "apply_sysctl": False,
        "sysctl_file": str(h / "etc" / "sysctl.d" / "90-autodeploy-game.conf"),
        "limits_file": str(h / "etc" / "limits.d" / "90-autodeploy-game.conf"),
        "beacons_file": str(env.minion_conf_dir(mid) / "minion.d" / "autodeploy-beacons.conf"),
        "beacon_interval": 5}}}


def boot_host(env, fabric, mid, n, cpus, mem_mb, profile=PROFILE):
    """A host from the image: the profile grain, and its own address."""
    grains = {"autodeploy_profile": profile, "num_cpus": cpus, "mem_total": mem_mb}
    if fabric:
        ns, ip = fabric.host(n)
        env.start_minion(mid, netns=ns, grains=grains)
    else:
        ip = f"10.99.0.{10 + n}"
        grains["ipv4"] = ["127.0.0.1", ip]
        env.start_minion(mid, grains=grains)
    return f"{profile}:{ip}"


def stop_kept():
    """Stop a stack that `--keep` left running (make demo-stop)."""
    if not STATE.exists():
        print("no kept demo is running")
        return 0
    st = json.loads(STATE.read_text())
    pid = st.get("pid")
    try:
        os.kill(pid, signal.SIGTERM)
        print(f"stopping the kept demo (pid {pid}) ...", flush=True)
        for _ in range(120):
            os.kill(pid, 0)
            time.sleep(0.5)
        print("it did not stop in 60 s; killing it")
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    STATE.unlink(missing_ok=True)
    print("stopped")
    return 0


def dashboard(url):
    """The engine's dashboard in headless Chromium, with the newest failed
    task's per-state results opened (a click, as a person would), saved as
    SHOT. What the page shows (browser.TABLES) and the task opened."""
    with browser.Browser() as b:
        b.goto(url)
        b.wait("+document.body.dataset.loaded >= 1", what="the dashboard's first refresh")
        task = b.eval("""(() => { const td = document.querySelector("tr.task td.failed");
          const tr = td ? td.parentElement : document.querySelector("tr.task");
          if (tr) tr.click();
          return tr ? tr.dataset.task : null; })()""")
        if task:
            b.wait(f"!!document.getElementById('results-{task}')", what="the task's results")
        page = b.eval(browser.TABLES)
        b.screenshot(SHOT)
        if b.errors:
            raise RuntimeError(f"the page raised: {b.errors}")
        return page, task


def explore(env, db, root, url):
    """How to look at the kept stack."""
    cfg = env.master_config_path
    run = f"AD_LIB={LIB} {VENV / 'bin' / 'salt-run'} -c {cfg.parent}"
    print(f"\n\033[1m== the stack keeps running\033[0m (stop it: make demo-stop)")
    for line in (
            f"{run} autodeploy.hosts",
            f"{run} autodeploy.services platform=demo",
            f"{run} autodeploy.why demo-s1",
            f"{run} autodeploy.tasks",
            f"{BIN / 'autodeploy-events'} -c {cfg} -m 'salt/*'",
            f"mongosh or pymongo: {db.uri} (database autodeploy)",
            f"dashboard: {url}",
            f"master log: {env.master_log}"):
        print(f"   {line}")
    print(f"   (files under {root})", flush=True)


KEPT = "@@kept@@"


def keep_in_background(argv):
    """--keep: the demo runs in a detached process that owns every process of
    the stack; this one shows its output until the stack is up, records its
    pid for demo-stop, and returns."""
    log = Path(tempfile.mkstemp(prefix="addemo-", suffix=".log", dir="/tmp")[1])
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = sys.stdout
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        os._exit(main(argv, kept_child=True) or 0)
    STATE.write_text(json.dumps({"pid": pid, "log": str(log)}))
    with open(log) as f:
        while True:
            line = f.readline()
            if line:
                if line.strip() == KEPT:
                    return 0
                print(line, end="", flush=True)
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print(f"the demo ended (status {status}): see {log}")
                STATE.unlink(missing_ok=True)
                return 1
            time.sleep(0.2)


def main(argv=None, kept_child=False):
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true",
                    help="leave the stack running in the background (make demo-stop stops it)")
    ap.add_argument("--verbose", action="store_true", help="print every bus event")
    ap.add_argument("--stop", action="store_true", help="stop a kept demo and exit")
    args = ap.parse_args(argv)
    if args.stop:
        return stop_kept()
    if STATE.exists() and not kept_child:
        print("a kept demo is running: stopping it first")
        stop_kept()
    if args.keep and not kept_child:
        return keep_in_background(argv)
    VERBOSE = args.verbose
    os.environ["AD_LIB"] = str(LIB)
    os.environ["LD_LIBRARY_PATH"] = str(LIB.parent)
    root = Path(tempfile.mkdtemp(prefix="addemo-", dir="/tmp"))
    game_base = root / "games"
    stage = Stages()
    print(f"{clock()} autodeploy demo: the mission end to end on embedded defaults "
          f"(files under {root})")

    with stage("the store: FerretDB", fatal=True) as st:
        db = FerretDB(root / "ferretdb").start()
        say(f"FerretDB v1.24.2 on SQLite (the MongoDB the engine writes to): {db.uri}")
        st.note(db.uri)
    smtp, smtp_port = start_smtp()
    sink = HTTPServer(("127.0.0.1", 0), AlertSink)
    sink_thread = threading.Thread(target=sink.serve_forever, daemon=True)
    sink_thread.start()
    http_port, token = free_port(), secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{http_port}/dashboard#token={token}"
    engine = {
        "mongo_uri": db.uri, "spool_dir": str(root / "spool"),
        "log_events": "salt/minion/*/start", "stats_interval": 30, "workers": 2,
        "watchdog_interval": 2,
        "http": {"listen": f"127.0.0.1:{http_port}", "reader_tokens": [token]},
        "notify": {"channels": [
            {"type": "webhook", "url": f"http://127.0.0.1:{sink.server_port}/alerts"},
            {"type": "dingtalk", "url": f"http://127.0.0.1:{sink.server_port}/dingtalk"}]},
        "registry": {"profiles": ["demo-cloud:*"], "init_timeout": 300, "init_attempts": 1,
                     "reconcile_interval": 5, "liveness_interval": 5},
        "placement": {"cycle_interval": 600, "headroom": 0.8, "deploy_timeout": 300},
        "purchase": {
            # no daily run: the demo asks for the plan by salt-run
            "time": "manual", "timezone": "Asia/Shanghai",
            "drive_interval_s": 1, "preference": [BIG],
            "profiles": {BIG: {"flavour": "ecs.c7.12xlarge", "cpu": 48, "mem_mb": 98304,
                               "disk_gb": 200}},
            "caps": {"day": 5, "month": 50}, "approval": {"required": True, "timeout_h": 24},
            "backend": {"type": "http", "url": f"http://127.0.0.1:{sink.server_port}/orders",
                        "secret": "demo-order-api-secret-0123456789",
                        "body": {"flavour": "{flavour}", "count": "{count}",
                                 "region": "{region}", "reason": "{reason}"}},
            "partner_mail": {"url": f"smtp://127.0.0.1:{smtp_port}", "starttls": False,
                             "from": "autodeploy@demo.example", "to": ["pay@partner.example"]}},
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
    kept = False
    try:
        env.__enter__()
        env.write_pillar("top.sls", "base:\n" + "".join(
            f"  '{m}':\n    - {m}\n" for m in ("game-01", "game-02", "game-03", "game-04")))
        for m in ("game-01", "game-02", "game-03", "game-04"):
            env.write_pillar(f"{m}.sls", json.dumps(host_pillar(root, env, m)))
        with stage("the master: salt-master with the engine and its reactors", fatal=True) as st:
            env.start_master()
            say(f"master config {env.master_config_path}")
            say(f"bus {env.sock_dir}/master_event_pub.ipc, watched by autodeploy-events "
                "(the C reader)" + ("" if VERBOSE else "; --verbose prints every event"))
            watcher = subprocess.Popen(
                [str(BIN / "autodeploy-events"), "-c", str(env.master_config_path), "-m", "salt/*"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            threading.Thread(target=watch, args=(watcher,), daemon=True).start()
            time.sleep(1.5)
            st.note("salt-master + engine + reactors; the bus watched")

        with stage("1. new cloud hosts boot, register and are initialised") as st:
            say("(each in its own network namespace)" if fabric else
                "(not root: addresses given as grains)")
            # sized well above this machine: hosts in network namespaces share its
            # kernel, so their load beacons report the whole machine's load average
            keys = {"game-01": boot_host(env, fabric, "game-01", 1, 32, 65536),
                    "game-02": boot_host(env, fabric, "game-02", 2, 16, 32768)}

            def all_ready():
                return mdb.hosts.count_documents(
                    {"_id": {"$in": list(keys.values())}, "state": "ready"}) == 2

            ready = wait_until(all_ready, 90, label="hosts ready", soft=True)
            for mid, key in keys.items():
                if ready or mdb.hosts.find_one({"_id": key}):
                    continue
                say(f"{mid} has not registered; the end of its log:")
                log = env.minion_log(mid)
                for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])[-8:]:
                    say("  " + line[:160])
                env.stop_minion(mid, timeout=10)
                env.start_minion(mid)
            ready = ready or wait_until(all_ready, 120, label="hosts ready (second try)")
            rows = env.salt_run("autodeploy.hosts")["hosts"]
            table([{"key": h["_id"], "state": h["state"], "minion": h["minion"],
                    "cpu": h["capacity"]["cpu"], "mem_mb": h["capacity"]["mem_mb"],
                    "ip_rule": h.get("ip_rule")} for h in rows],
                  ["key", "state", "minion", "cpu", "mem_mb", "ip_rule"])
            if not ready:
                raise RuntimeError("not all hosts became ready in time")
            h1 = env.salt_run("autodeploy.host", "game-01")["host"]
            for h in h1["history"]:
                move = f"{h.get('from') or '-'} -> {h['to']}" if h.get("to") else h["what"]
                say(f"  {h['at']}  {move:28} {h['cause'][:90]}")
            st.note(f"{len(rows)} hosts ready, keyed <profile>:<private ip>")

        if fabric:
            with stage("1b. a reused address is quarantined") as st:
                say("minion game-03 comes up at game-01's IP")
                ns, _ = fabric.host(1)
                env.start_minion("game-03", netns=ns, grains={"autodeploy_profile": PROFILE})
                q = wait_until(lambda: mdb.hosts.find_one({"_id": "quarantine:game-03"}), 60,
                               label="quarantine")
                if not q:
                    raise RuntimeError("game-03 was not quarantined")
                say(f"quarantine:game-03  {q['state']}: {q['reason']}")
                env.stop_minion("game-03")
                env.salt_run("autodeploy.retire", "quarantine:game-03", reason="demo: not a real host")
                st.note("game-03 quarantined, alert sent, retired")

        with stage("2. deploy tasks: a game server by hand, a broken deploy alerts") as st:
            pillar = {"autodeploy": {
                "unit_dir": str(game_base / "units"),
                "service": {"id": "demo-1001", "platform": "demo", "server_no": 1001,
                            "base_dir": str(game_base), "port": 31001, "user": "root",
                            "manage_user": False, "config": {"max_players": 5000}}}}
            say("salt-run autodeploy.deploy game-01 mods=autodeploy.gameserver ...")
            task = run_task(env, "game-01", "mods=autodeploy.gameserver",
                            f"pillar={json.dumps(pillar)}", "reason=demo: open s1001")
            say(f"=> {task['state']}; files: " + ", ".join(
                str(p.relative_to(game_base)) for p in sorted(game_base.rglob("*")) if p.is_file()))
            bad = run_task(env, "game-01", "mods=autodeploy.test.fail", "reason=demo: bad build")
            shown = env.salt_run("autodeploy.task", bad["_id"])
            for r in shown["results"]:
                for s_ in r["states"][:2]:
                    say(f"{r['minion']} retcode {r['retcode']}: {s_['id']} -> "
                        f"{s_['result']}: {str(s_['comment'])[:80]}")
            wait_until(lambda: ALERTS, 20, 0.5, label="the alert")
            st.note(f"deploy {task['state']}; broken deploy {bad['state']}, {len(ALERTS)} alert(s)")

        with stage("3. load history: the beacons host init turned on") as st:
            wait_until(lambda: all(mdb.host_metrics.count_documents({"minion": m}) >= 4
                                   for m in ("game-01", "game-02")), 60, label="beacon samples")
            for m in ("game-01", "game-02"):
                n = mdb.host_metrics.count_documents({"minion": m})
                last = mdb.host_metrics.find_one({"minion": m, "beacon": "memusage"},
                                                 sort=[("at", -1)]) or {}
                say(f"{m}: {n} samples, memory {last.get('mem_pct', 0):.1f}% used")
            st.note(f"{mdb.host_metrics.count_documents({})} samples in host_metrics")

        with stage("4. reserve and placement: salt-run autodeploy.cycle") as st:
            template = {"autodeploy": {"unit_dir": str(game_base / "units"), "service": {
                "base_dir": str(game_base), "user": "root", "manage_user": False,
                "config": {"max_players": 5000, "name": "{platform} server {server_no}"}}}}
            env.salt_run("autodeploy.platform", "demo", state="autodeploy.gameserver",
                         profiles=json.dumps([PROFILE]), pillar=json.dumps(template),
                         footprint=json.dumps({"cpu": 1, "mem_mb": 2048}),
                         reserve=json.dumps({"min": 2, "max": 10}), port_base=12000)
            dry = env.salt_run("autodeploy.cycle", dry_run=True)["platforms"][0]
            r = dry["reserve"]
            say(f"dry run: rate {r.get('rate_per_day', 0):.2f}/day -> reserve {r['size']}"
                f" (clamped: {r.get('clamped')}); supply {dry['supply']}, short {dry['short']}")
            rep = env.salt_run("autodeploy.cycle")["platforms"][0]
            for p in rep["placed"]:
                say(f"placed {p['service']} on {p['host']} (dominant share {p['score']:.3f})")
            wait_until(lambda: mdb.services.count_documents(
                {"platform": "demo", "state": "deployed"}) >= 2, 180, label="services deployed")
            table([{"id": x["_id"], "state": x["state"], "host": x.get("host"), "task": x.get("task")}
                   for x in env.salt_run("autodeploy.services", platform="demo")["services"]],
                  ["id", "state", "host", "task"])
            say("why there? salt-run autodeploy.why demo-s1")
            why_table(env.salt_run("autodeploy.why", "demo-s1"))
            st.note(f"reserve {r['size']}, {len(rep['placed'])} placed and deployed")

        with stage("5. an opening, and the next cycle refills the reserve") as st:
            env.salt_run("autodeploy.opened", "demo-s1")
            wait_until(lambda: (mdb.services.find_one({"_id": "demo-s1"}) or {}).get("state")
                       == "opened", 30, label="opened")
            rep = env.salt_run("autodeploy.cycle")["platforms"][0]
            say(f"idle {rep['idle']}, reserve {rep['reserve']['size']}: created {rep['created']}, "
                f"placed {[p['service'] for p in rep['placed']]}")
            st.note(f"demo-s1 opened; refilled with {rep['created']}")

        with stage("6. simulation: a history of openings replayed against a policy") as st:
            sim = env.salt_run("autodeploy.simulate",
                               path=str(REPO / "tests" / "data" / "simulate" / "input.json"))
            sim = sim.get("report", sim)
            say(f"{sim['start']} .. {sim['end']}: {sim['openings']} openings, "
                f"{sim['openings_waited']} waited ({sim['opening_wait_hours']['total']:.1f} h), "
                f"services waited for resources {sim['resource_wait_hours']['total']:.1f} h; "
                f"hosts used {sim['hosts']['used']}/{sim['hosts']['total']}, "
                f"to buy {sim['to_buy']['hosts']}")
            st.note(f"{sim['openings']} openings replayed; {sim['to_buy']['hosts']} hosts to buy")

        with stage("7. the daily purchase: waiting services become one approved order") as st:
            # a platform whose servers fit no host here: they wait for resources
            env.salt_run("autodeploy.platform", "big", state="autodeploy.test.ok",
                         profiles=json.dumps([PROFILE, BIG]),
                         footprint=json.dumps({"cpu": 28, "mem_mb": 8192}),
                         reserve=json.dumps({"min": 1, "max": 1}))
            env.salt_run("autodeploy.cycle")
            wait_until(lambda: mdb.services.count_documents(
                {"platform": "big", "state": "waiting_resources"}) == 1, 60, label="waiting")
            w = mdb.services.find_one({"platform": "big"})
            say(f"{w['_id']} waits: {w.get('reason', '')[:100]}")
            plan = env.salt_run("autodeploy.purchase")  # dry run: the plan and its reasoning
            lines = (plan.get("plan") or {}).get("lines") or plan.get("lines") or []
            table([{"profile": ln["profile"], "flavour": ln["flavour"],
                    "services": len(ln.get("services", [])), "packed": ln["packed"],
                    "lower bound": ln["lower_bound"], "pending": ln["pending"],
                    "to order": ln["to_order"], "cut by": ln.get("cut_by") or "-"}
                   for ln in lines],
                  ["profile", "flavour", "services", "packed", "lower bound", "pending",
                   "to order", "cut by"])
            env.salt_run("autodeploy.purchase", dry_run=False)
            order = wait_until(lambda: mdb.orders.find_one({"state": "awaiting_approval"}), 30,
                               label="order planned")
            say(f"order {order['_id']}: {order['count']} x {order['flavour']}, awaiting approval")
            say(f"salt-run autodeploy.approve {order['_id']}  (a signed control event)")
            env.salt_run("autodeploy.approve", order["_id"])
            wait_until(lambda: (mdb.orders.find_one({"_id": order["_id"]}) or {}).get("state")
                       == "partner_notified", 60, label="ordered, partner emailed")
            o = mdb.orders.find_one({"_id": order["_id"]})
            say(f"cloud order {o.get('cloud_order_id')}; the partner's mail: "
                f"{MAILS[-1]['Subject'] if MAILS else '(none)'}")
            say("a host of that profile arrives (what the partner paid for) and registers")
            boot_host(env, fabric, "game-04", 4, 48, 98304, profile=BIG)
            wait_until(lambda: (mdb.orders.find_one({"_id": order["_id"]}) or {}).get("state")
                       in ("fulfilled", "closed"), 180, label="order fulfilled")
            env.salt_run("autodeploy.cycle")
            wait_until(lambda: mdb.services.count_documents(
                {"platform": "big", "state": "waiting_resources"}) == 0, 60,
                label="the queue drained")
            w = mdb.services.find_one({"platform": "big"})
            say(f"{w['_id']} is {w['state']} on {w.get('host')}")
            st.note(f"order {order['_id']} approved, placed ({o.get('cloud_order_id')}), "
                    f"emailed, fulfilled; queue drained")

        with stage("8. job returns, as the engine stored them in MongoDB") as st:
            coll = mdb["returns"]
            wait_until(lambda: coll.count_documents({}) >= 2, 15, 0.2, label="returns")
            for doc in coll.find({}, {"return": 0}).sort("received_at", 1).limit(12):
                summary = doc.get("summary")
                s_ = (f" ok={summary['ok']} changed={summary['changed']} "
                      f"failed={summary['failed']} {summary['duration_ms']:.0f} ms") if summary else ""
                say(f"{doc['_id'][:36]:36} {str(doc.get('fun')):22} retcode={doc.get('retcode')}{s_}")
            st.note(f"{coll.count_documents({})} returns stored")

        with stage("9. the dashboard, in headless Chromium") as st:
            SHOT.unlink(missing_ok=True)
            say(f"{url.split('#')[0]} with the reader token in the URL fragment")
            page, task = dashboard(url)
            rows = page.get("reserves-t", [])
            say("reserves: " + ", ".join(f"{r['data']['platform']} target {r['k']['target']}, "
                                         f"idle {r['k']['idle']}, waiting {r['k']['waiting']}"
                                         for r in rows))
            say(f"{sum(int(r['k']['n']) for r in page.get('fleet-sum', []))} hosts, "
                f"{len(page.get('tasks-t', []))} recent tasks, {len(page.get('orders-t', []))} order(s); "
                f"task {task} opened: {len(page.get(f'results-{task}', []))} state result(s)")
            st.note(f"screenshot {SHOT.relative_to(REPO)}")

        ok = stage.summary()
        if SHOT.exists():
            print(f"   dashboard: {SHOT}  (the engine's page at the end, headless Chromium)")
        if kept_child:
            kept = True
            explore(env, db, root, url)
            print(KEPT, flush=True)
            while True:  # until demo-stop's SIGTERM
                time.sleep(3600)
        return 0 if ok else 1
    except KeyboardInterrupt:
        return 130
    finally:  # also in the kept background process, when demo-stop ends it
        print(f"{clock()} stopping", flush=True)
        if watcher:
            watcher.terminate()
        env.__exit__(None, None, None)
        if fabric:
            fabric.close()
        db.cleanup()
        sink.shutdown()
        sink.server_close()
        smtp.stop()
        if kept:
            STATE.unlink(missing_ok=True)
        print("   done", flush=True)


if __name__ == "__main__":
    sys.exit(main())
