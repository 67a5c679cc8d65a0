"""Host load history (libautodeploy/src/metrics*.c) through the probe tool
``autodeploy-metrics`` (``build/bin``; it links the static library).

* prometheus: a REAL Prometheus and prometheus-node-exporter from Debian,
  run directly on loopback ports (no systemd), scraping every second; and per
  service, a REAL prometheus-process-exporter grouping a burner by its service id,
  measured through ad_call("service.usage") against /proc;
* salt: beacon events ingested into a REAL FerretDB v1.24.2 (SQLite), read
  back, indexes checked with pymongo;
* zabbix and openfalcon: local HTTP servers that follow the published
  request/response shapes (Zabbix 6.0 JSON-RPC; Open-Falcon query module
  and falcon-plus api) and assert what the client sends; no real server
  here (docs/metrics.md has a manual recipe against a real Zabbix 6.0).
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
NPROC = os.cpu_count()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mem_total_mib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemTotal")


@pytest.fixture(scope="module")
def probe():
    path = Path(os.environ.get("AD_BIN", Path(__file__).resolve().parents[1] / "build" / "bin"))
    exe = path / "autodeploy-metrics"
    if not exe.exists():
        pytest.fail(f"{exe} missing: run `make tools`")

    def run(*args, stdin=None, timeout=60):
        p = subprocess.run([str(exe), *map(str, args)], input=stdin, capture_output=True,
                           text=True, timeout=timeout, check=False)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        return p.returncode, out, p.stderr

    return run


def query(probe, backend, config, hosts, frm=-120000, to=-0, step=None, series=False,
          resources=None, timeout=60):
    args = ["--backend", backend, "--config", json.dumps(config), "--hosts", json.dumps(hosts),
            "--from", frm, "--to", to if to else int(time.time() * 1000)]
    if step:
        args += ["--step", step]
    if series:
        args.append("--series")
    if resources:
        args += ["--resources", resources]
    return probe(*args, timeout=timeout)


def p95(values):
    """Nearest rank, as metrics.c defines it."""
    v = sorted(values)
    rank = max(1, (95 * len(v) + 99) // 100)
    return v[rank - 1]


# ---- Prometheus (real) ----------------------------------------------------------


def start_prometheus(root, targets, procs, ready_query):
    """A real Prometheus on a free loopback port scraping ``targets`` every second,
    added to ``procs``; its URL once ``ready_query`` (an instant PromQL) has a result."""
    port = free_port()
    (root / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: node\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n")
    procs.append(subprocess.Popen(
        [PROMETHEUS, f"--config.file={root / 'prometheus.yml'}",
         f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=open(root / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        q = urllib.parse.quote(ready_query)
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query?query={q}", timeout=2) as r:
                if json.load(r)["data"]["result"]:
                    return url
        except OSError:
            pass
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited: "
                                   f"{(root / 'prometheus.log').read_text()[-2000:]}")
        if time.time() > deadline:
            raise RuntimeError(f"prometheus has no {ready_query} after 90 s")
        time.sleep(0.5)


def stop_all(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def prometheus():
    for exe in (PROMETHEUS, NODE_EXPORTER):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} missing: apt-get install prometheus prometheus-node-exporter "
                        "(make deps)")
    root = Path(tempfile.mkdtemp(prefix="adprom-"))
    ne_port = free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}"],
            stdout=open(root / "node_exporter.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        # rate() over [5m] needs two samples; wait until cpu gives a value.
        url = start_prometheus(root, [f"127.0.0.1:{ne_port}"], procs,
                               "sum by (instance) (rate(node_cpu_seconds_total[5m]))")
        time.sleep(5)  # a few more scrapes for the statistics
        yield {"url": url, "instance": f"127.0.0.1:{ne_port}", "ne_port": ne_port}
    finally:
        stop_all(procs)
        shutil.rmtree(root, ignore_errors=True)


def test_prometheus_real(probe, prometheus):
    hosts = [
        {"key": "local", "minion_id": "m-local", "private_ip": "127.0.0.1", "cores": NPROC},
        # An instance Prometheus does not scrape: no samples, no error.
        {"key": "ghost", "minion_id": "m-ghost", "private_ip": "127.0.0.2", "cores": 2},
    ]
    cfg = {"url": prometheus["url"], "host_id": "{ip}:%d" % prometheus["ne_port"],
           "timeout_ms": 5000}
    rc, out, err = query(probe, "prometheus", cfg, hosts, frm=-60000, step=1000, series=True)
    assert rc == 0, (out, err)
    local, ghost = out["hosts"]["local"], out["hosts"]["ghost"]
    total = mem_total_mib()
    for res in ("cpu", "mem", "disk", "load1"):
        s = local[res]
        assert s["count"] >= 5, (res, s)
        vals = [v for _, v in s["series"]]
        assert len(vals) == s["count"]
        assert s["p95"] == p95(vals)
        assert s["max"] >= s["p95"] >= sorted(vals)[len(vals) // 2]
        assert s["last"] == vals[-1]
        assert ghost[res]["count"] == 0
    assert local["cpu"]["unit"] == "cores"
    assert 0 <= local["cpu"]["p95"] <= NPROC + 0.05
    assert 1 <= local["mem"]["p95"] <= total
    assert 0 < local["disk"]["p95"] < 1
    assert local["load1"]["p95"] >= 0
    # Placement's view: fewer resources asked, the same numbers shape.
    rc, out, err = query(probe, "prometheus", cfg, hosts[:1], frm=-30000, step=2000,
                         resources="cpu,mem")
    assert rc == 0, (out, err)
    assert out["hosts"]["local"]["disk"]["count"] == 0
    assert out["hosts"]["local"]["cpu"]["count"] > 0


def test_prometheus_errors(probe, prometheus):
    hosts = [{"key": "local", "private_ip": "127.0.0.1", "minion_id": "m"}]
    cfg = {"url": prometheus["url"], "host_id": "{ip}:%d" % prometheus["ne_port"],
           "query_load1": "rate(node_load1{instance=~\"{instances}\"}"}  # unbalanced
    rc, out, _ = query(probe, "prometheus", cfg, hosts, resources="load1")
    assert rc == 1
    msg = out["error"]["message"]
    assert out["error"]["name"] == "AD_EIO"
    assert f"prometheus at {prometheus['url']}" in msg and "bad_data" in msg, msg
    # Nothing listens there.
    cfg = {"url": f"http://user:secret-token@127.0.0.1:{free_port()}/prom",
           "connect_timeout_ms": 1000}
    rc, out, _ = query(probe, "prometheus", cfg, hosts)
    assert rc == 1 and out["error"]["name"] == "AD_ECONNECT", out
    assert "secret-token" not in out["error"]["message"]
    # Config errors name the key.
    rc, out, _ = query(probe, "prometheus", {"url": "ftp://x"}, hosts)
    assert rc == 1 and "url:" in out["error"]["message"]
    rc, out, _ = query(probe, "prometheus", {"url": "http://x", "query_cpu": "up"}, hosts)
    assert "query_cpu: must contain {instances}" in out["error"]["message"]
    rc, out, _ = query(probe, "prometheus", {"url": "http://x", "timeout_ms": 5}, hosts)
    assert "timeout_ms: 5 is out of range" in out["error"]["message"]


# ---- per service: Prometheus scraping process-exporter (real) -------------------

PROCESS_EXPORTER = "/usr/bin/prometheus-process-exporter"
# process-exporter groups each game server by its service id, which it finds in the
# server's command line (docs/metrics.md has this config for real servers)
PE_CONFIG = """process_names:
  - name: "{{.Matches.service}}"
    cmdline:
    - '--autodeploy-service=(?P<service>[^ ]+)'
