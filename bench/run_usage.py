"""The engine's cost per 1,000 service samples (bench/bench_usage.c) on a FerretDB of
its own, pinned to one core; and the autodeploy_services beacon's own cost
(bench/bench_usage_beacon.py). Writes bench/results/usage.json and
bench/results/usage_beacon.json. See bench/README.md.

  .deps/venv3008/bin/python bench/run_usage.py [--reps 5] [--cpu 1]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
BIN = os.path.join(ROOT, "build", "bench", "bench_usage")
OUT = os.path.join(ROOT, "bench", "results", "usage.json")

from ferretdb import FerretDB  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cpu", default="1", help="core for taskset -c (the bench, not FerretDB)")
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: make -f bench/bench.mk {os.path.relpath(BIN, ROOT)}")
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load average {load1:.2f} > 0.5; numbers may be noisy",
              file=sys.stderr)
    pin = ["taskset", "-c", a.cpu] if shutil.which("taskset") else []
    db = FerretDB(root=tempfile.mkdtemp(prefix="adbench-usage-"))
    db.start()
    try:
        r = subprocess.run(pin + [BIN, "--uri", db.uri, "--reps", str(a.reps)],
                           capture_output=True, text=True)
    finally:
        db.stop()
        db.cleanup()
    if r.returncode != 0:
        sys.exit(f"bench_usage: exit {r.returncode}\n{r.stdout}{r.stderr}")
    row = json.loads(r.stdout)
    row["load1_at_start"] = round(load1, 2)
    print(f"{'case':10} {'wall ms/1k':>11} {'cpu ms/1k':>10} {'vs peer':>8}")
    for k in ("default", "refresh", "peer"):
        c = row[k]
        print(f"{k:10} {c['wall_ms_per_1000']:11.2f} {c['cpu_ms_per_1000']:10.2f} "
              f"{c['wall_vs_peer']:8.3f}")
    print("peer: the host beacons' path, 1,000 load samples, one insert each")
    with open(OUT, "w") as f:
        json.dump(row, f, indent=1)
        f.write("\n")
    subprocess.run(pin + [sys.executable, os.path.join(ROOT, "bench", "bench_usage_beacon.py")],
                   check=True)


if __name__ == "__main__":
    main()
