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
``DryRun``, a bad option named, and the signed ``placed`` report. Not run
against the real cloud. About 2 s; no Salt processes.
"""

import base64
import hashlib
import hmac
import http.server
import importlib
import json
import threading
import urllib.parse

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


def test_runner_reports_a_signed_placed_event(ecs, tmp_path, monkeypatch):
    runner = importlib.import_module("saltext.autodeploy.runners.autodeploy_aliyun")
    key = b"k" * 40 + b"\n"
    (tmp_path / ".root_key").write_bytes(key)
    fired = []

    class FakeEvent:  # what salt.utils.event.get_master_event returns, as used
        def __init__(self, opts, sock_dir, listen):
            assert sock_dir == str(tmp_path) and not listen

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def fire_event(self, data, tag):
            fired.append((tag, data))
            return True

    import salt.utils.event  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(salt.utils.event, "get_master_event", FakeEvent)
    opts = {"cachedir": str(tmp_path), "sock_dir": str(tmp_path), "user": "root",
            "autodeploy_aliyun": {"access_key_id": AK, "access_key_secret": SK,
                                  "endpoint": f"127.0.0.1:{ecs.port}", "protocol": "http",
                                  "backoff_s": 0.05, "instance": {"image_id": "m-1"}}}
    context = {}
    monkeypatch.setattr(runner, "__opts__", opts, raising=False)
    monkeypatch.setattr(runner, "__context__", context, raising=False)
    res = runner.place(order=ORDER, options={"period": 1})
    assert res["ok"] and res["reported"], res
    (tag, data), = fired
    assert tag == "autodeploy/order/aliyun-hz-20261204/placed"
    body = json.loads(data["body"])
    assert body == {"id": "aliyun-hz-20261204", "ok": True, "dry_run": False, "error": None,
                    "cloud_order_id": res["cloud_order_id"]}
    # the formula of bus/sign.h and the reactor: HMAC-SHA256(key file bytes, tag|body)
    want = base64.b64encode(hmac.new(key, f"{tag}|{data['body']}".encode(),
                                     hashlib.sha256).digest()).decode()
    assert data["sig"] == want
    assert data["body"] == json.dumps(body, sort_keys=True, separators=(",", ":"))
    # a refusal is reported too, and sets the job's retcode
    res = runner.place(order={**ORDER, "flavour": ""})
    assert not res["ok"] and context["retcode"] == 1
    assert json.loads(fired[-1][1]["body"])["error"].startswith("order.flavour")


# ------------------------------------------------- the reactor, on a real master
REACTOR_PLACE = __import__("pathlib").Path(__file__).resolve().parent.parent / "reactor" / \
    "autodeploy_order_place.sls"


def test_reactor_runs_the_runner_only_for_signed_events(salt_env, salt_venv, ecs, tmp_path):
    """A signed ``autodeploy/order/<id>/place`` starts ``autodeploy_aliyun.place``, which
    orders at the local ECS endpoint and reports a signed ``placed`` event; an unsigned one
    or one whose id is not the tag's is refused and logged. About 15 s (one master)."""
    from test_reactor import Bus, master_key, signed, warnings_in  # pylint: disable=import-outside-toplevel

    env = salt_env(master_opts={
        "reactor": [{"autodeploy/order/*/place": [str(REACTOR_PLACE)]}],
        "autodeploy_aliyun": {"access_key_id": AK, "access_key_secret": SK,
                              "endpoint": f"127.0.0.1:{ecs.port}", "protocol": "http",
                              "backoff_s": 0.05, "instance": {"image_id": "m-1"}},
    })
    env.start_master()
    bus = Bus(env, salt_venv / "bin" / "python", env.root)
    try:
        tag = "autodeploy/order/aliyun-hz-20261204/place"
        req = {"id": ORDER["_id"], "runner": "autodeploy_aliyun.place", "dry_run": False,
               "args": {"period": 1}, "order": ORDER}
        bus.fire(tag, {"body": json.dumps(req)})                         # unsigned
        bus.fire(tag, signed(env, tag, {**req, "id": "other-20261204"}))  # not the tag's id
        bus.fire(tag, signed(env, tag, req, key="x" * 40))               # another key
        ecs.fail = [(503, "ServiceUnavailable", True)]  # and one lost answer on the way
        bus.fire(tag, signed(env, tag, req))
        (placed,) = bus.wait("autodeploy/order/aliyun-hz-20261204/placed", timeout=90)
        data = placed["data"]
        body = json.loads(data["body"])
        assert body["ok"] and body["id"] == ORDER["_id"], body
        assert body["cloud_order_id"] == ecs.orders[ORDER["_id"]] and len(ecs.orders) == 1
        key = master_key(env).encode()
        want = base64.b64encode(hmac.new(key, f"{placed['tag']}|{data['body']}".encode(),
                                         hashlib.sha256).digest()).decode()
        assert data["sig"] == want  # signed with the master key, as the engine checks
        for needle in ("not signed", "does not match the tag", "bad signature"):
            assert warnings_in(env, needle), needle
        assert len(ecs.requests) == 2  # the 503 and its retry: the refused events ordered nothing
        assert SK not in env.master_log.read_text(errors="replace")
    finally:
        bus.close()
