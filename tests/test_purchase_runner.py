"""The ``runner`` order backend's Alibaba Cloud side (``utils/aliyun.py``,
``runners/autodeploy_aliyun.py``) against a local server that follows the
published ECS RPC API as the official SDK (``alibabacloud-ecs20140526``)
speaks it: ``POST /?<parameters>`` with ``x-acs-action: RunInstances``,
``x-acs-version: 2014-05-26`` and the v3 signature
``Authorization: ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=...,Signature=...``,
which the server recomputes from the published algorithm. The server counts
orders per ``ClientToken``, so a retry that made a second order would show.

Checked: the action, ``ClientToken`` = the order id, ``AutoPay=false`` with
``InstanceChargeType=PrePaid``, the signature, an error answer (503
``ServiceUnavailable``) followed by a retry that makes no second order,
``DryRun``, a bad option named; the report through the library's
``order.placed`` (a stand-in master socket); and, on a real master with the
engine and FerretDB, the whole runner backend: forged ``place`` and
``placed`` events refused with evidence, then an approved order placed by
the runner and recorded by the engine. Not run against the real cloud.
About 40 s, most of it the real master.
"""

import hashlib
import hmac
import http.server
import importlib
import json
import shutil
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

aliyun = pytest.importorskip("saltext.autodeploy.utils.aliyun")
if aliyun.available():
    pytest.skip(aliyun.available(), allow_module_level=True)

AK, SK = "LTAItestkey", "test-secret-never-logged"


def v3_signature(method, path, query, headers, signed_headers, secret):
    """ACS3-HMAC-SHA256 as Alibaba Cloud publishes it (the v3 request signature)."""
    def enc(s):
        return urllib.parse.quote(s, safe="-_.~")

    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query))
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed_headers)
    request = "\n".join([method, path, canonical_query, canonical_headers,
                         ";".join(signed_headers), headers["x-acs-content-sha256"]])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(request.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


class Ecs:
    """The local ECS endpoint: one order per ClientToken, scripted failures."""

    def __init__(self):
        self.requests, self.orders, self.fail = [], {}, []
        ecs = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # pylint: disable=invalid-name
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                status, body = ecs.answer(self)
                out = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, h):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        q = dict(query)
        headers = {k.lower(): v for k, v in h.headers.items()}
        auth = headers.get("authorization", "")
        req = {"action": headers.get("x-acs-action"), "q": q, "auth": auth, "sig_ok": False}
        self.requests.append(req)
        if auth.startswith("ACS3-HMAC-SHA256 "):
            parts = dict(p.split("=", 1) for p in auth[len("ACS3-HMAC-SHA256 "):].split(","))
            want = v3_signature("POST", url.path, query, headers,
                                parts["SignedHeaders"].split(";"), SK)
            req["sig_ok"] = parts.get("Credential") == AK and hmac.compare_digest(
                want, parts.get("Signature", ""))
        rid = f"req-{len(self.requests)}"
        if not req["sig_ok"]:
            return 400, {"RequestId": rid, "Code": "IncompleteSignature",
                         "Message": "The request signature does not conform to Aliyun standards."}
        if headers.get("x-acs-version") != "2014-05-26" or req["action"] != "RunInstances":
            return 400, {"RequestId": rid, "Code": "InvalidAction.NotFound", "Message": "?"}
        if q.get("DryRun", "").lower() == "true":
            return 400, {"RequestId": rid, "Code": "DryRunOperation",
                         "Message": "Request validation has been passed with DryRun flag set."}
        if self.fail:
            status, code, make_order = self.fail.pop(0)
            if make_order:  # the order is made, the answer is lost
                self.orders.setdefault(q["ClientToken"], f"2026{len(self.orders) + 1:08d}")
            return status, {"RequestId": rid, "Code": code, "Message": "try later"}
        order = self.orders.setdefault(q["ClientToken"], f"2026{len(self.orders) + 1:08d}")
        n = int(q["Amount"])
        return 200, {"RequestId": rid, "OrderId": order, "TradePrice": 0,
                     "InstanceIdSets": {"InstanceIdSet": [f"i-{order}-{i}" for i in range(n)]}}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ecs():
    server = Ecs()
    yield server
    server.close()