"""
BURN_CORES, BURN_MB = 0.5, 192


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def test_prometheus_service_usage(probe, ferretdb, ad_lib, tmp_path):
    """The engine's per-service query on a real Prometheus scraping a real
    process-exporter: a game server (a burner of known cpu and memory, grouped by
    its service id) measured through ad_call("service.usage") with the default
    templates: its samples' mean within 15% of the cpu the kernel says it burned
    (/proc/<pid>/stat), memory within 15% of its VmRSS, usage their p95; the
    cycle's footprint names the source; then an engine (in this process, without a
    master) writes the same usage on its own."""
    from test_kafka import Engine  # pylint: disable=import-outside-toplevel
    from waiting import wait_for  # pylint: disable=import-outside-toplevel
    from test_tasks import Caller  # pylint: disable=import-outside-toplevel
    from test_usage import GAME, Kernel  # pylint: disable=import-outside-toplevel

    for exe in (PROMETHEUS, PROCESS_EXPORTER):
        if not os.access(exe, os.X_OK):
            pytest.fail(f"{exe} missing: apt-get install prometheus prometheus-process-exporter "
                        "(make deps)")
    import ctypes  # pylint: disable=import-outside-toplevel

    import pymongo  # pylint: disable=import-outside-toplevel

    t_start = time.monotonic()
    procs = []
    try:
        game = tmp_path / "game.py"
        game.write_text(GAME)
        procs.append(subprocess.Popen([sys.executable, str(game), str(tmp_path / "game.pid"),
                                       str(BURN_CORES), str(BURN_MB),
                                       "--autodeploy-service=qq-s1"]))
        kernel = Kernel(procs[0].pid)
        (tmp_path / "pe.yml").write_text(PE_CONFIG)
        pe_port = free_port()
        procs.append(subprocess.Popen(
            [PROCESS_EXPORTER, f"-config.path={tmp_path / 'pe.yml'}", "-threads=false",
             "-gather-smaps=false", f"-web.listen-address=127.0.0.1:{pe_port}"],
            stdout=open(tmp_path / "pe.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        url = start_prometheus(tmp_path, [f"127.0.0.1:{pe_port}"], procs,
                               'namedprocess_namegroup_num_procs{groupname="qq-s1"}')
        first = time.time()  # Prometheus has the group from about here
        opened_ms = int(first * 1000) + 2000

        db = pymongo.MongoClient(ferretdb.uri)["adsvc"]
        db.hosts.insert_one({"_id": "h1", "minion": "m1", "private_ip": "127.0.0.1",
                             "state": "ready", "rev": 0,
                             "capacity": {"cpu": NPROC, "mem_mb": mem_total_mib()}})
        db.services.insert_one({"_id": "qq-s1", "platform": "qq", "server_no": 1, "rev": 0,
                                "state": "opened", "opened_at_ms": opened_ms, "host": "h1",
                                "minion": "m1", "footprint": {"cpu": 2.0, "mem_mb": 4096.0}})
        placement = {"cycle_interval": 86400, "measure_after_hours": 1,
                     "usage_min_samples": 15, "usage_step_s": 1,
                     "metrics": {"backend": "prometheus", "url": url,
                                 "service_host_id": "{ip}:%d" % pe_port}}
        lib = ctypes.CDLL(str(ad_lib))
        lib.ad_call.restype = ctypes.c_void_p
        lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_void_p]
        lib.ad_free.argtypes = [ctypes.c_void_p]
        call = Caller(lib, {"mongo_uri": ferretdb.uri, "mongo_db": "adsvc",
                            "sock_dir": str(tmp_path), "placement": placement})

        # too few samples yet: measured, nothing written
        time.sleep(max(0.0, opened_ms / 1000 + 3 - time.time()))
        out = call("service.usage", id="qq-s1")
        assert out["source"] == "prometheus" and out["usage"] is None, out
        assert out["written"] is False and out["min_samples"] == 15, out

        time.sleep(max(0.0, opened_ms / 1000 + 22 - time.time()))
        t_at = time.time()
        out = call("service.usage", id="qq-s1")
        rss = rss_mib(procs[0].pid)
        usage = out["usage"]
        assert out["written"] is True and usage["source"] == "prometheus", out
        assert usage["from_ms"] == opened_ms and usage["final"] is False, usage
        assert 15 <= usage["samples"] <= 25, usage  # one a second since opening
        # the same query by the probe (the same library call), for the samples:
        # usage is their p95 (nearest rank) over [opened, at]
        svc = [{"id": "qq-s1", "minion_id": "m1", "private_ip": "127.0.0.1"}]
        rc, got, err = probe("--backend", "prometheus", "--config", json.dumps(
            {k: v for k, v in placement["metrics"].items() if k != "backend"}),
            "--services", json.dumps(svc), "--from", opened_ms, "--to", usage["at_ms"],
            "--step", 1000, "--series")
        assert rc == 0, (got, err)
        cpu = [v for t, v in got["services"]["qq-s1"]["cpu"]["series"]]
        assert usage["cpu"] == pytest.approx(p95(cpu)), (usage, cpu)
        # cpu: each sample is irate, the rate between the two scrapes before it;
        # their mean is the kernel's burn from a scrape before opening to `at`
        series = got["services"]["qq-s1"]["cpu"]["series"]
        t_a, t_b = series[0][0] / 1000 - 1, series[-1][0] / 1000
        truth = (kernel.at(t_b) - kernel.at(t_a)) / (t_b - t_a)
        mean = sum(cpu) / len(cpu)
        assert abs(mean - truth) <= 0.15 * truth, (mean, truth, cpu)
        if os.getloadavg()[0] < 1:  # an idle machine gives the burner all it asks for
            assert abs(usage["cpu"] - truth) <= 0.15 * truth, (usage, truth)
        # mem: resident memory, as /proc says it
        assert abs(usage["mem_mb"] - rss) <= 0.15 * rss, (usage, rss)
        print(f"per-service query: cpu mean {mean:.3f} cores (kernel {truth:.3f}, asked "
              f"{BURN_CORES}), p95 {usage['cpu']:.3f}; mem p95 {usage['mem_mb']:.1f} MiB (VmRSS "
              f"{rss:.1f}); {usage['samples']} samples")
        stored = db.services.find_one({"_id": "qq-s1"})["usage"]
        assert stored["cpu"] == pytest.approx(usage["cpu"]) and stored["source"] == "prometheus"

        # the cycle sizes the platform by it, and says where it was measured
        call("platform.set", code="qq", reserve={"min": 2, "max": 2},
             footprint={"cpu": 2, "mem_mb": 4096})
        rep = call("cycle.run", dry_run=True)["platforms"][0]
        src = rep["footprint"]["sources"]
        assert src["cpu"] == {"from": "measured", "service": "qq-s1", "source": "prometheus",
                              "samples": usage["samples"], "window": usage["window"],
                              "final": False}, src
        assert rep["footprint"]["mem_mb"] == pytest.approx(usage["mem_mb"]), rep

        # the engine's own run (usage_source auto: the backend), 5 s after it starts and
        # then every usage_refresh_s: the same usage, written by the engine
        call("platform.set", code="qq", enabled=False)  # its cycle is not this test's
        db.services.update_one({"_id": "qq-s1"}, {"$unset": {"usage": ""}})
        for name, res, args in (("ad_engine_new", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
                                ("ad_engine_run", None, [ctypes.c_void_p, ctypes.c_void_p]),
                                ("ad_engine_stats_json", ctypes.c_void_p, [ctypes.c_void_p]),
                                ("ad_engine_destroy", None, [ctypes.c_void_p])):
            getattr(lib, name).restype, getattr(lib, name).argtypes = res, args
        eng = Engine(lib, {"mongo_uri": ferretdb.uri, "mongo_db": "adsvc", "returns": "off",
                           "sock_dir": str(tmp_path / "no-master"), "stats_interval": 0,
                           "placement": placement})
        try:
            wait_for(lambda: (db.services.find_one({"_id": "qq-s1"}) or {}).get("usage"), "usage written by the engine", timeout=30)
            mine = db.services.find_one({"_id": "qq-s1"})["usage"]
            assert mine["source"] == "prometheus" and mine["samples"] >= usage["samples"], mine
            assert abs(mine["mem_mb"] - rss) <= 0.15 * rss, (mine, rss)
            st = eng.stats()["usage"]
            assert st["source"] == "prometheus" and st["queries"] == 1, st
            assert st["refreshed"] == 1 and st["query_errors"] == 0, st
        finally:
            eng.close()
        print(f"took {time.monotonic() - t_start:.1f} s")
    finally:
        stop_all(procs)


# ---- local protocol-following servers -------------------------------------------


class Server:
    """A ThreadingHTTPServer on loopback; ``handle(handler, body) -> (status,
    obj)`` answers; every request is recorded as (path, headers, body)."""

    def __init__(self, handle):
        self.requests = []
        self.errors = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(n)
                outer.requests.append((self.path, dict(self.headers), raw))
                try:
                    status, obj = handle(self, raw)
                except AssertionError as exc:  # the client sent something wrong
                    outer.errors.append(repr(exc))
                    status, obj = 400, {"assertion": repr(exc)}
                if status is None:
                    return
                data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# Zabbix 6.0 --------------------------------------------------------------------

ZBX_SESSION = "0424bd59b807674191e7d77572075f33"
ZBX_TOKEN = "b66a2b8cd5b83c2ba1ed8f5a4b0fe7e8b7a1cd62c9a1dcb1a0aa2f1f7f1e8c3d"
NOW = int(time.time())
ITEMS = {  # itemid: (hostid, key_, value_type)
    "30001": ("10084", "system.cpu.util", "0"),
    "30002": ("10084", "vm.memory.size[available]", "3"),
    "30003": ("10084", "vm.memory.size[total]", "3"),
    "30004": ("10084", "vfs.fs.size[/,pused]", "0"),
    "30005": ("10084", "system.cpu.load[all,avg1]", "0"),
    "30011": ("10085", "system.cpu.util", "0"),
}
GIB = 1 << 30


def zabbix_history(itemid, n=20):
    """Real-shaped history rows (strings, as the API sends them)."""
    rows = []
    for i in range(n):
        v = {"30001": 10.0 + 4 * i, "30002": 8 * GIB - (i + 1) * 100 * (1 << 20),
             "30004": 41.5, "30005": 0.5 + i * 0.1, "30011": 50.0}[itemid]
        rows.append({"itemid": itemid, "clock": str(NOW - 600 + 30 * i),
                     "value": str(int(v)) if isinstance(v, int) else f"{v:.4f}",
                     "ns": "563157632"})
    return rows


class FakeZabbix:
    def __init__(self, password="zabbix", mode="ok"):
        self.password = password
        self.mode = mode
        self.calls = []
        self.sessions = {ZBX_SESSION}
        self.server = Server(self.handle)
        self.url = self.server.url

    def handle(self, h, raw):
        assert h.path == "/api_jsonrpc.php", h.path
        assert h.headers["Content-Type"].startswith("application/json-rpc")
        if self.mode == "500":
            return 500, b"<html>Internal Server Error</html>"
        if self.mode == "hang":
            time.sleep(5)
            return None, None
        req = json.loads(raw)
        assert req["jsonrpc"] == "2.0" and isinstance(req["id"], int)
        m, p = req["method"], req["params"]
        self.calls.append(m)

        def ok(result):
            return 200, {"jsonrpc": "2.0", "result": result, "id": req["id"]}

        def error(code, message, data):
            return 200, {"jsonrpc": "2.0", "error": {"code": code, "message": message,
                                                      "data": data}, "id": req["id"]}

        if m == "user.login":
            assert "auth" not in req or req["auth"] is None
            assert set(p) == {"username", "password"}, p  # 6.0: "user" is deprecated
            if p["username"] != "Admin" or p["password"] != self.password:
                return error(-32602, "Invalid params.",
                             "Incorrect user name or password or account is temporarily "
                             "blocked.")
            return ok(ZBX_SESSION)
        if req.get("auth") not in self.sessions | {ZBX_TOKEN}:
            return error(-32602, "Invalid params.", "Session terminated, re-login, please.")
        if m == "host.get":
            assert p["output"] == ["hostid", "host"] and set(p["filter"]) == {"host"}
            known = {"web-01": "10084", "web-02": "10085"}
            return ok([{"hostid": known[n], "host": n} for n in p["filter"]["host"]
                       if n in known])
        if m == "hostinterface.get":
            assert set(p["filter"]) == {"ip"}
            return ok([{"hostid": "10084", "ip": ip} for ip in p["filter"]["ip"]
                       if ip == "10.0.0.5"])
        if m == "item.get":
            assert {"itemid", "hostid", "key_", "value_type", "lastvalue"} <= set(p["output"])
            keys = set(p["filter"]["key_"])
            res = []
            for iid, (hid, key, vt) in ITEMS.items():
                if hid in p["hostids"] and key in keys:
                    last = str(8 * GIB) if key == "vm.memory.size[total]" else "0"
                    res.append({"itemid": iid, "hostid": hid, "key_": key, "value_type": vt,
                                "lastvalue": last})
            return ok(res)
        if m == "history.get":
            assert p["history"] in (0, 3)
            assert isinstance(p["time_from"], int) and isinstance(p["time_till"], int)
            for iid in p["itemids"]:
                assert ITEMS[iid][2] == str(p["history"]), (iid, p["history"])
            rows = [r for iid in p["itemids"] for r in zabbix_history(iid)]
            return ok([r for r in rows if p["time_from"] <= int(r["clock"]) <= p["time_till"]])
        if m == "trend.get":
            assert "history" not in p
            return ok([{"itemid": iid, "clock": str(NOW - 30 * 86400 + 3600 * i), "num": "60",
                        "value_min": "1.0", "value_avg": str(10 + i), "value_max": str(20 + i)}
                       for iid in p["itemids"] for i in range(5)])
        return error(-32601, "Method not found.", f"Incorrect API \"{m}\".")


@pytest.fixture
def zabbix():
    z = FakeZabbix()
    yield z
    z.server.close()
    assert not z.server.errors, z.server.errors


ZBX_HOSTS = [
    {"key": "a", "minion_id": "web-01", "private_ip": "10.0.0.5", "cores": 4, "mem_mb": 8192},
    {"key": "b", "minion_id": "web-02", "private_ip": "10.0.0.6", "cores": 2},
    {"key": "c", "minion_id": "not-in-zabbix", "private_ip": "10.0.0.7", "cores": 2},
]


def test_zabbix_protocol(probe, zabbix):
    cfg = {"url": zabbix.url, "username": "Admin", "password": "zabbix"}
    rc, out, err = query(probe, "zabbix", cfg, ZBX_HOSTS, frm=-900000, series=True)
    assert rc == 0, (out, err)
    # Batched: one call per step for all three hosts; two history.get (value types 0, 3).
    assert zabbix.calls == ["user.login", "host.get", "item.get", "history.get", "history.get"]
    a, b, c = (out["hosts"][k] for k in "abc")
    cpu = [(10.0 + 4 * i) / 100 * 4 for i in range(20)]
    assert a["cpu"]["count"] == 20 and math.isclose(a["cpu"]["p95"], p95(cpu))
    assert math.isclose(a["cpu"]["max"], max(cpu)) and math.isclose(a["cpu"]["last"], cpu[-1])
    # mem: total (lastvalue 8 GiB) - available, in MiB
    assert math.isclose(a["mem"]["last"], 2000.0) and math.isclose(a["mem"]["max"], 2000.0)
    assert math.isclose(a["disk"]["p95"], 0.415)
    assert math.isclose(a["load1"]["last"], 2.4)
    assert math.isclose(b["cpu"]["p95"], 1.0)  # 50% of 2 cores
    assert all(c[r]["count"] == 0 for r in ("cpu", "mem", "disk", "load1"))


def test_zabbix_token_ip_and_trends(probe, zabbix):
    cfg = {"url": zabbix.url + "/", "api_token": ZBX_TOKEN, "host_by": "ip",
           "history_days": 7}
    rc, out, err = query(probe, "zabbix", cfg, ZBX_HOSTS[:1], frm=-(31 * 86400 * 1000),
                         resources="cpu")
    assert rc == 0, (out, err)
    assert zabbix.calls == ["hostinterface.get", "item.get", "trend.get"]
    cpu = out["hosts"]["a"]["cpu"]
    # trend_value "max" (default): hourly maxima 20..24 % of 4 cores
    assert cpu["count"] == 5 and math.isclose(cpu["max"], 0.96)


def test_zabbix_session_renewed_once(probe, zabbix):
    """A session Zabbix ended is renewed by one new login (the probe is one
    process: the first login's session is dropped server-side mid-query)."""
    zabbix.sessions = set()  # every session is "terminated"
    cfg = {"url": zabbix.url, "username": "Admin", "password": "zabbix"}
    rc, out, _ = query(probe, "zabbix", cfg, ZBX_HOSTS[:1])
    assert rc == 1
    assert zabbix.calls == ["user.login", "host.get", "user.login", "host.get"]
    assert "re-login" in out["error"]["message"]


def test_zabbix_errors(probe, zabbix):
    cfg = {"url": zabbix.url, "username": "Admin", "password": "wrong-password-123"}
    rc, out, _ = query(probe, "zabbix", cfg, ZBX_HOSTS)
    assert rc == 1 and out["error"]["name"] == "AD_EIO"
    msg = out["error"]["message"]
    assert f"zabbix at {zabbix.url}" in msg and "user.login" in msg
    assert "Incorrect user name or password" in msg and "wrong-password-123" not in msg
    zabbix.mode = "500"
    rc, out, _ = query(probe, "zabbix", {**cfg, "password": "zabbix"}, ZBX_HOSTS)
    assert rc == 1 and "HTTP 500" in out["error"]["message"], out
    zabbix.mode = "hang"
    t0 = time.time()
    rc, out, _ = query(probe, "zabbix", {**cfg, "password": "zabbix", "timeout_ms": 1000},
                       ZBX_HOSTS)
    assert rc == 1 and out["error"]["name"] == "AD_ETIMEOUT", out
    assert time.time() - t0 < 4
    rc, out, _ = query(probe, "zabbix", {"url": zabbix.url, "username": "Admin"}, ZBX_HOSTS)
    assert "api_token: required, or username and password" in out["error"]["message"]
    rc, out, _ = query(probe, "zabbix", {**cfg, "host_by": "dns"}, ZBX_HOSTS)
    assert "host_by: \"dns\" is not one of host, ip" in out["error"]["message"]


# Open-Falcon --------------------------------------------------------------------

FALCON_TOKEN = {"name": "root", "sig": "a1b2c3d4e5f6"}


class FakeFalcon:
    def __init__(self, mode="ok"):
        self.mode = mode
        self.bodies = []
        self.server = Server(self.handle)
        self.url = self.server.url

    @staticmethod
    def values(counter):
        base = {"cpu.busy": 25.0, "mem.memused": 3 * GIB, "load.1min": 0.75,
                "df.bytes.used.percent/fstype=ext4,mount=/": 60.0}[counter]
        vals = [{"timestamp": NOW - 600 + 60 * i, "value": base * (1 + i / 10)}
                for i in range(10)]
        vals[3]["value"] = None  # an RRD gap
        return vals

    def handle(self, h, raw):
        if self.mode == "500":
            return 500, {"error": "graph backend down"}
        req = json.loads(raw)
        self.bodies.append(req)
        if h.path == "/graph/history":  # the query module
            assert set(req) == {"start", "end", "cf", "endpoint_counters"}, req
            assert req["cf"] == "AVERAGE" and req["start"] < req["end"]
            pairs = [(ec["endpoint"], ec["counter"]) for ec in req["endpoint_counters"]]
        elif h.path == "/api/v1/graph/history":  # falcon-plus api
            assert json.loads(h.headers["Apitoken"]) == FALCON_TOKEN
            assert set(req) == {"hostnames", "counters", "consol_fun", "start_time", "end_time",
                                "step"}, req
            pairs = [(e, c) for e in req["hostnames"] for c in req["counters"]]
        else:
            return 404, {"error": "page not found"}
        return 200, [{"endpoint": e, "counter": c, "dstype": "GAUGE", "step": 60,
                      "Values": self.values(c) if e == "game-01" else None}
                     for e, c in pairs]


@pytest.fixture
def falcon():
    f = FakeFalcon()
    yield f
    f.server.close()
    assert not f.server.errors, f.server.errors


FALCON_HOSTS = [{"key": "g1", "minion_id": "game-01", "cores": 8},
                {"key": "g2", "minion_id": "game-02", "cores": 8}]


@pytest.mark.parametrize("api", ["query", "plus"])
def test_openfalcon_protocol(probe, falcon, api):
    cfg = {"url": falcon.url, "api": api}
    if api == "plus":
        cfg.update(api_token_name=FALCON_TOKEN["name"], api_token_sig=FALCON_TOKEN["sig"])
    rc, out, err = query(probe, "openfalcon", cfg, FALCON_HOSTS, frm=-900000)
    assert rc == 0, (out, err)
    assert len(falcon.bodies) == 1  # one request for both hosts and four counters
    if api == "query":
        assert len(falcon.bodies[0]["endpoint_counters"]) == 8
    g1, g2 = out["hosts"]["g1"], out["hosts"]["g2"]
    cpu = [25.0 * (1 + i / 10) / 100 * 8 for i in range(10) if i != 3]
    assert g1["cpu"]["count"] == 9 and math.isclose(g1["cpu"]["p95"], p95(cpu))
    assert math.isclose(g1["mem"]["last"], 3 * 1024 * 1.9)
    assert math.isclose(g1["disk"]["last"], 0.6 * 1.9)
    assert g2["cpu"]["count"] == 0


def test_openfalcon_errors(probe, falcon):
    falcon.mode = "500"
    rc, out, _ = query(probe, "openfalcon", {"url": falcon.url}, FALCON_HOSTS)
    assert rc == 1 and "HTTP 500: graph backend down" in out["error"]["message"], out
    assert f"openfalcon at {falcon.url}" in out["error"]["message"]
    rc, out, _ = query(probe, "openfalcon", {"url": falcon.url, "api_token_name": "root"},
                       FALCON_HOSTS)
    assert "api_token_sig: needed with api_token_name" in out["error"]["message"]


# ---- Salt beacons in FerretDB (real) ---------------------------------------------


def beacon_events(minion, t0, n=20):
    """autodeploy-events lines, shaped as the 3008.4 master sends them."""
    lines = []
    for i in range(n):
        at = t0 + 60000 * i
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime(at / 1000))
        lines.append({"tag": f"salt/beacon/{minion}/load/", "at_ms": at,
                      "data": {"1m": 0.2 * (i + 1), "5m": 1.95068359375, "15m": 1.91064453125,
                               "id": minion, "_stamp": stamp}})
        lines.append({"tag": f"salt/beacon/{minion}/memusage/", "at_ms": at,
                      "data": {"memusage": 10.0 + i, "id": minion, "_stamp": stamp}})
        for mount, pct in (("/", 15.5), ("/data", 70.0)):
            lines.append({"tag": f"salt/beacon/{minion}/diskusage/", "at_ms": at,
                          "data": {"diskusage": pct, "mount": mount, "id": minion,
                                   "_stamp": stamp}})
    return "\n".join(json.dumps(x) for x in lines) + "\n"


