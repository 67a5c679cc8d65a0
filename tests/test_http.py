"""The engine's HTTP server (docs/api-http.md) from the outside: an engine
built through the public API (ctypes) with an `http` entry and no store;
/metrics passes `promtool check metrics`, a real Prometheus (Debian) scrapes
it with the scrape token and answers a query for one series, and the
shipped alerting rules pass `promtool check rules`. About 10 s."""
import ctypes
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = os.environ.get("AD_LIB", str(ROOT / "build" / "libautodeploy.so"))
READER, SCRAPE = "reader-token-0123456789abcdef", "scrape-token-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("domain", ctypes.c_char * 16), ("message", ctypes.c_char * 240)]


@pytest.fixture(scope="module")
def engine():
    lib = ctypes.CDLL(LIB)
    lib.ad_engine_new.restype = ctypes.c_void_p
    lib.ad_engine_new.argtypes = [ctypes.c_char_p, ctypes.POINTER(Err)]
    lib.ad_engine_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    port = free_port()
    tmp = tempfile.mkdtemp()
    conf = {"sock_dir": tmp, "http": {"listen": f"127.0.0.1:{port}", "reader_tokens": [READER],
                                      "scrape_token": SCRAPE, "timeout_s": 2}}
    err = Err()
    eng = lib.ad_engine_new(json.dumps(conf).encode(), ctypes.byref(err))
    assert eng, err.message
    yield port
    p = ctypes.c_void_p(eng)
    lib.ad_engine_destroy(ctypes.byref(p))


def get(port, path, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_tokens_and_errors(engine):
    assert get(engine, "/metrics", None)[0] == 401
    assert get(engine, "/api/v1/hosts", SCRAPE)[0] == 401  # the scrape token reads no API
    st, body = get(engine, "/api/v1/hosts?limit=abc", READER)
    assert st == 400 and json.loads(body)["reason"].startswith("limit: ")
    st, body = get(engine, "/api/v1/hosts", READER)
    assert st == 503 and "reason" in json.loads(body)
    st, body = get(engine, "/api/v1/status", READER)
    assert st == 200 and json.loads(body)["store_up"] is False


def test_promtool_and_a_real_prometheus(engine, tmp_path):
    st, text = get(engine, "/metrics", SCRAPE)
    assert st == 200
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["promtool", "check", "rules",
                        str(ROOT / "packaging/prometheus/autodeploy.rules.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    (tmp_path / "token").write_text(SCRAPE)
    (tmp_path / "prom.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: autodeploy\n"
        f"    authorization: {{credentials_file: {tmp_path / 'token'}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{engine}']}}]\n")
    pport = free_port()
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prom.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{pport}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        q = urllib.parse.quote('autodeploy_http_requests_total{job="autodeploy"}')
        deadline, res = time.time() + 30, []
        while time.time() < deadline and not res:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{pport}/api/v1/query?query={q}", timeout=2) as r:
                    res = json.load(r)["data"]["result"]
            except OSError:
                pass
        assert res and float(res[0]["value"][1]) >= 1
    finally:
        prom.terminate()
        prom.wait(10)
