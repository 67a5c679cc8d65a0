"""Job returns through a real salt-master's request server, as minions send them.

Acts as N accepted minions (ids given, each with its own pki_dir holding
minion.pem/minion.pub and the master's key: ``make_minions`` below writes
them and accepts them on the master), each with Salt's own client channel
(``salt.channel.client.AsyncReqChannel``, AES, request protocol v3, the
channel a minion's ``_return_pub`` goes through). It sends ``_return`` loads
(``cmd``, ``id``, ``jid``, ``fun``, ``fun_args``, ``return``, ``retcode``,
``success``, ``out``: what ``Minion._prepare_return_pub`` builds) at a paced
rate: the master's ReqServer hands each to an MWorker, which verifies the
minion's token, writes the job cache and fires ``salt/job/<jid>/ret/<id>``.

Pacing is open loop: return i is due at ``t0 + i / rate`` and goes to a
minion whose channel is idle (a Salt channel has one request in flight, as a
minion has). When every minion is waiting for the master, the due returns
wait too: the achieved rate then falls below the offered one, which is the
master's limit, and the lag is recorded.

Minion k's j-th return answers job j: ``jid = jid_base + j`` (20-digit
jids, distinct per step), so ``<jid>/<minion>`` never repeats and the
documents stored for a run are exactly those jids.

One change from a minion, for the generator's CPU only: the token each
request carries (``AsyncAuth.gen_token(b"salt")``, an RSA X9.31 signature
with the minion's private key, deterministic) is computed once per minion
and reused; the bytes on the wire are the same, and the master still checks
it on every request (``ReqServerChannel.validate_token``).

Run by bench/bench_load.py, one process or several:

    load_gen.py --conf gen.json        (ids, pki dirs, master port, mix)
    stdout: "ready <n authenticated>"; stdin: "go <rate> <seconds> <jid_base>"
    stdout: one JSON line with the result; then again "ready", or EOF to quit
"""
import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from bench_register import pct  # the benchmarks' one percentile (numpy's default)

REPO = Path(__file__).resolve().parents[1]


# ---- payloads -------------------------------------------------------------------


def ping_load():
    return {"fun": "test.ping", "fun_args": [], "return": True, "retcode": 0,
            "success": True, "out": "nested"}


def state_load():
    """The medium mix of bench_returns.py: a state.apply of 10 states, from a real
    3008 capture, as the minion sends it (the master adds only _stamp)."""
    import msgpack  # pylint: disable=import-outside-toplevel

    raw = (REPO / "tests" / "data" / "salt3008" / "state_small.bin").read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw)
    for frame in unpacker:
        tag, _, data = frame["body"].partition(b"\n\n")
        if b"/ret/" in tag:
            d = msgpack.unpackb(data, raw=False, strict_map_key=False)
            return {k: v for k, v in d.items() if k not in ("_stamp", "id", "jid", "cmd")}
    raise SystemExit("no state return in state_small.bin")


MIXES = {"small": ping_load, "medium": state_load}


def mix_loads(spec):
    """'small' | 'medium' | 'small:4,medium:1' -> a cycle of payloads."""
    out = []
    for part in spec.split(","):
        name, _, weight = part.partition(":")
        out += [MIXES[name]()] * int(weight or 1)
    return out


def jid_at(base, j):
    """The j-th jid after base (a 20-digit Salt jid, %Y%m%d%H%M%S%f)."""
    return str(int(base) + j)


# ---- minions --------------------------------------------------------------------


def make_minions(master_opts, root, ids):
    """A pki dir per minion (one RSA key pair shared by all: the master reads and
    checks each file alike), its key accepted on the master, the master's key
    known to the minion (no first-contact acceptance)."""
    # pylint: disable=import-outside-toplevel
    import salt.crypt

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    priv, pub = salt.crypt.gen_keys(2048)  # (private PEM, public PEM)
    pem = priv if isinstance(priv, bytes) else priv.encode()
    pub = pub if isinstance(pub, bytes) else pub.encode()
    master_pub = (Path(master_opts["pki_dir"]) / "master.pub").read_bytes()
    accepted = Path(master_opts["pki_dir"]) / "minions"
    accepted.mkdir(parents=True, exist_ok=True)
    for mid in ids:
        d = root / mid / "pki"
        d.mkdir(parents=True, exist_ok=True)
        (d / "minion.pem").write_bytes(pem)
        os.chmod(d / "minion.pem", 0o600)
        (d / "minion.pub").write_bytes(pub)
        (d / "minion_master.pub").write_bytes(master_pub)
        (accepted / mid).write_bytes(pub)


