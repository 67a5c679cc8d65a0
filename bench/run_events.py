"""Event-throughput benchmark for libautodeploy: orchestrates the runs,
prints the table and writes bench/results/events.json.

For each mix (a real captured job-return frame, replayed back to back by
`bench_events serve` over a Unix socket) it measures events per second of:

  full      the library's bus, a handler reading id/jid/retcode and walking
            the whole decoded data once
  filtered  the library's bus, routes matching none of the stream's tags
  salt      Salt's own subscriber (get_master_event + get_event(full=True))
  raw       a plain recv() loop on the socket (transport ceiling)
  msgpack   msgpack_unpack_next over the data bytes in memory (decode ceiling)

Each measurement is sized (after a pilot run) to last about --seconds, is
repeated --reps times in interleaved order, and reported as the median.
See bench/README.md.

  .deps/venv3008/bin/python bench/run_events.py [--reps 3] [--seconds 1.5]
      [--mixes small,medium,large] [--workers 2] [--with-3006]
"""

import argparse
import json
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
RESULTS = os.path.join(ROOT, "bench", "results")

# mix -> fixture case whose salt/job/<jid>/ret/<minion> frame is replayed
MIXES = {
    "small": "ping",          # test.ping return, ~200 B
    "medium": "state_small",  # state.apply, 10 state results, ~3 KB
    "large": "state_large",   # state.apply, 100 state results, ~27 KB
}
RET_TAG = re.compile(r"^salt/job/\d+/ret/[^/]+$")
C_MODES = ("full", "filtered", "raw", "msgpack")
SOCK_NAME = "master_event_pub.ipc"  # the name Salt's client connects to


def ret_frame(salt_dir, case):
    """(bin path, offset, size, tag) of the job-return frame of a fixture."""
    side = os.path.join(DATA, salt_dir, case + ".json")
    with open(side) as f:
        meta = json.load(f)
    for fr in meta["frames"]:
        if RET_TAG.match(fr["tag"]):
            return (os.path.join(DATA, salt_dir, case + ".bin"), fr["offset"],
                    fr["size"], fr["tag"])
    raise SystemExit(f"{side}: no salt/job/<jid>/ret/<id> frame")


class Runner:
    def __init__(self, args, sock_dir):
        self.args = args
        self.sock_dir = sock_dir
        self.sock = os.path.join(sock_dir, SOCK_NAME)

    def _start_server(self, frame, count):
        path, off, size, _ = frame
        cmd = [self.args.bench, "serve", "--sock", self.sock, "--bin", path,
               "--offset", str(off), "--size", str(size), "--count", str(count),
               "--conns", "1"]
        srv = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([srv.stdout], [], [], 10)
        line = srv.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            srv.kill()
            srv.wait()
            raise RuntimeError("replay server did not start: "
                               + srv.stderr.read().strip())
        return srv

    def run(self, mode, frame, count, salt_python=None):
        """One measurement; returns the client's JSON result."""
        path, off, size, _ = frame
        if mode == "msgpack":
            cmd = [self.args.bench, "msgpack", "--bin", path, "--offset",
                   str(off), "--size", str(size), "--count", str(count)]
            return self._client(cmd, None)
        srv = self._start_server(frame, count)
        try:
            if mode in ("full", "filtered"):
                cmd = [self.args.bench, mode, "--sock", self.sock, "--count",
                       str(count), "--workers", str(self.args.workers)]
                if self.args.queue:
                    cmd += ["--queue", str(self.args.queue)]
            elif mode == "raw":
                cmd = [self.args.bench, "raw", "--sock", self.sock,
                       "--frame-size", str(size), "--count", str(count)]
            elif mode == "salt":
                cmd = [salt_python, os.path.join(ROOT, "bench", "salt_subscriber.py"),
                       "--sock-dir", self.sock_dir, "--count", str(count)]
            else:
                raise ValueError(mode)
            res = self._client(cmd, srv)
        finally:
            if srv.poll() is None:
                try:
                    srv.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    srv.kill()
                    srv.wait()
            srv.stdout.close()
            srv.stderr.close()
        return res

    def _client(self, cmd, srv):
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=self.args.timeout)
        if p.returncode != 0 or not p.stdout.strip():
            if srv is not None and srv.poll() is None:
                srv.kill()
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n"
                               f"{p.stdout}{p.stderr}")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        if not res.get("ok", False):
            raise RuntimeError(f"{' '.join(cmd)}: result not ok: {res}")
        return res

    def calibrate(self, mode, frame, start, salt_python=None):
        """Grow a pilot run until it lasts >= 0.25 s; size the real runs to
        last about --seconds."""
        n = start
        while True:
            res = self.run(mode, frame, n, salt_python)
            secs = res["seconds"]
            if secs >= 0.25 or n >= 10**9:
                break
            grow = 0.4 / secs if secs > 0 else 10
            n = int(n * min(max(grow, 2), 20))
        return max(1000, int(res["eps"] * self.args.seconds))


