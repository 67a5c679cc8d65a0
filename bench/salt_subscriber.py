"""Salt's own event-bus subscriber, timed: the peer in bench/run_events.py.

Connects to <sock_dir>/master_event_pub.ipc exactly as Salt code does
(salt.utils.event.get_master_event(opts, sock_dir, listen=True)) and loops
get_event(full=True) until --count events have arrived. Each event is fully
decoded by Salt (salt.payload.loads); the loop also reads id, jid and
retcode, as the C "full" handler does. Prints one JSON object.

Run with a Salt venv's python:
  .deps/venv3008/bin/python bench/salt_subscriber.py --sock-dir DIR --count N
"""

import argparse
import json
import logging
import resource
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sock-dir", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--wait", type=float, default=10.0,
                    help="get_event wait per call, seconds")
    args = ap.parse_args()

    logging.basicConfig(level=logging.ERROR)
    import salt.utils.event
    import salt.version

    # A master's opts as far as the event client reads them; the rest come
    # from salt.config.DEFAULT_MASTER_OPTS (SaltEvent copies and updates it).
    # (inside sock_dir, which the caller removes, even if this is killed)
    cachedir = tempfile.mkdtemp(prefix="salt-cache-", dir=args.sock_dir)
    opts = {
        "__role": "master",
        "sock_dir": args.sock_dir,
        "ipc_mode": "ipc",
        "transport": "zeromq",
        "cachedir": cachedir,
    }
    event = salt.utils.event.get_master_event(opts, args.sock_dir, listen=True)

    n = 0
    bad = 0
    t0 = t1 = None
    cpu0 = time.process_time()
    try:
        while n < args.count:
            ev = event.get_event(full=True, wait=args.wait)
            if ev is None:
                break
            now = time.perf_counter()
            if t0 is None:
                t0 = now
            data = ev["data"]
            if not (data.get("id") and data.get("jid")) or "retcode" not in data:
                bad += 1
            n += 1
            t1 = now
        cpu = time.process_time() - cpu0
    finally:
        event.destroy()
        import shutil
        shutil.rmtree(cachedir, ignore_errors=True)

    secs = (t1 - t0) if (t0 is not None and t1 is not None) else 0.0
    # The clock starts at the first event, so n - 1 events fill secs.
    eps = (n - 1) / secs if secs > 0 else 0.0
    out = {
        "mode": "salt",
        "salt_version": salt.version.__version__,
        "events": n,
        "seconds": round(secs, 6),
        "eps": round(eps, 1),
        "cpu_s": round(cpu, 4),
        "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "bad": bad,
        "ok": n == args.count and bad == 0,
    }
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