def conf(ecs, **kw):
    c = aliyun.settings({"autodeploy_aliyun": {
        "access_key_id": AK, "access_key_secret": SK, "endpoint": f"127.0.0.1:{ecs.port}",
        "protocol": "http", "timeout_s": 20, "retries": 3, "backoff_s": 0.05,
        "instance": {"image_id": "m-bp1test", "security_group_id": "sg-1", "v_switch_id": "vsw-1"},
    }})
    c.update(kw)
    return c


ORDER = {"_id": "aliyun-hz-20261204", "profile": "aliyun-hz", "flavour": "ecs.g7.2xlarge",
         "count": 3, "region": "cn-hangzhou", "reason": "qq: 7 services, waited 26 h"}


def test_run_instances_unpaid_with_the_order_id_as_client_token(ecs):
    res = aliyun.run_instances(conf(ecs), ORDER, {"period": 2})
    assert res["ok"], res
    assert res["cloud_order_id"] == ecs.orders["aliyun-hz-20261204"]
    assert len(res["instance_ids"]) == 3
    (req,) = ecs.requests
    q = req["q"]
    assert req["action"] == "RunInstances" and req["sig_ok"]
    assert req["auth"].startswith("ACS3-HMAC-SHA256 Credential=" + AK + ",")
    assert q["ClientToken"] == "aliyun-hz-20261204"
    assert q["AutoPay"].lower() == "false" and q["InstanceChargeType"] == "PrePaid"
    assert q["InstanceType"] == "ecs.g7.2xlarge" and q["Amount"] == "3"
    assert q["RegionId"] == "cn-hangzhou" and q["DryRun"].lower() == "false"
    assert q["ImageId"] == "m-bp1test" and q["Period"] == "2" and q["PeriodUnit"] == "Month"
    assert q["Tag.1.Key"] == "autodeploy-order" and q["Tag.1.Value"] == "aliyun-hz-20261204"
    assert SK not in json.dumps(res)


def test_error_answer_then_retry_makes_no_second_order(ecs, caplog):
    ecs.fail = [(503, "ServiceUnavailable", True), (500, "InternalError", False)]
    res = aliyun.run_instances(conf(ecs), ORDER, log=aliyun_log())
    assert res["ok"] and res["attempts"] == 3, res
    assert len(ecs.requests) == 3
    assert {r["q"]["ClientToken"] for r in ecs.requests} == {"aliyun-hz-20261204"}
    assert len(ecs.orders) == 1  # the first try's order, returned again
    assert res["cloud_order_id"] == ecs.orders["aliyun-hz-20261204"]
    assert "try 1 failed (RunInstances: ServiceUnavailable" in caplog.text
    assert SK not in caplog.text


def test_refusal_is_not_retried_and_tries_are_bounded(ecs):
    ecs.fail = [(400, "InvalidInstanceType.NotSupported", False)]
    res = aliyun.run_instances(conf(ecs), ORDER)
    assert not res["ok"] and res["attempts"] == 1
    assert "InvalidInstanceType.NotSupported" in res["error"]
    ecs.fail = [(503, "ServiceUnavailable", False)] * 5
    res = aliyun.run_instances(conf(ecs, retries=2), ORDER)
    assert not res["ok"] and res["attempts"] == 3 and "ServiceUnavailable" in res["error"]
    assert not ecs.orders


def test_dry_run_orders_nothing(ecs):
    res = aliyun.run_instances(conf(ecs), ORDER, dry_run=True)
    assert res == {"ok": True, "cloud_order_id": None, "instance_ids": [], "error": None,
                   "dry_run": True, "attempts": 1}
    assert ecs.requests[0]["q"]["DryRun"].lower() == "true" and not ecs.orders


