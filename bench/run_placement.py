"""Placement benchmark: one cycle of ad__place (heap) against ad__place_naive
(the O(H x S) scan) on the same fleet, 1k / 10k / 100k hosts, 1,000
services, pinned to one core. Prints a table with the ratio and the growth
per 1k hosts, writes bench/results/placement.json. See bench/README.md.

  .deps/venv3008/bin/python bench/run_placement.py [--reps 9] [--naive-reps 3]
      [--hosts 1000,10000,100000] [--services 1000] [--cpu 1]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bench", "bench_placement")
OUT = os.path.join(ROOT, "bench", "results", "placement.json")
PEER = ("ad__place_naive: our own baseline (the same decisions by scanning every host "
        "for every service, O(H x S)), not an outside tool")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="1000,10000,100000")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--naive-reps", type=int, default=3)
    ap.add_argument("--cpu", default="1", help="core for taskset -c")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: make -f bench/bench.mk {os.path.relpath(BIN, ROOT)}")
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: 1-minute load average {load1:.2f} > 0.5; numbers may be noisy",
              file=sys.stderr)
    pin = ["taskset", "-c", a.cpu] if shutil.which("taskset") else []
    rows = []
    for h in [int(x) for x in a.hosts.split(",")]:
        cmd = pin + [BIN, "--hosts", str(h), "--services", str(a.services),
                     "--reps", str(a.reps), "--naive-reps", str(a.naive_reps)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        rows.append(json.loads(r.stdout))
    prev = None
    print(f"ratio = {PEER} / ad__place")
    print(f"{'hosts':>8} {'services':>8} {'heap ms':>9} {'naive ms':>10} {'ratio':>8} "
          f"{'ms/1k hosts':>12} {'growth/1k':>10} {'same':>5}")
    for row in rows:
        row["ms_per_1k_hosts"] = round(row["ms"] / (row["hosts"] / 1000), 4)
        if prev:  # growth between sizes: marginal cost of each extra 1k hosts
            row["growth_ms_per_1k_hosts"] = round(
                (row["ms"] - prev["ms"]) / ((row["hosts"] - prev["hosts"]) / 1000), 4)
        row["load1_start"] = round(load1, 2)
        row["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        # not an outside peer: our own first, obvious implementation, kept as the baseline
        row["baseline"] = PEER
        print(f"{row['hosts']:>8} {row['services']:>8} {row['ms']:>9.3f} "
              f"{row['naive_ms']:>10.1f} {row['ratio']:>7.0f}x {row['ms_per_1k_hosts']:>12.4f} "
              f"{row.get('growth_ms_per_1k_hosts', float('nan')):>10.4f} "
              f"{str(row['same']).lower():>5}")
        prev = row
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(a.out, ROOT)}; load average at end "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
