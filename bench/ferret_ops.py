"""What FerretDB costs per call as a collection grows (docs/registration.md, "Known limits").

One FerretDB (tests/ferretdb.py), one collection of ~1.5 KB documents grown to
100, 1,000 and 3,000; at each size, ms per call of the operations the registry
could use. Prints one JSON line per size. Not part of `make bench`; about a minute.

    .deps/venv3008/bin/python bench/ferret_ops.py [--sizes 100,1000,3000]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from ferretdb import FerretDB  # noqa: E402


def ms_per_call(fn, reps):
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return round((time.perf_counter() - t) / reps * 1000, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000,3000")
    args = ap.parse_args()
    ferret = FerretDB(Path(tempfile.mkdtemp(prefix="adferret-")) / "f").start()
    try:
        c = ferret.client()["ops"]["hosts"]
        pad = "x" * 1400
        n = [0]

        def doc(i):
            return {"_id": f"k{i}", "minion": f"m{i}", "pad": pad, "rev": 0}

        def insert_one():
            c.insert_one(doc(n[0]))
            n[0] += 1

        def insert_100():
            c.insert_many([doc(n[0] + j) for j in range(100)], ordered=False)
            n[0] += 100

        for size in (int(x) for x in args.sizes.split(",")):
            while n[0] < size:
                insert_one()
            late = f"k{size - 3}"
            row = {
                "docs": size,
                "find_id_early": ms_per_call(lambda: list(c.find({"_id": "k5"})), 20),
                "find_id_late": ms_per_call(lambda: list(c.find({"_id": late})), 20),
                "find_id_late_limit1": ms_per_call(lambda: list(c.find({"_id": late}).limit(1)), 20),
                "find_id_missing": ms_per_call(lambda: list(c.find({"_id": "nope"})), 20),
                "find_in_100": ms_per_call(
                    lambda: list(c.find({"_id": {"$in": [f"k{j}" for j in range(100)]}})), 5),
                "count_other_field": ms_per_call(
                    lambda: c.count_documents({"minion": "m1", "rev": 0}), 3),
                "update_id_nomatch": ms_per_call(
                    lambda: c.update_one({"_id": "nope"}, {"$set": {"x": 1}}), 5),
                "update_id_rev_nomatch": ms_per_call(
                    lambda: c.update_one({"_id": late, "rev": -1}, {"$set": {"x": 1}}), 5),
                "insert_one": ms_per_call(insert_one, 20),
                "insert_100_bulk": ms_per_call(insert_100, 3),
            }
            print(json.dumps(row), flush=True)
    finally:
        ferret.cleanup()


if __name__ == "__main__":
    main()