def test_bad_options_and_settings_are_named(ecs):
    for opts, needle in (({"auto_pay": True}, "options.auto_pay"),
                         ({"instance_charge_type": "PostPaid"}, "options.instance_charge_type"),
                         ({"imageid": "m"}, "options.imageid: not a RunInstances parameter")):
        res = aliyun.run_instances(conf(ecs), ORDER, opts)
        assert not res["ok"] and needle in res["error"], res
    res = aliyun.run_instances(conf(ecs), {**ORDER, "count": 0})
    assert "order.count" in res["error"]
    with pytest.raises(aliyun.OrderError, match="autodeploy_aliyun.access_key_secret"):
        aliyun.settings({"autodeploy_aliyun": {"access_key_id": "x"}})
    with pytest.raises(aliyun.OrderError, match="autodeploy_aliyun.secret: unknown key"):
        aliyun.settings({"autodeploy_aliyun": {"secret": "x"}})
    assert not ecs.requests


def aliyun_log():
    import logging  # pylint: disable=import-outside-toplevel

    return logging.getLogger("test_purchase_runner")


# ------------------------------------------------- the report: the library's order.placed
PROFILE = {"flavour": "ecs.g7.2xlarge", "cpu": 8, "mem_mb": 32768, "disk_gb": 100,
           "region": "cn-hangzhou"}


def purchase_conf(**kw):
    """The engine's purchase object with the runner backend, as a master would have it."""
    conf = {"time": "manual", "drive_interval_s": 1,
            "profiles": {"aliyun-hz": PROFILE}, "approval": {"required": True, "timeout_h": 24},
            "backend": {"type": "runner", "runner": "autodeploy_aliyun.place",
                        "args": {"period": 1}}}
    conf.update(kw)
    return conf


class PullSocket:
    """A stand-in master_event_pull.ipc: the frames the library fires, decoded."""

    def __init__(self, sock_dir):
        import socket  # pylint: disable=import-outside-toplevel

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(sock_dir / "master_event_pull.ipc"))
        self.sock.listen(4)
        self.sock.settimeout(10)

    def event(self):
        import msgpack  # pylint: disable=import-outside-toplevel

        conn, _ = self.sock.accept()
        with conn:
            raw = b""
            while chunk := conn.recv(65536):
                raw += chunk
        frame = msgpack.unpackb(raw[4:] if raw[:1] == b"\0" else raw, raw=False)
        tag, _, data = frame["body"].partition(b"\n\n")
        return tag.decode(), msgpack.unpackb(data, raw=False)


