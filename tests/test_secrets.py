"""Secrets never leave the configuration (issue 13, item 5): not in a log, an event, the
ZeroMQ fan-out, the status document, any stored document, a runner's output or an alert.

One real master (its engine and its runners), a minion in a network namespace, FerretDB
behind a MongoDB URI with a password (FerretDB 1.24 takes PLAIN with any credentials), and
every outside party the engine talks to, each given a distinctive secret:

* the notifier's channels: a DingTalk robot (access token and signing secret), SMTP with a
  password, a webhook with an Authorization header;
* the purchase loop: DingTalk OA (app secret; the access token it hands back is a secret
  too), the `http` order backend (an API key header and the HMAC secret), the partner mail
  over SMTP with a password;
* the outside CMDB's token; the HTTP server's reader and scrape tokens; the token and AES
  key of DingTalk's push (a forged push and the URL check are sent).

Every outside party fails first, and quotes the credentials it was sent in its error
answer, as careless servers do (a gateway echoing the Authorization header, an error page
quoting the request line): DingTalk answers errcode 310000 quoting the URL, the OA API 503
and 401, the order API 500 and 401 (and a success that echoes the key), the CMDB 500; the
partner's SMTP refuses the login. The store goes down for a while (FerretDB stopped, a job
return spooled) and comes back. A deploy task fails (an alert), two orders run through
approval to the backend, the runners are called through `salt-run`, the HTTP API is read.

Captured: the master log (debug, so the library's debug lines too; `salt-run` logs there
as well), the minion log, every event on the master bus, the engine's ZeroMQ fan-out, every
document of every collection of the database (the engine_status document among them), every
runner's output (stdout and stderr), the HTTP API's answers, and every alert the channels
delivered. None may contain a secret, in clear, percent-encoded or base64 (at any
alignment, so also inside SMTP AUTH PLAIN and HTTP Basic blobs); each capture must hold
what proves it was exercised (the store error, the SMTP refusal, the order API's 401...),
so that the grep is not vacuous.

Runtime: about 50 s.
"""
import base64
import ctypes
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import netns
from saltenv import free_ports
from test_reactor import Bus
from test_registry import REACTORS, STATES  # noqa: F401
from waiting import wait_for
from test_purchase_callback import DingTalk
from test_tasks import Alerts, Caller, ErrorT


def _needs_netns(fn):
    mark = netns.required()  # a skip without root (a failure under CI), else nothing
    return mark(fn) if mark else fn


MONGO_USER = "autodeploy"
SECRETS = {
    "mongo password": "mongoPw-4tQ8zK2vLx9",
    "smtp password": "smtpPw-7Hc3Nw5Ry1",
    "partner smtp password": "partnerPw-2Bv9Mx6Jq4",
    "dingtalk robot token": "dtRobotToken-8Kp1Wz5Ds3",
    "dingtalk robot secret": "SECdtRobotSign-3Lm7Qa9Xf2",
    "dingtalk app secret": "dtAppSecret-6Yn2Ce8Tu5",
    "dingtalk access token": "dtAccessToken-1Gr4Vj7Hb9",
    "order api key": "orderApiKey-5Fw8Pk3Zs6",
    "order hmac secret": "orderHmacSecret-9Dq2Lt6Wn1",
    "cmdb token": "cmdbToken-4Xs7Bn1Kr8",
    "webhook bearer": "webhookBearer-7Jv3Mq9Ea2",
    "http reader token": "httpReaderToken-2Uc6Rw8Zo4",
    "http scrape token": "httpScrapeToken-8Ni1Sd5Pf7",
    "dingtalk callback token": "dtCallbackToken-3Hq8Wm2Ky5",
    "dingtalk callback aes key": "dtCallbackAesKey7Rm4Xz9Pq2Bv6Nc1Lw8Ys3Jd5Gh",  # 43 characters
}
S = SECRETS
SMTP_USER = "alerts@ops.example"
PARTNER_USER = "orders@ops.example"
HOSTP = "aliyun:cn-hangzhou:host-2c4g"
PA = "aliyun:cn-hangzhou:pa-16c32g"
PB = "aliyun:cn-hangzhou:pb-8c16g"


