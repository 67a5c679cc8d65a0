"""Host registration: autodeploy's registry against a minimal Python engine.

1,000 synthetic minions (an accepted key and a minion data cache entry each,
written as the master writes them) and 1,000 ``salt/minion/<id>/start`` events
fired onto a real salt-master's bus in one burst, as after a master restart.
Same master, same minions, same events, same FerretDB, same run:

- ``ad``:   the C registry in the ``autodeploy`` engine inside salt-master
            (``registry.init_state: ""``, so a new host goes straight to
            ready). Per event it takes the id from the tag, reads the accepted
            key and fingerprints it, reads the grains from the data cache,
            validates them, decides (new, same host, moved, conflict) and
            writes the host document with its history on FerretDB. Which
            calls that takes per host depends on the build (``library`` in
            the JSON says which was measured).
- ``peer``: what a Salt user would write without us: a Python engine
            (``peer_engine`` below, loaded by the master from
            ``engines_dirs``) looping ``get_master_event(...).get_event``. Per
            start event: the accepted key exists (``pki_dir/minions/<id>``)
            and its ``salt.utils.crypt.pem_finger``; the grains through
            ``salt.cache.factory(opts).fetch`` (the call the master stores
            them with); the same required grains, profile globs and first
            RFC 1918 address; then one ``update_one(..., upsert=True)`` with
            pymongo into db ``adbench_peer`` of the same FerretDB, state
            ready at once. One thread, one round trip per event, no history,
            no conflict rules, no CMDB flag.

The master runs with the ``ad`` engine first; then it is restarted with only the
peer engine and the same events are fired again (the registry reconciles every
accepted key when it starts, so the minions are written after it is up).

Latency per event: the stored ``registered_at`` (ISO, ms, both sides stamp
it when they write) minus the time just before ``fire_event`` for that event.
``total_s``: from the first send to the last ``registered_at``; completion
is detected by polling a count every 0.25 s, which is not in the figure.

    .deps/venv3008/bin/python bench/bench_register.py [--events 1000] [--with-3006]

Writes bench/results/register.json (the Salt of the python running it; with
``--with-3006`` the 3006 venv's run is nested under ``salt3006``).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILE = "bench:region-a:game-4c8g"
PROBE = "adbench-probe"  # a minion without a key: its refusal says a consumer is up
PEER_DB = "adbench_peer"
RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


# ---- the peer: a Salt user's registration engine --------------------------------


def cache_location(mid):
    """(bank, key, wrapped) under which this Salt's master caches a minion's grains."""
    import inspect  # pylint: disable=import-outside-toplevel

    import salt.master  # pylint: disable=import-outside-toplevel

    # 3006 stores {"grains", "pillar"} at minions/<id>/data; 3008 the grains
    # alone at grains/<id>: read where this master's AESFuncs._pillar writes
    src = inspect.getsource(salt.master.AESFuncs._pillar)
    if '"minions/{}".format' in src or "f\"minions/{" in src:
        return f"minions/{mid}", "data", True
    return "grains", mid, False


def iso_ms(t):
    """ISO 8601 UTC with milliseconds, truncated, as the C side stamps it."""
    ms = int(t * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def peer_engine(opts, mongo_uri, profiles, db=PEER_DB):
    """The peer's main loop; runs in the master's engine process."""
    # pylint: disable=import-outside-toplevel
    import fnmatch
    import ipaddress

    import pymongo
    import salt.cache
    import salt.utils.crypt
    import salt.utils.event

    nets = [ipaddress.ip_network(n) for n in RFC1918]
    cache = salt.cache.factory(opts)
    mdb = pymongo.MongoClient(mongo_uri)[db]
    hosts, refusals = mdb["hosts"], mdb["host_refusals"]
    event = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
    wrapped = cache_location("x")[2]  # this Salt's layout, looked up once

    def refuse(mid, reason):
        refusals.insert_one({"minion": mid, "reason": reason, "at": iso_ms(time.time())})

    while True:
        ev = event.get_event(wait=1, tag="salt/minion/", full=True)
        if not ev or not fnmatch.fnmatch(ev["tag"], "salt/minion/*/start"):
            continue
        mid = ev["tag"].split("/")[2]  # the tag's id only: the event's data is forgeable
        pem = os.path.join(opts["pki_dir"], "minions", mid)
        if not os.path.isfile(pem):
            refuse(mid, "key not accepted")
            continue
        finger = salt.utils.crypt.pem_finger(pem, sum_type=opts.get("hash_type") or "sha256")
        if wrapped:  # 3006
            grains = (cache.fetch(f"minions/{mid}", "data") or {}).get("grains") or {}
        else:
            grains = cache.fetch("grains", mid) or {}
        profile = grains.get("autodeploy_profile")
        cpus, mem = grains.get("num_cpus"), grains.get("mem_total")
        if (grains.get("id") != mid or not isinstance(profile, str)
                or not any(fnmatch.fnmatchcase(profile, p) for p in profiles)
                or not isinstance(cpus, int) or not isinstance(mem, int)):
            refuse(mid, "grains missing or invalid")
            continue
        private = None
        for addr in grains.get("ipv4") or []:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                continue
            if any(ip in n for n in nets):
                private = addr
                break
        if not private:
            refuse(mid, "no private address")
            continue
        now = time.time()
        provider, region, _ = (profile.split(":") + ["", ""])[:3]
        hosts.update_one(
            {"_id": f"{profile}:{private}"},
            {"$set": {"minion": mid, "profile": profile, "provider": provider,
                      "region": region, "private_ip": private, "key_fingerprint": finger,
                      "capacity": {"cpu": cpus, "mem_mb": mem}, "state": "ready",
                      "last_seen_ms": int(now * 1000)},
             "$setOnInsert": {"first_seen": iso_ms(now), "registered_at": iso_ms(now)}},
            upsert=True)


# ---- synthetic minions and their events ----------------------------------------


def grains_for(i, mid):
    """Core grains of a small Debian VM (the registry's required ones among them)."""
    ip = f"10.{i // 250}.{i % 250}.10"
    mac = f"02:00:00:{i // 65536:02x}:{(i // 256) % 256:02x}:{i % 256:02x}"
    return {
        "id": mid, "host": mid, "fqdn": f"{mid}.bench", "nodename": mid,
        "localhost": mid, "domain": "bench", "machine_id": f"{i:032x}",
        "os": "Debian", "os_family": "Debian", "osfinger": "Debian-12",
        "osrelease": "12", "osmajorrelease": 12, "oscodename": "bookworm",
        "osfullname": "Debian GNU/Linux", "kernel": "Linux",
        "kernelrelease": "6.1.0-28-amd64", "kernelversion": "#1 SMP Debian 6.1.119-1",
        "cpuarch": "x86_64", "cpu_model": "AMD EPYC 7B13", "num_cpus": 4,
        "cpu_flags": ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic",
                      "sep", "mtrr", "pge", "mca", "cmov", "pat", "sse", "sse2", "avx", "avx2"],
        "mem_total": 7940, "swap_total": 0, "virtual": "kvm", "disks": ["vda"],
        "ipv4": ["127.0.0.1", ip], "ipv6": ["::1", "fe80::ff:fe00:1"],
        "ip4_interfaces": {"lo": ["127.0.0.1"], "eth0": [ip]},
        "ip6_interfaces": {"lo": ["::1"], "eth0": ["fe80::ff:fe00:1"]},
        "ip_interfaces": {"lo": ["127.0.0.1", "::1"], "eth0": [ip, "fe80::ff:fe00:1"]},
        "hwaddr_interfaces": {"lo": "00:00:00:00:00:00", "eth0": mac},
        "ip4_gw": f"10.{i // 250}.{i % 250}.1", "dns": {"nameservers": ["10.0.0.2"]},
        "fqdn_ip4": ["127.0.0.1"], "saltversion": "3008.4", "pythonversion": [3, 11, 7],
        "path": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "shell": "/bin/sh", "init": "systemd", "locale_info": {"defaultencoding": "utf-8"},
        "autodeploy_profile": PROFILE, "autodeploy_provider": "bench",
        "autodeploy_region": "region-a", "autodeploy_disk_gb": 40,
        "autodeploy_boot_id": f"{i:08x}-0000-4000-8000-000000000000",
    }