def test_salt_beacons_ferretdb(probe, ferretdb):
    cfg = {"mongo_uri": ferretdb.uri, "db": "adtest"}
    t0 = int(time.time() * 1000) - 30 * 60000
    rc, out, err = probe("--backend", "salt", "--config", json.dumps(cfg), "--ingest",
                         stdin=beacon_events("m1", t0))
    assert rc == 0, (out, err)
    assert out == {"ingested": 80, "refused": [], "ttl": False}  # FerretDB: no TTL indexes
    hosts = [{"key": "m1", "minion_id": "m1", "cores": 2, "mem_mb": 4096},
             {"key": "m2", "minion_id": "m2", "cores": 2, "mem_mb": 4096}]
    rc, out, err = query(probe, "salt", cfg, hosts, frm=t0, to=t0 + 19 * 60000, series=True)
    assert rc == 0, (out, err)
    m1 = out["hosts"]["m1"]
    loads = [0.2 * (i + 1) for i in range(20)]
    assert m1["load1"]["count"] == 20 and math.isclose(m1["load1"]["p95"], p95(loads))
    cpu = [min(x, 2) for x in loads]  # capped at the cores there are
    assert math.isclose(m1["cpu"]["p95"], p95(cpu)) and m1["cpu"]["max"] == 2
    mem = [(10.0 + i) / 100 * 4096 for i in range(20)]
    assert math.isclose(m1["mem"]["p95"], p95(mem))
    assert math.isclose(m1["mem"]["last"], mem[-1])
    assert m1["mem"]["last_at_ms"] == t0 + 19 * 60000
    assert m1["disk"]["count"] == 20 and math.isclose(m1["disk"]["max"], 0.155)  # "/" only
    assert out["hosts"]["m2"]["cpu"]["count"] == 0
    # A narrower window: only what is in it.
    rc, out, _ = query(probe, "salt", cfg, hosts[:1], frm=t0 + 10 * 60000, to=t0 + 12 * 60000)
    assert out["hosts"]["m1"]["load1"]["count"] == 3
    # Indexes: {minion, at}, and on FerretDB 1.24 a plain {at} (TTL is not implemented).
    coll = ferretdb.client()["adtest"]["host_metrics"]
    idx = {i["name"]: i for i in coll.list_indexes()}
    assert dict(idx["minion_1_at_1"]["key"]) == {"minion": 1, "at": 1}
    assert dict(idx["at_1"]["key"]) == {"at": 1} and "expireAfterSeconds" not in idx["at_1"]
    # Idempotent: ingesting again re-creates nothing and inserts.
    rc, out, _ = probe("--backend", "salt", "--config", json.dumps(cfg), "--ingest",
                       stdin=beacon_events("m1", t0 + 20 * 60000, n=1))
    assert rc == 0 and out["ingested"] == 4
    # Pruning is what the TTL index would do.
    rc, out, _ = probe("--backend", "salt", "--config", json.dumps(cfg), "--prune-before",
                       t0 + 10 * 60000)
    assert rc == 0 and out == {"deleted": 40}
    assert coll.count_documents({}) == 44
    doc = coll.find_one({"beacon": "diskusage", "mount": "/data"}, {"_id": 0})
    assert doc["minion"] == "m1" and doc["disk_pct"] == 70.0