def minion_opts(mid, root, host, ret_port):
    # pylint: disable=import-outside-toplevel
    import salt.config

    d = Path(root) / mid
    overrides = {
        "id": mid, "root_dir": str(d), "pki_dir": str(d / "pki"),
        "cachedir": str(d / "cache"), "sock_dir": str(d / "sock"),
        "log_file": str(d / "minion.log"), "master": host, "master_port": ret_port,
        "master_ip": host, "master_uri": f"tcp://{host}:{ret_port}",
        "acceptance_wait_time": 1, "auth_timeout": 30, "auth_tries": 5,
        "enable_gpu_grains": False, "user": "root", "__role": "minion",
        "file_roots": {"base": [str(d / "srv")]}, "pillar_roots": {"base": [str(d / "pillar")]},
    }
    opts = salt.config.apply_minion_config(overrides, defaults=dict(salt.config.DEFAULT_MINION_OPTS))
    opts.update({k: overrides[k] for k in ("master_ip", "master_uri")})
    return opts


class Minion:
    def __init__(self, mid, opts):
        self.mid = mid
        self.opts = opts
        self.chan = None
        self.next_job = 0

    async def connect(self):
        # pylint: disable=import-outside-toplevel
        import salt.channel.client

        self.chan = salt.channel.client.AsyncReqChannel.factory(self.opts)
        await self.chan.connect()
        await self.chan.auth.authenticate()
        tok = self.chan.auth.gen_token(b"salt")
        self.chan.auth.gen_token = lambda _clear, _t=tok: _t  # see the module docstring


# ---- a paced run ----------------------------------------------------------------


async def paced(minions, loads, rate, seconds, jid_base, timeout):
    free = asyncio.Queue()
    for m in minions:
        free.put_nowait(m)
    n = int(rate * seconds)
    lat, lag, errors = [], [], {}
    acked = [0]
    per_s = {}  # second since t0 -> acks in it
    acked_ids = []
    pending = set()
    t0 = time.monotonic()
    cpu0 = time.process_time()

    async def one(m, i, due):
        j = m.next_job
        m.next_job += 1
        jid = jid_at(jid_base, j)
        load = {"cmd": "_return", "id": m.mid, "jid": jid}
        load.update(loads[i % len(loads)])
        t = time.monotonic()
        lag.append(t - due)
        try:
            await m.chan.send(load, tries=1, timeout=timeout)
            done = time.monotonic()
            lat.append(done - t)
            acked[0] += 1
            acked_ids.append(f"{jid}/{m.mid}")
            sec = int(done - t0)
            per_s[sec] = per_s.get(sec, 0) + 1
        except Exception as exc:  # pylint: disable=broad-except
            key = type(exc).__name__
            errors[key] = errors.get(key, 0) + 1
        finally:
            free.put_nowait(m)

    tick = 0.005
    i = 0
    while i < n:
        now = time.monotonic()
        due_n = min(n, int((now - t0) * rate) + 1)
        while i < due_n:
            m = await free.get()  # every minion busy: the master is behind
            task = asyncio.ensure_future(one(m, i, t0 + i / rate))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.sleep(tick)
    sent_s = time.monotonic() - t0
    if pending:
        await asyncio.wait(set(pending))
    total_s = time.monotonic() - t0
    return {
        "offered_rate": rate, "seconds": seconds, "sent": n, "acked": acked[0],
        "errors": errors, "send_s": round(sent_s, 3), "total_s": round(total_s, 3),
        "achieved_rate": round(acked[0] / total_s, 1) if total_s else None,
        "lat_p50_ms": round(pct(lat, 0.5) * 1000, 2) if lat else None,
        "lat_p99_ms": round(pct(lat, 0.99) * 1000, 2) if lat else None,
        "lat_max_ms": round(max(lat) * 1000, 2) if lat else None,
        "lag_p99_ms": round(pct(lag, 0.99) * 1000, 2) if lag else None,
        "lag_max_ms": round(max(lag) * 1000, 2) if lag else None,
        "acks_per_s": [per_s.get(s, 0) for s in range(int(total_s) + 1)],
        "gen_cpu_s": round(time.process_time() - cpu0, 3),
        "acked_ids": acked_ids,
        "jids": [jid_base, jid_at(jid_base, max((m.next_job for m in minions), default=0))],
    }


async def serve(conf):
    # pylint: disable=import-outside-toplevel
    import tornado.ioloop  # noqa: F401  (Salt's channels run on the current loop)

    loads = mix_loads(conf["mix"])
    minions = [Minion(mid, minion_opts(mid, conf["root"], conf["host"], conf["ret_port"]))
               for mid in conf["ids"]]
    for k in range(0, len(minions), 20):  # sign in, 20 at a time
        await asyncio.gather(*(m.connect() for m in minions[k:k + 20]))
    print(f"ready {len(minions)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            break
        _, rate, seconds, jid_base = line.split()
        for m in minions:
            m.next_job = 0
        res = await paced(minions, loads, float(rate), float(seconds), jid_base,
                          conf.get("timeout", 30))
        print(json.dumps(res), flush=True)
    for m in minions:
        m.chan.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conf", required=True, help="JSON: ids, root, host, ret_port, mix")
    args = ap.parse_args()
    conf = json.loads(Path(args.conf).read_text())
    import logging  # pylint: disable=import-outside-toplevel
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(conf))


if __name__ == "__main__":
    main()