def machine_info(args):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  shell=True).stdout.strip()
        except OSError:
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "cc": sh("cc --version | head -1"),
        "libzmq": sh("pkg-config --modversion libzmq"),
        "msgpack_c": sh("pkg-config --modversion msgpack"),
        "python": platform.python_version(),
        "workers": args.workers,
        "queue_size": args.queue or 10000,
    }


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def source_state():
    """The commit, and whether the library sources differ from it."""
    def git(*a):
        p = subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None
    return {"commit": git("rev-parse", "HEAD"),
            "dirty_library_files": (git("status", "--porcelain", "--",
                                        "libautodeploy/src", "libautodeploy/include")
                                    or "").splitlines()}


def salt_version(python):
    p = subprocess.run([python, "-c", "import salt.version as v; print(v.__version__)"],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def measure(runner, args, mix, salt_dir, salt_python, log):
    frame = ret_frame(salt_dir, MIXES[mix])
    size = frame[2]
    modes = list(C_MODES) + (["salt"] if salt_python else [])
    # pilot sizes: roughly 0.05-0.1 s on a small machine
    start = {"full": 4000, "filtered": 20000, "raw": 50000, "msgpack": 20000,
             "salt": 500}
    counts = {}
    for m in modes:
        counts[m] = runner.calibrate(m, frame, start[m], salt_python)
        log(f"  {mix}/{salt_dir} {m}: {counts[m]} events per run")
    runs = {m: [] for m in modes}
    for rep in range(args.reps):
        for m in modes:
            res = runner.run(m, frame, counts[m], salt_python)
            runs[m].append(res)
            log(f"  {mix}/{salt_dir} rep {rep + 1} {m}: {res['eps']:,.0f} eps"
                + (f", rss {res['rss_kb']} kB" if "rss_kb" in res else ""))
    med = {m: statistics.median(r["eps"] for r in runs[m]) for m in modes}
    row = {
        "mix": mix,
        "c_full_eps": round(med["full"], 1),
        "c_filtered_eps": round(med["filtered"], 1),
        "salt_eps": round(med["salt"], 1) if "salt" in med else None,
        "raw_eps": round(med["raw"], 1),
        "msgpack_eps": round(med["msgpack"], 1),
        "c_rss_kb": max(r["rss_kb"] for r in runs["full"]),
    }
    # CPU time of the client process per event (all its threads; the
    # replay server is not included): less sensitive to other load, and
    # not flattered by using more threads than the peer
    cpu = {m: round(statistics.median(
        1e6 * r["cpu_s"] / r["events"] for r in runs[m] if r.get("events")), 3)
        for m in modes}
    row["c_full_cpu_us"] = cpu["full"]
    row["salt_cpu_us"] = cpu.get("salt")
    detail = {
        "mix": mix, "fixture": f"{salt_dir}/{MIXES[mix]}.bin", "tag": frame[3],
        "frame_bytes": size, "data_bytes": runs["msgpack"][0]["data_len"],
        "nodes_per_event": runs["full"][0]["nodes_per_event"],
        "counts": counts,
        "runs": {m: [{k: r[k] for k in ("events", "seconds", "eps", "cpu_s",
                                        "rss_kb", "queue_full") if k in r}
                     for r in runs[m]] for m in modes},
        "cpu_us_per_event": cpu,
        "c_filtered_rss_kb": max(r["rss_kb"] for r in runs["filtered"]),
        "salt_rss_kb": max(r["rss_kb"] for r in runs["salt"]) if "salt" in runs else None,
        "median": row,
    }
    return row, detail


def ratio(a, b):
    return a / b if a and b else float("nan")


def print_table(rows, details, title, out=sys.stdout):
    print(f"\n{title}", file=out)
    hdr = (f"{'mix':<7} {'frame B':>8} {'full eps':>10} {'filtered':>11} "
           f"{'salt eps':>9} {'raw eps':>11} {'msgpack':>10} {'RSS kB':>7} "
           f"{'full/salt':>10} {'full/msgp':>10} {'filt/raw':>9} "
           f"{'full CPU us':>12} {'salt CPU us':>12}")
    print(hdr, file=out)
    print("-" * len(hdr), file=out)
    for r, d in zip(rows, details):
        salt = r["salt_eps"]
        print(f"{r['mix']:<7} {d['frame_bytes']:>8} {r['c_full_eps']:>10,.0f} "
              f"{r['c_filtered_eps']:>11,.0f} "
              f"{(f'{salt:,.0f}' if salt else '-'):>9} {r['raw_eps']:>11,.0f} "
              f"{r['msgpack_eps']:>10,.0f} {r['c_rss_kb']:>7} "
              f"{ratio(r['c_full_eps'], salt):>9.1f}x "
              f"{ratio(r['c_full_eps'], r['msgpack_eps']):>9.0%} "
              f"{ratio(r['c_filtered_eps'], r['raw_eps']):>9.0%} "
              f"{r.get('c_full_cpu_us') or 0:>12.2f} {r.get('salt_cpu_us') or 0:>12.1f}",
              file=out)


def check_goals(rows):
    med = next((r for r in rows if r["mix"] == "medium"), None)
    if not med:
        return []
    goals = [
        ("full >= 20x salt", ratio(med["c_full_eps"], med["salt_eps"]), 20.0, "x"),
        ("full >= 80% of msgpack", ratio(med["c_full_eps"], med["msgpack_eps"]), 0.8, "%"),
        ("filtered >= 50% of raw", ratio(med["c_filtered_eps"], med["raw_eps"]), 0.5, "%"),
    ]
    out = []
    for name, got, want, unit in goals:
        ok = got == got and got >= want
        shown = f"{got:.1f}x" if unit == "x" else f"{got:.0%}"
        out.append({"goal": name, "value": round(got, 4) if got == got else None,
                    "target": want, "met": ok})
        print(f"  medium: {name:<24} {shown:>7}  {'met' if ok else 'MISSED'}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_events"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5,
                    help="target duration of each measurement")
    ap.add_argument("--mixes", default="small,medium,large")
    ap.add_argument("--workers", type=int, default=2,
                    help="bus worker threads (library default 2)")
    ap.add_argument("--queue", type=int, default=0,
                    help="bus queue_size (0: library default 10000)")
    ap.add_argument("--salt-python", default=None,
                    help="python of a Salt 3008 venv (default: this one if it "
                         "has salt, else .deps/venv3008/bin/python)")
    ap.add_argument("--no-salt", action="store_true")
    ap.add_argument("--with-3006", action="store_true",
                    help="also replay the Salt 3006 (length-prefixed) captures")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds before one client run counts as hung")
    ap.add_argument("--out", default=os.path.join(RESULTS, "events.json"))
    args = ap.parse_args()

    if not os.access(args.bench, os.X_OK):
        raise SystemExit(f"{args.bench} missing: run `make bench-build` first")
    mixes = [m.strip() for m in args.mixes.split(",") if m.strip()]
    for m in mixes:
        if m not in MIXES:
            raise SystemExit(f"unknown mix {m}; choose from {', '.join(MIXES)}")

    salt_py = None
    if not args.no_salt:
        cands = [args.salt_python] if args.salt_python else [
            sys.executable, os.path.join(ROOT, ".deps", "venv3008", "bin", "python")]
        for c in cands:
            if c and os.access(c, os.X_OK) and salt_version(c):
                salt_py = c
                break
        if not salt_py:
            raise SystemExit("no python with Salt found (--salt-python, or --no-salt)")
    salt6_py = os.path.join(ROOT, ".deps", "venv3006", "bin", "python")
    if args.with_3006 and not (os.access(salt6_py, os.X_OK) and salt_version(salt6_py)):
        salt6_py = None

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    info = machine_info(args)
    info["salt"] = salt_version(salt_py) if salt_py else None
    log(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['mem_mb']} MB, "
        f"kernel {info['kernel']}; salt {info['salt']}; workers {args.workers}")

    info["source"] = source_state()
    info["loadavg_start"] = loadavg()
    if info["loadavg_start"] and info["loadavg_start"][0] > 0.5:
        log(f"warning: load average {info['loadavg_start'][0]:.2f} before the "
            "run: other work on this machine will skew the numbers")

    sock_dir = tempfile.mkdtemp(prefix="ad-bench-")
    runner = Runner(args, sock_dir)
    rows, details, rows6, details6 = [], [], [], []
    t_begin = time.time()
    detail_path = os.path.join(os.path.dirname(args.out), "events_detail.json")

    def write_results(goals):
        info["loadavg_end"] = loadavg()
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")
        with open(detail_path, "w") as f:
            json.dump({"machine": info, "reps": args.reps,
                       "target_seconds": args.seconds,
                       "elapsed_s": round(time.time() - t_begin, 1),
                       "goals_medium": goals, "salt3008": details,
                       "salt3006": details6}, f, indent=2)
            f.write("\n")

    try:
        for mix in mixes:
            row, det = measure(runner, args, mix, "salt3008", salt_py, log)
            rows.append(row)
            details.append(det)
        print_table(rows, details, f"Salt 3008 framing (bare msgpack), median of "
                    f"{args.reps}, {info['cpus']} CPUs, bus workers={args.workers}")
        goals = check_goals(rows)
        write_results(goals)  # the primary results, before the optional part
        if args.with_3006:
            try:
                for mix in mixes:
                    row, det = measure(runner, args, mix, "salt3006", salt6_py, log)
                    rows6.append(row)
                    details6.append(det)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"3006 variant abandoned: {e}")
            if rows6:
                print_table(rows6, details6, "Salt 3006 framing (4-byte length "
                            "prefix)" + ("; salt: Salt 3006.x subscriber" if salt6_py
                                         else "; salt column: no 3006 venv"))
            write_results(goals)
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)

    print(f"\nwrote {os.path.relpath(args.out, ROOT)} and "
          f"{os.path.relpath(detail_path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
