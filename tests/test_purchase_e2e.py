"""The daily purchase loop closed end to end (issue 11, "Closing the loop"), on a
real master, a minion in a network namespace, FerretDB and the engine:

1. a platform's reserve cannot be placed: its services wait for resources;
2. the purchase run plans one order for the right profile and count;
3. the order is approved through DingTalk OA (a local server that follows the
   published protocol: access token, processInstances create, poll) and placed
   through the `http` backend (a local order API that checks the HMAC
   signature and counts orders per idempotency key);
4. the partner's email arrives at a real SMTP server on loopback (aiosmtpd),
   which is down at first: the order keeps the email (the outbox), counts the
   tries and notes the error, and delivers it exactly once when SMTP is up;
5. a new minion of that profile starts, standing in for the delivered host: it
   registers, the order is fulfilled, the next cycle places the waiting
   services on it, and the order closes.

The order API answers the first try with a 503 after it took the order (the
answer lost), so the retry must find the same order and no second one is made.
DingTalk and the cloud are not reachable here: the servers follow their
published protocols (docs/purchase.md says which parts were not run against
the real services).

Runtime: about 60 s.
"""
import contextlib
import email
import hashlib
import hmac
import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import pymongo
import pytest

import netns
from test_placement import add_host
from test_registry import REACTORS, STATES  # noqa: F401
from waiting import wait_for
from test_tasks import Alerts

pytestmark = netns.required()

BIG = "aliyun:cn-hangzhou:game-16c32g"
SECRET = "e2e-order-api-secret-0123456789"


class Cloud(BaseHTTPRequestHandler):
    """DingTalk's OA API and an order API, one server, by path."""

    state = None  # set per test: {orders, tries, instances, bad_sig, tokens}

    def _json(self, code, obj):
        raw = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):  # noqa: N802
        st = Cloud.state
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw or b"{}")
        if self.path == "/v1.0/oauth2/accessToken":
            assert body.get("appKey") == "dingkey" and body.get("appSecret") == "dingsecret"
            st["tokens"] += 1
            return self._json(200, {"accessToken": "tok-1", "expireIn": 7200})
        if self.path == "/v1.0/workflow/processInstances":
            if self.headers.get("x-acs-dingtalk-access-token") != "tok-1":
                return self._json(401, {"code": "InvalidAuthentication"})
            form = {f["name"]: f["value"] for f in body.get("formComponentValues", [])}
            iid = f"inst-{len(st['instances']) + 1}"
            st["instances"][iid] = {"process": body.get("processCode"), "form": form,
                                    "polls": 0}
            return self._json(200, {"instanceId": iid})
        if self.path == "/orders":
            ts = self.headers.get("X-Autodeploy-Timestamp", "")
            want = "sha256=" + hmac.new(SECRET.encode(), f"{ts}\n".encode() + raw,
                                        hashlib.sha256).hexdigest()
            if self.headers.get("X-Autodeploy-Signature") != want:
                st["bad_sig"] += 1
                return self._json(401, {"error": "bad signature"})
            key = self.headers.get("Idempotency-Key")
            st["tries"] += 1
            first = key not in st["orders"]
            st["orders"].setdefault(key, {"id": f"cloud-{len(st['orders']) + 1}", "body": body})
            if first:  # the order is taken, the answer lost: the client must retry
                return self._json(503, {"error": "try again"})
            return self._json(200, {"order_id": st["orders"][key]["id"]})
        return self._json(404, {})

    def do_GET(self):  # noqa: N802
        st = Cloud.state
        u = urllib.parse.urlparse(self.path)
        if u.path == "/v1.0/workflow/processInstances":
            iid = urllib.parse.parse_qs(u.query).get("processInstanceId", [""])[0]
            inst = st["instances"].get(iid)
            if not inst:
                return self._json(404, {"code": "notFound"})
            inst["polls"] += 1
            # running at the first poll, then approved; while `poll_running`
            # (the callback tests), running until the instance is marked `agree`
            done = inst["polls"] >= 2 and (not st.get("poll_running") or inst.get("agree"))
            return self._json(200, {"success": True, "result": {
                "status": "COMPLETED" if done else "RUNNING",
                "result": "agree" if done else "",
                "operationRecords": [{"userId": "boss", "result": "AGREE"}] if done else []}})
        return self._json(404, {})

    def log_message(self, *a):
        pass