def test_runner_reports_through_the_library(ecs, request, monkeypatch, ad_lib):
    """The runner hands its result to ``order.placed`` (C) and fires nothing itself: the
    library checks the body and fires it signed. Whether the engine takes that event is
    test_runner_backend_on_a_real_master's to show (and the C unit test's)."""
    monkeypatch.setenv("AD_LIB", str(ad_lib))
    runner = importlib.import_module("saltext.autodeploy.runners.autodeploy_aliyun")
    assert runner.__virtual__() == "autodeploy_aliyun"
    # a short dir: a Unix socket path has at most 107 bytes, pytest's tmp_path can be longer
    sock_dir = Path(tempfile.mkdtemp(prefix="adplaced-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(sock_dir, ignore_errors=True))
    (sock_dir / ".root_key").write_bytes(b"k" * 40 + b"\n")
    pull = PullSocket(sock_dir)
    request.addfinalizer(pull.sock.close)
    engine = {"mongo_uri": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50",  # never reached
              "registry": {"enabled": False}, "placement": {}, "purchase": purchase_conf()}
    opts = {"cachedir": str(sock_dir), "sock_dir": str(sock_dir), "user": "root",
            "engines": [{"autodeploy": engine}],
            "autodeploy_aliyun": {"access_key_id": AK, "access_key_secret": SK,
                                  "endpoint": f"127.0.0.1:{ecs.port}", "protocol": "http",
                                  "backoff_s": 0.05, "instance": {"image_id": "m-1"}}}
    context = {}
    monkeypatch.setattr(runner, "__opts__", opts, raising=False)
    monkeypatch.setattr(runner, "__context__", context, raising=False)
    res = runner.place(order=ORDER, options={"period": 1})
    assert res["ok"] and res["reported"] and context["retcode"] == 0, res
    tag, data = pull.event()
    assert tag == "autodeploy/order/aliyun-hz-20261204/placed"
    assert set(data) == {"body", "sig"}, data  # signed by the library, master-made (no id)
    assert json.loads(data["body"]) == {"id": "aliyun-hz-20261204", "ok": True, "dry_run": False,
                                        "error": None, "cloud_order_id": res["cloud_order_id"]}
    # a refusal of the cloud is reported too, and sets the job's retcode
    res = runner.place(order={**ORDER, "flavour": ""})
    assert not res["ok"] and res["reported"] and context["retcode"] == 1, res
    body = json.loads(pull.event()[1]["body"])
    assert body["ok"] is False and body["error"].startswith("order.flavour"), body
    # a report that cannot go: said in the answer, with the library's reason, retcode 1
    pull.sock.close()
    (sock_dir / "master_event_pull.ipc").unlink()
    res = runner.place(order=ORDER, options={"period": 1})
    assert res["ok"] and res["reported"] is False and context["retcode"] == 1, res
    assert "master_event_pull.ipc" in res["report_error"], res
    # without the engine entry (the purchase object), nothing to report through
    opts.pop("engines")
    res = runner.place(order=ORDER, options={"period": 1})
    assert res["reported"] is False and "no autodeploy engine entry" in res["report_error"], res
    assert SK not in json.dumps(res)


# ------------------------------------------------- the loop, on a real master
REACTOR_PLACE = Path(__file__).resolve().parent.parent / "reactor" / \
    "autodeploy_order_place.sls"


def order_doc(now_ms):
    """An order awaiting approval, as the daily run leaves it (purchase/orders.c)."""
    iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now_ms / 1000))
    return {"_id": ORDER["_id"], "rev": 1, "profile": "aliyun-hz", "flavour": ORDER["flavour"],
            "region": ORDER["region"], "day": "20261204", "count": ORDER["count"],
            "state": "awaiting_approval", "reason": ORDER["reason"], "platforms": ["qq"],
            "plan": {}, "created_at": iso, "created_at_ms": now_ms, "arrived": [], "attempts": 0,
            "approval": {"via": "salt", "asked_at_ms": now_ms},
            "history": [{"at": iso, "what": "planned", "to": "planned", "cause": "test",
                         "actor": "test"}]}