# what the packaging drop-in copies into the start event (start_event_grains)
START_GRAINS = ("ipv4", "ip4_interfaces", "hwaddr_interfaces", "machine_id", "host",
                "num_cpus", "mem_total", "cpuarch", "os", "os_family", "osfinger",
                "osrelease", "kernelrelease", "virtual", "saltversion",
                "autodeploy_profile", "autodeploy_provider", "autodeploy_region",
                "autodeploy_disk_gb", "autodeploy_boot_id")


def make_minions(master_opts, n):
    """Accepted keys and data cache entries for m0000.. as the master writes them."""
    # pylint: disable=import-outside-toplevel
    import salt.cache
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    # one key pair for all: the registry reads and hashes each file alike
    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = pub.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    keys = Path(master_opts["pki_dir"]) / "minions"
    keys.mkdir(parents=True, exist_ok=True)
    cache = salt.cache.factory(master_opts)
    out = {}
    for i in range(n):
        mid = f"m{i:04d}"
        g = grains_for(i, mid)
        bank, key, wrapped = cache_location(mid)
        cache.store(bank, key, {"grains": g, "pillar": {}} if wrapped else g)
        (keys / mid).write_bytes(pem)
        out[mid] = g
    return out


def start_event(mid, grains):
    tag = f"salt/minion/{mid}/start"
    now = datetime.now(timezone.utc)
    return tag, {
        "id": mid, "cmd": "_minion_event", "pretag": None, "tag": tag,
        "data": f"Minion {mid} started at {now.strftime('%a %b %d %H:%M:%S %Y')}",
        "grains": {k: grains[k] for k in START_GRAINS if k in grains},
        "ts": int(now.timestamp()), "_stamp": now.strftime("%Y-%m-%dT%H:%M:%S.%f"),
    }