@contextlib.contextmanager
def running_loop(salt_env, ferretdb, tmp_path, tweak=None):
    """The loop's world (the Cloud server, SMTP not yet started, the alert
    webhook, a master with the engine), torn down after. `tweak(engine)` may
    change the engine entry before the master starts (tests that build on
    this one: test_purchase_callback.py)."""
    from aiosmtpd.controller import Controller

    mails = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            mails.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(Handler(), hostname="127.0.0.1", port=smtp_port)  # started by the test
    Cloud.state = {"orders": {}, "tries": 0, "instances": {}, "bad_sig": 0, "tokens": 0}
    cloud = HTTPServer(("127.0.0.1", 0), Cloud)
    threading.Thread(target=cloud.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{cloud.server_port}"
    fabric = netns.Fabric()
    alerts = Alerts()
    purchase = {
        "time": "manual",  # no daily run: the test asks by salt-run
        "timezone": "Asia/Shanghai", "drive_interval_s": 1,
        "preference": [BIG],
        "profiles": {BIG: {"flavour": "ecs.c7.4xlarge", "cpu": 16, "mem_mb": 32768,
                           "disk_gb": 100}},
        "caps": {"day": 5}, "retry_base_s": 1, "retry_max_s": 2,
        "approval": {"required": True, "timeout_h": 24, "dingtalk": {
            "base_url": base, "app_key": "dingkey", "app_secret": "dingsecret",
            "process_code": "PROC-AUTODEPLOY", "originator_user_id": "sre-1"}},
        "backend": {"type": "http", "url": f"{base}/orders", "secret": SECRET,
                    "retries": 3, "backoff_ms": 100, "timeout_s": 20,
                    "body": {"flavour": "{flavour}", "count": "{count}", "region": "{region}"}},
        "partner_mail": {"url": f"smtp://127.0.0.1:{smtp_port}", "starttls": False,
                         "from": "autodeploy@ops.example", "to": ["pay@partner.example"]}}
    engine = {"mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / "spool"), "batch_ms": 20,
              "watchdog_interval": 1, "stats_interval": 1,
              "registry": {"profiles": ["aliyun:*"], "init_state": "", "liveness_interval": 2,
                           "reconcile_interval": 2},
              "placement": {"cycle_interval": 86400, "headroom": 0.8, "deploy_timeout": 120,
                            "deploy_attempts": 1},
              "purchase": purchase,
              "notify": {"channels": [{"type": "webhook", "url": alerts.url}],
                         "timeout_ms": 2000}}
    if tweak:
        tweak(engine)
    env = salt_env(host=fabric.master_ip, master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{k: [str(v)]} for k, v in REACTORS.items()],
        "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    db = pymongo.MongoClient(ferretdb.uri)["autodeploy"]
    try:
        yield env, fabric, db, mails, alerts, smtp
    finally:
        alerts.srv.shutdown()
        env.cleanup()
        fabric.close()
        cloud.shutdown()
        if getattr(smtp, "_thread", None):
            smtp.stop()


@pytest.fixture
def e2e(salt_env, ferretdb, tmp_path):
    with running_loop(salt_env, ferretdb, tmp_path) as world:
        yield world


def state_of(db, oid):
    return (db.orders.find_one({"_id": oid}) or {}).get("state")


def test_waiting_services_become_an_approved_order_that_drains_the_queue(e2e):
    env, fabric, db, mails, alerts, smtp = e2e
    st = Cloud.state
    # 1. two servers of 9 cores: no host here at all, they wait
    env.salt_run("autodeploy.platform", "big", state="autodeploy.test.ok",
                 profiles=json.dumps([BIG]), footprint=json.dumps({"cpu": 9, "mem_mb": 4096}),
                 reserve=json.dumps({"min": 2, "max": 2}))
    env.salt_run("autodeploy.cycle")
    wait_for(lambda: db.services.count_documents({"platform": "big",
                                              "state": "waiting_resources"}) == 2, "two services waiting", timeout=30)

    # 2. one order, for the right profile and count: 9 + 9 cores do not fit one
    #    16-core host at 80% (12.8), so two hosts
    plan = env.salt_run("autodeploy.purchase")
    (line,) = plan["lines"]
    assert line["profile"] == BIG and line["packed"] == 2 and line["to_order"] == 2, line
    assert db.orders.count_documents({}) == 0  # the dry run wrote nothing
    env.salt_run("autodeploy.purchase", dry_run=False)
    order = wait_for(lambda: db.orders.find_one({"profile": BIG}), "the order planned", timeout=30)
    oid = order["_id"]
    assert order["count"] == 2 and order["flavour"] == "ecs.c7.4xlarge", order

    # 3. DingTalk OA: an instance with the order in its form, polled to approved
    inst = wait_for(lambda: next(iter(st["instances"].values()), None), "the approval instance", timeout=30)
    assert inst["process"] == "PROC-AUTODEPLOY"
    assert any(oid in v for v in inst["form"].values()), inst["form"]
    #    ... then placed through the http backend: one order, however many tries
    wait_for(lambda: state_of(db, oid) in ("ordered", "partner_notified"), "ordered", timeout=60)
    assert st["bad_sig"] == 0 and list(st["orders"]) == [oid], st["orders"]
    assert st["tries"] >= 2  # the lost answer was retried, with the same key
    o = db.orders.find_one({"_id": oid})
    assert o["cloud_order_id"] == "cloud-1"
    assert st["orders"][oid]["body"]["count"] == 2
    assert any(h.get("what") == "approve" for h in o["history"]), o["history"]

    # 4. the partner's email. SMTP is down at first: the order is the outbox
    #    (tries counted, the error noted, an alert), then it is delivered once
    down = wait_for(lambda: (lambda o: o if o.get("mail_attempts", 0) >= 2 else None)(
        db.orders.find_one({"_id": oid})), "two failed email tries", timeout=60)
    assert down["state"] == "ordered" and str(smtp.port) in down["last_error"], down
    assert not mails
    wait_for(lambda: any("partner email failed" in t for t in alerts.titles()), "the email failure alerted", timeout=30)
    smtp.start()
    wait_for(lambda: state_of(db, oid) == "partner_notified", "partner notified", timeout=60)
    assert len(mails) == 1, [m[1]["Subject"] for m in mails]
    rcpt, msg = mails[0]
    assert rcpt == ["pay@partner.example"] and oid in msg["Message-ID"], msg["Message-ID"]
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
             if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}, set(parts)
    for text in parts.values():
        assert oid in text and "ecs.c7.4xlarge" in text and "cloud-1" in text

    # 5. the delivered hosts register: fulfilled; the cycle drains the queue
    add_host(env, fabric, db, "new1", 1, BIG, 16, 32768)
    add_host(env, fabric, db, "new2", 2, BIG, 16, 32768)
    wait_for(lambda: state_of(db, oid) in ("fulfilled", "closed"), "fulfilled", timeout=60)
    assert len(db.orders.find_one({"_id": oid})["arrived"]) == 2
    env.salt_run("autodeploy.cycle")
    wait_for(lambda: db.services.count_documents({"platform": "big",
                                              "state": "waiting_resources"}) == 0, "the waiting queue drained", timeout=60)
    wait_for(lambda: state_of(db, oid) == "closed", "closed", timeout=60)
    titles = " | ".join(alerts.titles())
    for what in ("planned", "approval requested", "approved", "placed", "partner notified",
                 "fulfilled"):
        assert f": {what}" in titles, (what, titles)