# --------------------------------------------------------------- what to look for
def b64_cores(raw):
    """Substrings that base64 of any text holding `raw` must contain, whatever
    the bytes before it: one per alignment (0, 1, 2 bytes before), each without
    the characters the neighbours change."""
    out = []
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + raw).decode()
        head = -(-k * 4 // 3)  # characters touched by the k leading bytes
        core = enc[head:len(enc) - 4]
        if len(core) >= 8:
            out.append(core)
    return out


def forms(name, secret):
    """(label, text) pairs: the secret as it could appear anywhere."""
    raw = secret.encode()
    out = [(name, secret)]
    if urllib.parse.quote(secret, safe="") != secret:
        out.append((f"{name} (percent-encoded)", urllib.parse.quote(secret, safe="")))
    out += [(f"{name} (base64)", c) for c in b64_cores(raw)]
    return out


FORMS = [f for name, s in SECRETS.items() for f in forms(name, s)]
# the credentials as SMTP AUTH PLAIN and HTTP Basic put them, whole
for user, pw in ((SMTP_USER, S["smtp password"]), (PARTNER_USER, S["partner smtp password"]),
                 (MONGO_USER, S["mongo password"])):
    FORMS.append((f"AUTH PLAIN of {user}",
                  base64.b64encode(f"\0{user}\0{pw}".encode()).decode()))
    FORMS.append((f"Basic of {user}", base64.b64encode(f"{user}:{pw}".encode()).decode()))


def leaks(text):
    return sorted({label for label, f in FORMS if f in text})


# ------------------------------------------------------------- the outside world
class Outside(BaseHTTPRequestHandler):
    """DingTalk (robot and OA), the order API and the CMDB: one server, by path. Each
    fails first, and quotes what it was sent in its error answers."""

    st = None  # per test: {"lock", "hits": {path: n}, "robot": [bodies], ...}

    def _json(self, code, obj):
        raw = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _hit(self, key):
        with Outside.st["lock"]:
            n = Outside.st["hits"].get(key, 0) + 1
            Outside.st["hits"][key] = n
        return n

    def do_POST(self):  # noqa: N802
        st = Outside.st
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = urllib.parse.urlsplit(self.path).path
        body = json.loads(raw or b"{}")
        n = self._hit(path)
        if path == "/robot/send":  # the robot refuses, quoting the request line
            st["robot"].append(body)
            return self._json(200, {"errcode": 310000,
                                    "errmsg": f"sign not match, request POST {self.path}"})
        if path == "/v1.0/oauth2/accessToken":
            if n == 1:
                return self._json(503, {"code": "ServiceUnavailable", "message":
                                        f"busy; appKey={body.get('appKey')} "
                                        f"appSecret={body.get('appSecret')}"})
            return self._json(200, {"accessToken": S["dingtalk access token"], "expireIn": 7200})
        if path == "/v1.0/workflow/processInstances":
            tok = self.headers.get("x-acs-dingtalk-access-token")
            if n == 1:
                return self._json(401, {"code": "InvalidAuthentication",
                                        "message": f"access token {tok} is not valid"})
            return self._json(200, {"instanceId": f"inst-{n}"})
        if path == "/orders":
            key, idem = self.headers.get("X-Api-Key"), self.headers.get("Idempotency-Key", "")
            tries = self._hit(idem)
            if tries == 1:
                return self._json(500, {"error": f"upstream failed for X-Api-Key: {key}"})
            if idem.startswith(PA):
                return self._json(401, {"error": f"X-Api-Key {key} is revoked"})
            return self._json(200, {"order_id": f"cloud-{idem[-8:]}",
                                    "request": {"X-Api-Key": key}})
        if path == "/cmdb/hosts":
            auth = self.headers.get("Authorization")
            if n == 1:
                return self._json(500, {"error": f"Authorization: {auth} was not accepted"})
            st["cmdb"].append(body)
            return self._json(200, {})
        return self._json(404, {})

    def do_GET(self):  # noqa: N802
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/v1.0/workflow/processInstances":
            return self._json(404, {})
        n = self._hit("poll")
        tok = self.headers.get("x-acs-dingtalk-access-token")
        if n == 1:
            return self._json(500, {"code": "InternalError", "message": f"token {tok}: later"})
        return self._json(200, {"success": True, "result": {
            "status": "COMPLETED", "result": "agree",
            "operationRecords": [{"userId": "boss", "result": "AGREE"}]}})

    def log_message(self, *a):
        pass


def smtp_server(user, password):
    """aiosmtpd on loopback, AUTH required (no TLS here): `password` None refuses
    every login. Returns (controller, url, messages)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    got = []

    class Box:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            got.append(envelope.content.decode(errors="replace"))
            return "250 OK"

    def auth(server, session, envelope, mechanism, data):  # noqa: ARG001
        ok = (password is not None and isinstance(data, LoginPassword)
              and data.login == user.encode() and data.password == password.encode())
        return AuthResult(success=ok, handled=False)

    port = free_ports(1)[0]
    c = Controller(Box(), hostname="127.0.0.1", port=port, auth_required=True,
                   auth_require_tls=False, authenticator=auth)
    c.start()
    return c, f"smtp://127.0.0.1:{port}", got


def mongo_uri(port):
    return (f"mongodb://{MONGO_USER}:{S['mongo password']}@127.0.0.1:{port}/"
            "?authMechanism=PLAIN&authSource=%24external")


class Fanout:
    """Everything the engine re-publishes on its ZeroMQ PUB socket."""

    def __init__(self, endpoint):
        import zmq

        self.got, self.stop = [], threading.Event()
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            if self.sub.poll(100):
                tag, payload = self.sub.recv_multipart()
                self.got.append(tag.decode(errors="replace") + " "
                                + payload.decode(errors="replace"))

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sub.close()
        self.ctx.term()


# ------------------------------------------------------------------------ the test
@pytest.fixture
def world(salt_env, ferretdb, salt_venv, ad_lib, tmp_path):
    Outside.st = {"lock": threading.Lock(), "hits": {}, "robot": [], "cmdb": []}
    outside = ThreadingHTTPServer(("127.0.0.1", 0), Outside)
    threading.Thread(target=outside.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{outside.server_port}"
    smtp, smtp_url, smtp_got = smtp_server(SMTP_USER, S["smtp password"])
    partner, partner_url, _ = smtp_server(PARTNER_USER, None)  # refuses every login
    alerts = Alerts()
    fabric = netns.Fabric()
    fan_port, http_port = free_ports(2)
    profiles = {PA: {"flavour": "ecs.c7.4xlarge", "cpu": 16, "mem_mb": 32768, "disk_gb": 100},
                PB: {"flavour": "ecs.c7.2xlarge", "cpu": 8, "mem_mb": 16384, "disk_gb": 100}}
    purchase = {
        "time": "manual", "timezone": "Asia/Shanghai", "drive_interval_s": 1,
        "retry_base_s": 1, "retry_max_s": 2, "preference": [PA, PB], "profiles": profiles,
        "caps": {"day": 5},
        "approval": {"required": True, "timeout_h": 24, "dingtalk": {
            "base_url": base, "app_key": "dingkey-public", "app_secret": S["dingtalk app secret"],
            "process_code": "PROC-AUTODEPLOY", "originator_user_id": "sre-1",
            "callback": {"token": S["dingtalk callback token"],
                         "aes_key": S["dingtalk callback aes key"]}}},
        "backend": {"type": "http", "url": f"{base}/orders", "secret": S["order hmac secret"],
                    "headers": {"X-Api-Key": S["order api key"]}, "retries": 2,
                    "backoff_ms": 50, "timeout_s": 10,
                    "body": {"flavour": "{flavour}", "count": "{count}"}},
        "partner_mail": {"url": partner_url, "starttls": False, "username": PARTNER_USER,
                         "password": S["partner smtp password"], "from": "autodeploy@ops.example",
                         "to": ["pay@partner.example"]}}
    registry = {"profiles": ["aliyun:*"], "init_state": "autodeploy.test.ok", "init_attempts": 1,
                "liveness_interval": 2, "reconcile_interval": 2,
                "cmdb": {"url": f"{base}/cmdb/hosts", "token": S["cmdb token"], "timeout_ms": 2000,
                         "retry_min_s": 1, "retry_max_s": 1, "interval_ms": 200}}
    notify = {"timeout_ms": 2000, "retries": 1, "backoff_ms": 100, "channels": [
        {"type": "dingtalk", "name": "robot",
         "url": f"{base}/robot/send?access_token={S['dingtalk robot token']}",
         "secret": S["dingtalk robot secret"]},
        {"type": "smtp", "name": "mail", "url": smtp_url, "starttls": False, "username": SMTP_USER,
         "password": S["smtp password"], "from": "autodeploy@ops.example",
         "to": ["oncall@ops.example"]},
        {"type": "webhook", "name": "hook", "url": alerts.url,
         "headers": {"Authorization": f"Bearer {S['webhook bearer']}"}}]}
    engine = {"mongo_uri": mongo_uri(ferretdb.port), "spool_dir": str(tmp_path / "spool"),
              "batch_ms": 20, "watchdog_interval": 1, "stats_interval": 2, "status_interval": 1,
              "store_retry_ms": 500, "log_events": "autodeploy/*",
              "fanout_endpoint": f"tcp://127.0.0.1:{fan_port}", "fanout_format": "json",
              "registry": registry, "notify": notify, "purchase": purchase,
              "placement": {"cycle_interval": 86400, "headroom": 0.8, "deploy_timeout": 120,
                            "deploy_attempts": 1},
              "http": {"listen": f"127.0.0.1:{http_port}", "reader_tokens": [S["http reader token"]],
                       "scrape_token": S["http scrape token"]}}
    fan = Fanout(f"tcp://127.0.0.1:{fan_port}")
    env = salt_env(host=fabric.master_ip, log_level="debug", master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{k: [str(v)]} for k, v in REACTORS.items()],
        "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    bus = Bus(env, salt_venv / "bin" / "python", tmp_path)
    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    call = Caller(lib, {"mongo_uri": engine["mongo_uri"], "sock_dir": str(env.sock_dir),
                        "master_key_path": str(Path(env.master_opts["cachedir"]) / ".root_key"),
                        "placement": engine["placement"], "purchase": purchase})
    db = ferretdb.client()["autodeploy"]
    try:
        yield {"env": env, "fabric": fabric, "db": db, "bus": bus, "fan": fan, "call": call,
               "lib": lib, "ferretdb": ferretdb, "alerts": alerts, "smtp_got": smtp_got,
               "http": f"http://127.0.0.1:{http_port}"}
    finally:
        bus.close()
        fan.close()
        alerts.srv.shutdown()
        env.cleanup()
        fabric.close()
        outside.shutdown()
        smtp.stop()
        partner.stop()


def http_get(url, token):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return f"{r.status} {r.read().decode()}"
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read().decode()}"


@_needs_netns
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd, loopback
def test_no_secret_reaches_any_output(world, tmp_path):
    env, db, call, bus = world["env"], world["db"], world["call"], world["bus"]
    st = Outside.st
    runs = {}  # runner outputs: "salt-run ..." -> stdout + stderr

    def run(fun, *args, **kwargs):
        res = env.salt_run(fun, *args, raw=True, **kwargs)
        runs[" ".join([fun, *map(str, args), *(f"{k}={v}" for k, v in kwargs.items())])] = (
            res.stdout + res.stderr)
        return res.json

    # a host registers (init task, then the CMDB: refused once, quoting the token)
    ns, ip = world["fabric"].host(1)
    env.start_minion("h1", netns=ns, grains={"autodeploy_profile": HOSTP, "num_cpus": 2,
                                             "mem_total": 4096})
    # two platforms whose services no host can take: two orders, through DingTalk OA
    for code, prof in (("pa", PA), ("pb", PB)):
        call("platform.set", code=code, state="autodeploy.test.ok", profiles=[prof],
             footprint={"cpu": 4, "mem_mb": 4096}, reserve={"min": 1, "max": 1})
    call("cycle.run")
    wait_for(lambda: db.services.count_documents({"state": "waiting_resources"}) == 2, "two services waiting", timeout=30)
    run("autodeploy.purchase")  # the dry run
    run("autodeploy.purchase", dry_run=False)
    key = f"{HOSTP}:{ip}"
    wait_for(lambda: (db.hosts.find_one({"_id": key}) or {}).get("state") == "ready", "h1 ready", timeout=60)
    wait_for(lambda: st["cmdb"], "the CMDB took the host at the second push", timeout=30)

    # a deploy task that fails: an alert on every channel (the robot refuses it)
    task = run("autodeploy.deploy", "h1", mods="autodeploy.test.fail", reason="secrets test")
    assert "task" in task, task
    tid = task["task"]["_id"]
    wait_for(lambda: (db.tasks.find_one({"_id": tid}) or {}).get("state") == "failed", "the task failed", timeout=60)

    # the orders: PA's backend answers 500 then 401 (failed), PB's 500 then 200 (ordered),
    # then PB's partner mail: the login refused, again and again
    def order(p):
        return db.orders.find_one({"profile": p}) or {}
    wait_for(lambda: order(PA).get("state") == "failed", "order PA failed", timeout=60)
    wait_for(lambda: order(PB).get("mail_attempts", 0) >= 2, "order PB's mail refused twice", timeout=60)

    # the store goes away: a job return is spooled, errors logged; then it is back
    world["ferretdb"].stop()
    env.salt("h1", "test.ping")
    run("autodeploy.status")
    run("autodeploy.tasks")
    wait_for(lambda: "spooling returns" in env.master_log.read_text(errors="replace"), "the engine spooling while the store is down", timeout=30)
    world["ferretdb"].start()
    wait_for(lambda: "spooled returns replayed" in env.master_log.read_text(errors="replace"), "the spool replayed", timeout=30)

    # the HTTP API, with the right and a wrong token; the scrape endpoint
    base = world["http"]
    api = {p: http_get(base + p, S["http reader token"])
           for p in ("/api/v1/status", "/api/v1/hosts", f"/api/v1/hosts/{key}", "/api/v1/orders",
                     f"/api/v1/tasks/{tid}", "/api/v1/platforms")}
    api["wrong token"] = http_get(base + "/api/v1/status", "not-the-token-0123456789")
    api["/metrics"] = http_get(base + "/metrics", S["http scrape token"])
    assert api["/api/v1/status"].startswith("200") and api["wrong token"].startswith("401"), api
    #    DingTalk's push: a forged one (refused, logged) and the URL check (a sealed answer)
    dt = DingTalk(token=S["dingtalk callback token"], aes_key=S["dingtalk callback aes key"],
                  owner="dingkey-public")
    port = int(base.rsplit(":", 1)[1])
    for name, kw in (("push forged", {"sig": "0" * 40}), ("push check_url", {})):
        code, ans = dt.push(port, {"EventType": "check_url"}, **kw)
        api[name] = f"{code} {json.dumps(ans)}"
    assert api["push forged"].startswith("403") and api["push check_url"].startswith("200"), api

    # every runner that reads, and some that act
    threads = [threading.Thread(target=run, args=a, kwargs=k) for a, k in [
        (("autodeploy.status",), {}), (("autodeploy.tasks",), {}), (("autodeploy.task", tid), {}),
        (("autodeploy.hosts",), {}), (("autodeploy.host", key), {}),
        (("autodeploy.platforms",), {}), (("autodeploy.services",), {}),
        (("autodeploy.orders",), {}), (("autodeploy.order", order(PB)["_id"]), {}),
        (("autodeploy.cycle",), {"dry_run": True}), (("autodeploy.reinit", "no-such-host"), {}),
        (("autodeploy.order_cancel", order(PA)["_id"]), {"reason": "secrets test"})]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    env.stop_master()  # the engine's last words: stats, the stopped status document

    # ---- what was captured
    docs = {f"{c}/{d.get('_id')}": json.dumps(d, default=str)
            for c in db.list_collection_names() for d in db[c].find()}
    status = [v for k, v in docs.items() if k.startswith("engine_status/")]
    captured = {
        "master log": env.master_log.read_text(errors="replace"),
        "minion log": env.minion_log("h1").read_text(errors="replace"),
        "bus events": "\n".join(json.dumps(e) for e in bus.events()),
        "fan-out": "\n".join(world["fan"].got),
        "engine_status": "\n".join(status),
        "documents": "\n".join(docs.values()),
        "runners": "\n".join(f"{k}: {v}" for k, v in runs.items()),
        "http api": "\n".join(api.values()),
        "alerts": json.dumps(world["alerts"].got) + json.dumps(st["robot"])
                  + "\n".join(world["smtp_got"]),
    }
    # not vacuous: each holds what the paths above must have left there
    evidence = {
        "master log": ["spooling returns", "partner email failed", "DingTalk robot refused it",
                       "answered HTTP 401", "answered HTTP 500", "status document not written",
                       "push of", "DingTalk approval", "access_token=***",
                       "DingTalk callback from 127.0.0.1 refused (403)"],
        "minion log": ["test.ping"],
        "bus events": ["autodeploy/task/", "salt/run/"],
        "fan-out": ["autodeploy/task/", "salt/job/"],
        "engine_status": ["errcode 310000", "last_error"],
        "documents": ["HTTP 401", "Login denied", "last_error", "cmdb_error", "cloud-",
                      "X-Api-Key ***"],
        "runners": ["engine", "orders", '"error"'],
        "http api": ["hosts", "401", "signature does not match", "msg_signature"],
        "alerts": ["failed", "order", "Subject:"],  # the webhook, the robot, the SMTP mails
    }
    out = tmp_path / "captured"  # kept by pytest for a look after a failure
    out.mkdir()
    for name, text in captured.items():
        (out / f"{name.replace(' ', '_')}.txt").write_text(text)
    missing = {name: [e for e in want if e not in captured[name]]
               for name, want in evidence.items()}
    found = {name: leaks(text) for name, text in captured.items()}
    assert not any(missing.values()) and not any(found.values()), {
        "secrets found": {k: v for k, v in found.items() if v},
        "evidence missing": {k: v for k, v in missing.items() if v}, "files": str(out)}


def test_a_bad_mongo_uri_is_refused_without_its_password(ad_lib):
    """libmongoc quotes a password it cannot parse ('Password "..." must not have
    unescaped chars'), and takes the tail of one with an unescaped '@' for a host
    name, which it then quotes lowercased in every connection error: the library's
    errors must not."""
    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    pw = S["mongo password"]
    for uri in (f"mongodb://{MONGO_USER}:{pw}:x@127.0.0.1:1/",
                f"mongodb://{MONGO_USER}:{pw}%zz@127.0.0.1:1/",
                f"mongodb://{MONGO_USER}:x@{pw}@127.0.0.1:1/?serverSelectionTimeoutMS=100",
                f"mongodb://{MONGO_USER}:{pw}@127.0.0.1:99999/"):
        err = ErrorT()
        conf = json.dumps({"mongo_uri": uri, "placement": {}}).encode()
        assert not lib.ad_call(conf, b"service.list", b"{}", ctypes.byref(err))
        msg = err.message.decode()
        assert "mongo_uri" in msg, msg
        assert not leaks(msg) and pw.lower() not in msg.lower(), msg