def wait_consumer(bus, refusals, timeout=60):
    """Fire the keyless probe's start event until the consumer records its refusal."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        bus.fire_event(*reversed(start_event(PROBE, {})))
        t = time.time()
        while time.time() < t + 0.5:
            if refusals.count_documents({"minion": PROBE}):
                return
            time.sleep(0.05)
    raise SystemExit("the consumer never answered the probe event")


def run_phase(bus, minions, hosts, ready_query, timeout):
    """Fire every start event; wait for every host; per-event latencies."""
    sent = {}
    t0 = time.time()
    for mid, g in minions.items():
        tag, data = start_event(mid, g)
        sent[mid] = time.time()
        bus.fire_event(data, tag)
    fire_s = time.time() - t0
    deadline = time.time() + timeout
    while time.time() < deadline:
        if hosts.count_documents(ready_query) >= len(minions):
            break
        time.sleep(0.25)
    docs = list(hosts.find({"minion": {"$in": list(minions)}},
                           {"minion": 1, "registered_at": 1, "ready_at": 1, "state": 1,
                            "history": 1}))
    return sent, t0, fire_s, docs


def parse_iso(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def pct(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summarize(sent, t0, fire_s, docs, field="registered_at"):
    lat = [(parse_iso(d[field]) - sent[d["minion"]]) * 1000 for d in docs if d.get(field)]
    last = max((parse_iso(d[field]) for d in docs if d.get(field)), default=None)
    total = (last - t0) if last else None
    return {
        "registered": len(lat), "p50_ms": round(pct(lat, 0.5), 1) if lat else None,
        "p99_ms": round(pct(lat, 0.99), 1) if lat else None,
        "max_ms": round(max(lat), 1) if lat else None,
        "total_s": round(total, 3) if total else None,
        "eps": round(len(lat) / total, 1) if total else None,
        "fire_s": round(fire_s, 3),
    }


def rate_by_tenth(sent, t0, docs, field="registered_at"):
    """Hosts/s in each tenth of the run, in the order they were stored: a rate
    that falls as the collection grows means per-host work grows with it."""
    at = sorted(parse_iso(d[field]) for d in docs if d.get(field))
    step = max(1, len(at) // 10)
    out, prev = [], t0
    for k in range(step - 1, len(at), step):
        out.append(round(step / max(at[k] - prev, 1e-3), 1))
        prev = at[k]
    return out


def op_costs(coll, mid, reps=5):
    """ms per FerretDB call of each kind the registries make, on the full
    collection (none of them changes it)."""
    key = coll.find_one({"minion": mid}, {"_id": 1})["_id"]
    calls = {
        "find_by_id": lambda: coll.find_one({"_id": key}),
        "find_by_minion": lambda: coll.find_one({"minion": mid,
                                                 "state": {"$nin": ["retired", "quarantined"]}}),
        # the registry's conditional update filters on {_id, rev}; the peer's on _id
        "update_by_id_rev_nomatch": lambda: coll.update_one({"_id": key, "rev": -1},
                                                            {"$set": {"x": 1}}),
        "update_by_id_nomatch": lambda: coll.update_one({"_id": "nope:" + mid},
                                                        {"$set": {"x": 1}}),
        "delete_by_id_nomatch": lambda: coll.delete_one({"_id": "quarantine:" + mid}),
    }
    out = {}
    for name, fn in calls.items():
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out[name] = round((time.perf_counter() - t) / reps * 1000, 2)
    return out


def lib_identity(path):
    """Which library was measured: other work may rebuild it between runs."""
    import hashlib  # pylint: disable=import-outside-toplevel

    def git(*a):
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True,
                              text=True).stdout.rstrip()
    return {"sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16],
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(path))),
            "commit": git("rev-parse", "--short", "HEAD"),
            "changed": git("status", "--short", "--", "libautodeploy").splitlines()}


def load1():
    return float(Path("/proc/loadavg").read_text().split()[0])


def busy_processes():
    """Other processes using a CPU right now (ps %CPU over their lifetime is useless:
    sample /proc twice)."""
    def ticks():
        out = {}
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    st = (p / "stat").read_text()
                    f = st[st.rfind(")") + 2:].split()
                    out[int(p.name)] = (int(f[11]) + int(f[12]), st[st.find("(") + 1:st.rfind(")")])
                except (OSError, ValueError, IndexError):
                    pass
        return out
    def cpu():
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(f), f[3] + f[4]  # total, idle + iowait
    a, ca = ticks(), cpu()
    time.sleep(1.0)
    b, cb = ticks(), cpu()
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (t, name) in b.items():
        if pid in a and pid != os.getpid():
            share = (t - a[pid][0]) / hz
            if share > 0.2:
                busy.append(f"{name}({pid}) {share * 100:.0f}%")
    # short-lived processes (a compiler run) escape the list: the machine's
    # non-idle share over the same second catches them
    busy_pct = 100.0 * (1 - (cb[1] - ca[1]) / max(cb[0] - ca[0], 1))
    if busy_pct > 20:
        busy.append(f"all CPUs {busy_pct:.0f}% busy")
    return busy


# ---- one whole run under this python's Salt --------------------------------------


def run(args):
    sys.path.insert(0, str(REPO / "tests"))
    # pylint: disable=import-outside-toplevel
    from ferretdb import FerretDB
    from saltenv import SaltEnv

    busy_start, load_start = busy_processes(), load1()
    lib_src = os.path.realpath(os.environ.get("AD_LIB", REPO / "build" / "libautodeploy.so"))
    tmp = Path(tempfile.mkdtemp(prefix="adbreg-", dir="/tmp"))  # short: socket paths
    try:
        return _run(args, tmp, lib_src, busy_start, load_start, FerretDB, SaltEnv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.environ["AD_LIB"] = lib_src


def _run(args, tmp, lib_src, busy_start, load_start, FerretDB, SaltEnv):
    # pylint: disable=import-outside-toplevel
    import salt.config
    import salt.utils.event
    import salt.version

    # a private copy: the engine must not pick up a library rebuilt mid-run
    lib = tmp / "libautodeploy.so"
    shutil.copy(lib_src, lib)
    os.environ["AD_LIB"] = str(lib)  # for the master (SaltEnv passes the environment on)
    engines_dir = tmp / "engines"
    engines_dir.mkdir()
    # the peer as a Salt user deploys an engine: a module in engines_dirs
    (engines_dir / "adbench_peer.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'bench')!r})\n"
        "import bench_register\n\n\n"
        "def start(**kwargs):\n"
        "    bench_register.peer_engine(__opts__, **kwargs)\n")
    ferret = FerretDB(tmp / "ferret")
    env = None
    ad_conf = {"mongo_uri": ferret.uri, "stats_interval": 0,
               "registry": {"profiles": ["bench:*"], "init_state": "",
                            "reconcile_interval": 86400, "liveness_interval": 3600}}
    result = {"events": args.events, "salt_version": salt.version.__version__,
              "library": lib_identity(lib_src)}
    try:
        ferret.start()
        client = ferret.client()
        # Salt's default log level for the log file (warning): no per-host info line
        env = SaltEnv(tmp / "salt", Path(sys.executable).parent, log_level="warning",
                      master_opts={"engines": [{"autodeploy": ad_conf}]})
        env.start_master()
        opts = salt.config.master_config(str(env.master_config_path))
        bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)

        # ad: the engine is up (its startup reconcile saw no minions) before
        # any minion exists
        ad_db = client["autodeploy"]
        wait_consumer(bus, ad_db["host_refusals"])
        t = time.time()
        minions = make_minions(opts, args.events)
        result["make_minions_s"] = round(time.time() - t, 2)
        sent, t0, fire_s, docs = run_phase(bus, minions, ad_db["hosts"],
                                           {"profile": PROFILE, "state": "ready"}, args.timeout)
        ad = summarize(sent, t0, fire_s, docs)
        ready = summarize(sent, t0, fire_s, docs, "ready_at")
        ad["ready"] = sum(1 for d in docs if d.get("state") == "ready")
        ad["ready_p50_ms"], ad["ready_p99_ms"] = ready["p50_ms"], ready["p99_ms"]
        ad["ready_total_s"], ad["ready_eps"] = ready["total_s"], ready["eps"]
        ad["via_start_event"] = sum(
            1 for d in docs if "minion start" in (d.get("history") or [{}])[0].get("cause", ""))
        ad["eps_by_tenth"] = rate_by_tenth(sent, t0, docs)
        ad["op_ms_at_end"] = op_costs(ad_db["hosts"], "m0000")
        ad["doc_bytes"] = len(json.dumps(ad_db["hosts"].find_one({"minion": "m0000"}),
                                         default=str))
        print(f"  ad:   {ad}", flush=True)

        # peer: the same master restarted with only the peer engine
        env.stop_master()
        env.update_master_opts({"engines": [{"adbench_peer": {
            "mongo_uri": ferret.uri, "profiles": ["bench:*"]}}],
            "engines_dirs": [str(engines_dir)]})
        env.start_master()
        bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
        peer_db = client[PEER_DB]
        wait_consumer(bus, peer_db["host_refusals"])
        sent, t0, fire_s, docs = run_phase(bus, minions, peer_db["hosts"],
                                           {"profile": PROFILE, "state": "ready"}, args.timeout)
        peer = summarize(sent, t0, fire_s, docs)
        peer["eps_by_tenth"] = rate_by_tenth(sent, t0, docs)
        peer["op_ms_at_end"] = op_costs(peer_db["hosts"], "m0000")
        peer["doc_bytes"] = len(json.dumps(peer_db["hosts"].find_one({"minion": "m0000"}),
                                           default=str))
        print(f"  peer: {peer}", flush=True)
    finally:
        if env is not None:
            env.cleanup()
        ferret.cleanup()

    busy_end, load_end = busy_processes(), load1()
    result.update({k: ad[k] for k in ("registered", "p50_ms", "p99_ms", "total_s")})
    result.update({"eps": ad["eps"], "max_ms": ad["max_ms"], "fire_s": ad["fire_s"],
                   "ready": ad["ready"], "ready_p50_ms": ad["ready_p50_ms"],
                   "ready_p99_ms": ad["ready_p99_ms"], "ready_total_s": ad["ready_total_s"],
                   "ready_eps": ad["ready_eps"], "via_start_event": ad["via_start_event"],
                   "eps_by_tenth": ad["eps_by_tenth"], "op_ms_at_end": ad["op_ms_at_end"],
                   "doc_bytes": ad["doc_bytes"]})
    result.update({f"peer_{k}": v for k, v in peer.items()})
    ok = ad["ready"] == args.events and peer["registered"] == args.events
    # same end state on both sides (ready), so ours counts until ready
    result["ratio"] = round(ad["ready_eps"] / peer["eps"], 2) if ok else None
    result["ratio_p50"] = round(peer["p50_ms"] / ad["ready_p50_ms"], 2) if ok else None
    # goal (issue #13 item 2): >= 3x the peer, last tenth >= 80% of the first, p99 < 1 s
    tenths = ad["eps_by_tenth"]
    result["flat"] = round(tenths[-1] / tenths[0], 2) if tenths and tenths[0] else None
    result["goal_met"] = bool(ok and result["ratio"] >= 3 and (result["flat"] or 0) >= 0.8
                              and (args.events > 1000 or ad["p99_ms"] < 1000))
    result["load1_start"], result["load1_end"] = load_start, load_end
    result["busy_start"], result["busy_end"] = busy_start, busy_end
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=900, help="per phase, seconds")
    ap.add_argument("--with-3006", action="store_true",
                    help="also run under .deps/venv3006 (nested as salt3006)")
    ap.add_argument("--also", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="more sizes, e.g. 5000: nested under scale (current Salt only)")
    ap.add_argument("--json-out", help=argparse.SUPPRESS)  # a --with-3006 child's result
    args = ap.parse_args()
    if not 1 <= args.events <= 62500:  # 10.<0..249>.<0..249>.10
        raise SystemExit("--events: 1..62500")
    res = run(args)
    res["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for n in args.also:  # the same, at other sizes: is the rate flat as the collection grows?
        one = run(argparse.Namespace(**dict(vars(args), events=n)))
        one["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        res.setdefault("scale", []).append(one)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res))
        return
    if args.with_3006:
        py6 = REPO / ".deps" / "venv3006" / "bin" / "python"
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([str(py6), __file__, "--events", str(args.events), "--timeout",
                            str(args.timeout), "--json-out", f.name], check=True)
            res["salt3006"] = json.loads(Path(f.name).read_text())
    notes = []
    for r in [res] + ([res["salt3006"]] if "salt3006" in res else []) + res.get("scale", []):
        if r["load1_start"] > 0.5 or r["busy_start"] or r["busy_end"]:
            notes.append(f"{r['salt_version']}: machine busy: load1 {r['load1_start']} -> "
                         f"{r['load1_end']}; other busy processes at start "
                         f"{r['busy_start'] or 'none'}, at end {r['busy_end'] or 'none'}")
    res["notes"] = notes + [
        "burst of start events (as after a master restart); latency = stored registered_at "
        "(ms, truncated) - time before fire_event",
        "ratio = our events/s until every host is ready / the peer's events/s (its upsert "
        "writes ready at once); ratio_p50 = peer p50 / our p50 to ready",
        "peer: Python engine in the same master (get_master_event, salt.cache fetch, "
        "pem_finger, one pymongo upsert per event, one thread); ours: the C registry "
        f"(2 workers), several FerretDB calls per new host, a "
        f"{res['doc_bytes'] / res['peer_doc_bytes']:.1f}x larger host document",
    ]
    print(f"{'salt':8} {'events':>6} {'ours ev/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'peer ev/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}")
    for r in [res] + ([res["salt3006"]] if "salt3006" in res else []) + res.get("scale", []):
        print(f"{r['salt_version']:8} {r['events']:>6} {r['ready_eps'] or 0:>10,.0f} "
              f"{r['ready_p50_ms'] or 0:>8.1f} {r['ready_p99_ms'] or 0:>8.1f} "
              f"{r['peer_eps'] or 0:>10,.0f} {r['peer_p50_ms'] or 0:>8.1f} "
              f"{r['peer_p99_ms'] or 0:>8.1f} {r['ratio'] or 0:>6.1f}x")
    for n in notes:
        print("warning:", n)
    out = REPO / "bench" / "results" / "register.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