def test_runner_backend_on_a_real_master(salt_env, salt_venv, ferretdb, ecs, tmp_path):
    """The runner backend end to end on one master with the engine: forged events first
    (``place`` unsigned, for another order, under another key: the reactor runs nothing;
    ``placed`` unsigned or under another key: the engine refuses it, counts it and notes
    it on the order, which does not move); then ``autodeploy.approve``, and the engine's
    signed ``place`` starts ``autodeploy_aliyun.place`` (one lost answer on the way),
    whose ``order.placed`` report the engine takes: the order is ``ordered`` with the
    cloud's order id. About 30 s."""
    import pymongo  # pylint: disable=import-outside-toplevel

    from test_reactor import Bus, signed, warnings_in  # pylint: disable=import-outside-toplevel
    from waiting import wait_for  # pylint: disable=import-outside-toplevel

    engine = {"mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / "spool"), "batch_ms": 20,
              "stats_interval": 1, "status_interval": 1, "registry": {"enabled": False},
              "placement": {"cycle_interval": 86400}, "purchase": purchase_conf()}
    env = salt_env(master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{"autodeploy/order/*/place": [str(REACTOR_PLACE)]}],
        "autodeploy_aliyun": {"access_key_id": AK, "access_key_secret": SK,
                              "endpoint": f"127.0.0.1:{ecs.port}", "protocol": "http",
                              "backoff_s": 0.05, "instance": {"image_id": "m-1"}},
    })
    db = pymongo.MongoClient(ferretdb.uri)["autodeploy"]
    db.orders.insert_one(order_doc(int(time.time() * 1000)))
    env.start_master()
    bus = Bus(env, salt_venv / "bin" / "python", env.root)
    oid = ORDER["_id"]
    try:
        # the reactor: refused, nothing runs
        tag = f"autodeploy/order/{oid}/place"
        req = {"id": oid, "runner": "autodeploy_aliyun.place", "dry_run": False,
               "args": {"period": 1}, "order": ORDER}
        bus.fire(tag, {"body": json.dumps(req)})                         # unsigned
        bus.fire(tag, signed(env, tag, {**req, "id": "other-20261204"}))  # not the tag's id
        bus.fire(tag, signed(env, tag, req, key="x" * 40))               # another key
        # the engine: a forged report, unsigned then under another key (fired until the
        # engine, which subscribes after the master starts, has seen one)
        ptag = f"autodeploy/order/{oid}/placed"
        forged = {"id": oid, "ok": True, "cloud_order_id": "forged-1", "error": None,
                  "dry_run": False}
        deadline = time.monotonic() + 90
        while "not signed" not in (db.orders.find_one({"_id": oid}) or {}).get("last_refusal", ""):
            assert time.monotonic() < deadline, "the engine never refused the unsigned placed event"
            bus.fire(ptag, {"body": json.dumps(forged)})
            time.sleep(1)
        bus.fire(ptag, signed(env, ptag, forged, key="x" * 40))
        wait_for(lambda: "bad signature" in db.orders.find_one({"_id": oid}).get("last_refusal", ""), "the placed event under another key refused", timeout=30)
        order = db.orders.find_one({"_id": oid})
        assert order["state"] == "awaiting_approval" and "cloud_order_id" not in order, order
        notes = [h.get("cause", "") for h in order["history"]]
        assert any("placed refused: not signed" in n for n in notes), notes
        assert any("placed refused: bad signature" in n for n in notes), notes
        wait_for(lambda: ((db.engine_status.find_one() or {}).get("stats", {}).get("purchase", {})
                      .get("refused_unsigned", 0) >= 2), "the refusals counted", timeout=30)
        for needle in ("not signed", "does not match the tag", "bad signature"):
            wait_for(lambda n=needle: warnings_in(env, n), f"reactor warning {needle!r}", timeout=30)
        assert not ecs.requests  # nothing forged ordered anything

        # approved: the engine fires place, the reactor runs the runner, the runner reports
        ecs.fail = [(503, "ServiceUnavailable", True)]  # the order made, its answer lost
        res = env.salt_run("autodeploy.approve", oid)
        assert res.get("fired"), res
        order = wait_for(lambda: (lambda o: o if o.get("state") == "ordered" else None)(
            db.orders.find_one({"_id": oid})), "the order ordered", timeout=120)
        assert order["cloud_order_id"] == ecs.orders[oid] and len(ecs.orders) == 1, order
        assert order["placed"]["ok"] is True and order["backend"] == "runner", order
        assert {r["q"]["ClientToken"] for r in ecs.requests} == {oid}
        # the report on the bus: master-made (no minion id), signed, the cloud's order id
        placed = wait_for(lambda: [e for e in bus.events(ptag) if "sig" in e["data"] and json.loads(
            e["data"]["body"]).get("cloud_order_id") == ecs.orders[oid]], "the report on the bus", timeout=30)[0]
        assert "id" not in placed["data"] and "cmd" not in placed["data"], placed
        assert SK not in env.master_log.read_text(errors="replace")
    finally:
        bus.close()