def test_salt_refuses_bad_beacons(probe, ferretdb):
    cfg = {"mongo_uri": ferretdb.uri, "db": "adtest"}
    bad = [
        {"tag": "salt/beacon/m1/memusage/", "data": {"memusage": "4.9", "id": "m1"}},
        {"tag": "salt/beacon/m1/memusage/", "data": {"memusage": 140.0, "id": "m1"}},
        {"tag": "salt/beacon/m1/load/", "data": {"1m": 1.0, "5m": 1.0, "id": "m1"}},
        {"tag": "salt/beacon/m1/load/", "data": {"1m": -1.0, "5m": 1.0, "15m": 1, "id": "m1"}},
        {"tag": "salt/beacon/m1/diskusage/", "data": {"diskusage": 15.5, "id": "m1"}},
        {"tag": "salt/beacon/m1/load/", "data": {"1m": 1.0, "5m": 1.0, "15m": 1, "id": "m2"}},
        {"tag": "salt/beacon/m1/ps/", "data": {"id": "m1"}},
    ]
    good = {"tag": "salt/beacon/m1/memusage/", "data": {"memusage": 4.9, "id": "m1"}}
    stdin = "\n".join(json.dumps(x) for x in bad + [good]) + "\nnot json\n"
    rc, out, err = probe("--backend", "salt", "--config", json.dumps(cfg), "--ingest",
                         stdin=stdin)
    assert rc == 3, (out, err)
    assert out["ingested"] == 1
    msgs = [r["error"] for r in out["refused"]]
    assert len(msgs) == 8
    assert msgs[0] == "memusage beacon: \"memusage\" is not a number"
    assert msgs[1] == "memusage beacon: \"memusage\" = 140 is outside 0..100"
    assert msgs[2] == "load beacon: no \"15m\""
    assert msgs[3] == "load beacon: \"1m\" = -1 is outside 0..1e+06"
    assert msgs[4] == "diskusage beacon: no \"mount\" string"
    assert "does not match the minion in the tag (m1)" in msgs[5]
    assert "not one of load, memusage, diskusage" in msgs[6]
    assert msgs[7].startswith("not JSON")
    assert ferretdb.client()["adtest"]["host_metrics"].count_documents({}) == 1
