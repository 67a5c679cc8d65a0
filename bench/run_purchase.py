"""Purchase-planning benchmark: one daily plan of 10,000 waiting services
over 50 profiles (cpu, mem, disk), pinned to one core. Goals (issue 11):
under 50 ms, and for every profile at most 1.1 x the lower bound + 1 hosts.
The lower bound (max over dimensions of ceil(demand / (capacity x
headroom))) is the ceiling no packing beats; packed / bound is printed per
run. Writes bench/results/purchase.json. See bench/README.md.

  .deps/venv3008/bin/python bench/run_purchase.py [--reps 9] [--seeds 1,2,3]
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bench", "bench_purchase")
OUT = os.path.join(ROOT, "bench", "results", "purchase.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--profiles", type=int, default=50)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--cpu", default="1", help="core for taskset -c")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: make bench-build")
    pin = ["taskset", "-c", a.cpu] if shutil.which("taskset") else []
    runs = []
    print(f"{'seed':>5} {'services':>8} {'profiles':>8} {'ms':>8} {'goal':>6} "
          f"{'packed':>7} {'bound':>7} {'packed/bound':>12} {'worst excess':>13}")
    for seed in a.seeds.split(","):
        cmd = pin + [BIN, "--services", str(a.services), "--profiles", str(a.profiles),
                     "--reps", str(a.reps), "--seed", seed]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        row = json.loads(r.stdout)
        row["seed"] = int(seed)
        packed = sum(x["packed"] for x in row["lines"])
        bound = sum(x["lower_bound"] for x in row["lines"])
        row["packed_total"], row["lower_bound_total"] = packed, bound
        row["packed_over_bound"] = round(packed / bound, 4) if bound else None
        print(f"{seed:>5} {row['services']:>8} {row['profiles']:>8} {row['ms']:>8.2f} "
              f"{'<50':>6} {packed:>7} {bound:>7} {row['packed_over_bound']:>12.3f} "
              f"{row['worst_excess']:>13.2f}")
        runs.append(row)
    result = {"bench": "purchase", "date": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "goal": "plan < 50 ms on one core; packed <= 1.1 x lower bound + 1 per profile",
              "goal_met": all(r["goal_met"] for r in runs), "runs": runs}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"goal met: {result['goal_met']}; wrote {os.path.relpath(a.out, ROOT)}")


if __name__ == "__main__":
    main()
