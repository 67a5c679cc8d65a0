"""The notifier (libautodeploy/src/notify*.c) against real servers on loopback.

Driven through ctypes, as the Salt side will drive it. Every server is real
and started here:

* a DingTalk custom robot stand-in (HTTPS, self-signed certificate trusted
  through the channel's ``ca_file``) that follows DingTalk's published
  protocol: it recomputes ``sign = urlencode(base64(HmacSHA256(secret,
  timestamp + "\\n" + secret)))``, rejects a timestamp more than an hour off
  or a bad signature with ``errcode 310000`` (HTTP 200, as DingTalk does),
  and checks the markdown message; DingTalk itself cannot be reached here;
* aiosmtpd (PyPI) with STARTTLS required and AUTH PLAIN / LOGIN required:
  the received mail's envelope, headers (RFC 2047 subject in Chinese) and
  body are checked;
* plain HTTP webhooks: one that records, one that fails twice then accepts,
  and a TCP server that accepts connections and never answers.

What is proved: sends return at once; a hung server costs timeout_ms per
try, 1 + retries tries, then "failed", without holding up other channels;
retries recover from transient failures and are counted; permanent errors
(bad signature, login denied, untrusted certificate) are not retried; a
full queue refuses with AD_EFULL; bad configuration names the key; no
secret ever reaches a log line or an error message.
"""

import base64
import ctypes
import datetime
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from waiting import wait_for

AD_EFULL = -12
AD_ETIMEOUT = -15

TOKEN = "3a1f0c9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"
SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
SMTP_USER = "robot@example.com"
SMTP_PASSWORD = "s3cret-Pa55word"
WEBHOOK_BEARER = "Bearer hook-secret-7f3a"

TITLE_ZH = "部署完成：web-01 上线 ✅ 第 42 号任务（生产环境，华东二区）"
TEXT_ZH = "### 任务 42\n\n> 状态：**成功**\n\n- 主机：web-01\n- 耗时：12 秒\n"


class AdError(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_int),
        ("domain", ctypes.c_char * 16),
        ("message", ctypes.c_char * 240),
    ]


STAT_FIELDS = ("queued", "coalesced", "refused", "sent", "failed", "retried", "dropped", "depth")


class Stats(ctypes.Structure):
    """ad_notify_stats_t: struct_size first, set to our size (docs/api.md)."""

    _fields_ = [("struct_size", ctypes.c_size_t)] + [(name, ctypes.c_uint64) for name in STAT_FIELDS]


LOGFN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
LOG_LINES = []
_LOG_LOCK = threading.Lock()


@LOGFN
def _on_log(level, domain, message, user):  # pylint: disable=unused-argument
    with _LOG_LOCK:
        LOG_LINES.append((level, domain.decode(), message.decode(errors="replace")))


@pytest.fixture(scope="module")
def lib(ad_lib):
    so = ctypes.CDLL(str(ad_lib))
    vp, cp, ip = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    err_p = ctypes.POINTER(AdError)
    so.ad_notifier_new.argtypes = [cp, err_p]
    so.ad_notifier_new.restype = vp
    so.ad_notifier_destroy.argtypes = [ctypes.POINTER(vp)]
    so.ad_notifier_destroy.restype = None
    for name in ("ad_notify_send", "ad_notify_send_now"):
        getattr(so, name).argtypes = [vp, cp, cp, cp, err_p]
        getattr(so, name).restype = ip
    so.ad_notify_flush.argtypes = [vp, ip]
    so.ad_notify_flush.restype = ip
    so.ad_notify_stats.argtypes = [vp, ip, ctypes.POINTER(Stats), err_p]
    so.ad_notify_stats.restype = ip
    so.ad_notify_stats_json.argtypes = [vp]
    so.ad_notify_stats_json.restype = vp
    so.ad_free.argtypes = [vp]
    so.ad_free.restype = None
    so.ad_log_set_handler.argtypes = [LOGFN, vp, ip]
    so.ad_log_set_handler.restype = None
    so.ad_log_set_handler(_on_log, None, 7)  # DEBUG: every line the library says
    yield so
    so.ad_log_set_handler(LOGFN(), None, 3)  # NULL handler before _on_log can go


class ConfigError(Exception):
    pass


class Notifier:
    """A thin wrapper over the C API."""

    def __init__(self, so, config):
        self.so = so
        err = AdError()
        text = config if isinstance(config, str) else json.dumps(config)
        self.h = so.ad_notifier_new(text.encode(), ctypes.byref(err))
        if not self.h:
            raise ConfigError(err.message.decode())

    def _call(self, fn, title, text, key):
        err = AdError()
        rc = fn(self.h, title.encode(), text.encode(), key.encode() if key else None,
                ctypes.byref(err))
        return rc, err.message.decode()

    def send(self, title, text, key=None):
        return self._call(self.so.ad_notify_send, title, text, key)

    def send_now(self, title, text, key=None):
        return self._call(self.so.ad_notify_send_now, title, text, key)

    def flush(self, timeout_ms=20000):
        return self.so.ad_notify_flush(self.h, timeout_ms)

    def stats(self, index=-1):
        st = Stats(struct_size=ctypes.sizeof(Stats))
        err = AdError()
        assert self.so.ad_notify_stats(self.h, index, ctypes.byref(st), ctypes.byref(err)) == 0, err.message
        return {name: getattr(st, name) for name in STAT_FIELDS}

    def stats_json(self):
        p = self.so.ad_notify_stats_json(self.h)
        try:
            return json.loads(ctypes.string_at(p).decode())
        finally:
            self.so.ad_free(p)

    def close(self):
        if self.h:
            h = ctypes.c_void_p(self.h)
            self.so.ad_notifier_destroy(ctypes.byref(h))
            assert h.value is None
            self.h = None


@pytest.fixture
def notifier(lib):
    made = []

    def make(config):
        n = Notifier(lib, config)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


def logs_text():
    with _LOG_LOCK:
        return "\n".join(f"[{d}] {m}" for _, d, m in LOG_LINES)


def assert_no_secrets(*texts):
    for text in texts + (logs_text(),):
        for secret in (TOKEN, SECRET, SMTP_PASSWORD, WEBHOOK_BEARER, "hook-secret"):
            assert secret not in text, f"a secret reached a log or error: {text!r}"


# ---- certificates -------------------------------------------------------------

@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost: (cert, key) paths."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autodeploy test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return str(d / "cert.pem"), str(d / "key.pem")


# ---- HTTP servers ---------------------------------------------------------------

class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler, **state):
        super().__init__(("127.0.0.1", 0), handler)
        self.requests = []
        self.lock = threading.Lock()
        self.state = state
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base(self):
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_json(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        return json.loads(raw.decode("utf-8"))


class DingTalkRobot(Handler):
    """DingTalk's robot/send as its documentation describes it."""

    def do_POST(self):  # pylint: disable=invalid-name
        srv = self.server
        url = urllib.parse.urlsplit(self.path)
        raw = dict(p.split("=", 1) for p in url.query.split("&") if "=" in p)
        q = urllib.parse.parse_qs(url.query)
        body = self.read_json()
        with srv.lock:
            srv.requests.append({"query": raw, "body": body, "headers": dict(self.headers)})
            fail_first = srv.state.get("rate_limit_first", 0)
            if fail_first:
                srv.state["rate_limit_first"] = fail_first - 1
        if url.path != "/robot/send" or q.get("access_token") != [TOKEN]:
            return self.reply(200, {"errcode": 300001, "errmsg": "token is not exist"})
        ts = q.get("timestamp", [""])[0]
        if not ts.isdigit() or abs(int(ts) - time.time() * 1000) > 3600 * 1000:
            return self.reply(200, {"errcode": 310000, "errmsg": "invalid timestamp"})
        secret = SECRET.encode()
        mac = hmac.new(secret, f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()
        want = base64.b64encode(mac).decode()
        # parse_qs decodes %2B to '+' but a bare '+' to ' ': an unencoded
        # signature fails here, as it does at DingTalk.
        if q.get("sign") != [want] or raw.get("sign") != urllib.parse.quote(want, safe=""):
            return self.reply(200, {"errcode": 310000, "errmsg": "sign not match"})
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self.reply(200, {"errcode": 40035, "errmsg": "content type"})
        md = body.get("markdown") or {}
        if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
            return self.reply(200, {"errcode": 40035, "errmsg": "invalid markdown message"})
        if fail_first:
            return self.reply(200, {"errcode": 130101,
                                    "errmsg": "send too fast, exceed 20 times per minute"})
        with srv.lock:
            srv.state.setdefault("accepted", []).append(body)
        return self.reply(200, {"errcode": 0, "errmsg": "ok"})


class Webhook(Handler):
    """Records JSON posts; fails the first `fail_first` with HTTP 503."""

    def do_POST(self):  # pylint: disable=invalid-name
        srv = self.server
        body = self.read_json()
        with srv.lock:
            srv.requests.append({"body": body, "headers": dict(self.headers)})
            fail = srv.state.get("fail_first", 0)
            if fail:
                srv.state["fail_first"] = fail - 1
            else:
                srv.state.setdefault("accepted", []).append(body)
        if fail:
            return self.reply(503, {"error": "try later"})
        return self.reply(200, {"ok": True})


@pytest.fixture
def http_server(tls):
    servers = []

    def start(handler, https=False, **state):
        srv = Recorder(handler, **state)
        if https:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        srv.thread.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


class HungServer:
    """Accepts TCP connections and never says a word."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.conns = []
        self.accepted_at = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            self.accepted_at.append(time.monotonic())

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def hung():
    srv = HungServer()
    yield srv
    srv.close()


# ---- SMTP ------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(tls):
    """aiosmtpd: STARTTLS and AUTH (PLAIN or LOGIN) both required."""
    from aiosmtpd.controller import Controller  # pylint: disable=import-outside-toplevel
    from aiosmtpd.smtp import AuthResult, LoginPassword  # pylint: disable=import-outside-toplevel

    class Box:
        def __init__(self):
            self.messages = []
            self.mechanisms = []
            self.logins = []

        async def handle_DATA(self, server, session, envelope):  # pylint: disable=invalid-name,unused-argument
            self.messages.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "data": envelope.original_content or envelope.content,
                    "tls": session.ssl is not None,
                    "authenticated": session.authenticated,
                }
            )
            return "250 OK queued"

    box = Box()

    def authenticator(server, session, envelope, mechanism, auth_data):  # pylint: disable=unused-argument
        box.mechanisms.append(mechanism)
        box.logins.append(getattr(auth_data, "login", None))
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        # handled=False: aiosmtpd answers "535 5.7.8" itself (the default,
        # handled=True, leaves the client waiting for a reply)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls)
    port = _free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    yield box
    controller.stop()


# ---- DingTalk ----------------------------------------------------------------------

def dingtalk_channel(srv, tls, **extra):
    ch = {
        "type": "dingtalk",
        "name": "ops-robot",
        "url": f"{srv.base}/robot/send?access_token={TOKEN}",
        "secret": SECRET,
        "ca_file": tls[0],
    }
    ch.update(extra)
    return ch


def test_dingtalk_signed_markdown(notifier, http_server, tls):
    srv = http_server(DingTalkRobot, https=True)
    n = notifier({"channels": [dingtalk_channel(srv, tls, at_mobiles=["13800000000"])]})
    t0 = time.monotonic()
    rc, msg = n.send(TITLE_ZH, TEXT_ZH, "task-42")
    assert rc == 0, msg
    assert time.monotonic() - t0 < 0.1
    assert n.flush() == 0
    st = n.stats(0)
    assert (st["queued"], st["sent"], st["failed"], st["retried"], st["depth"]) == (1, 1, 0, 0, 0)
    [body] = srv.state["accepted"]
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == TITLE_ZH
    assert body["markdown"]["text"].startswith(TEXT_ZH)
    assert body["markdown"]["text"].endswith("@13800000000")  # mentions must be in the text
    assert body["at"] == {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": False}
    [req] = srv.requests
    assert abs(int(req["query"]["timestamp"]) - time.time() * 1000) < 60000
    js = n.stats_json()
    assert js["channels"][0]["name"] == "ops-robot"
    assert js["channels"][0]["host"].startswith("https://127.0.0.1:")
    assert js["total"]["sent"] == 1
    assert_no_secrets(json.dumps(js))


def test_dingtalk_wrong_secret_is_refused_and_not_retried(notifier, http_server, tls):
    srv = http_server(DingTalkRobot, https=True)
    ch = dingtalk_channel(srv, tls, secret="SECnot-the-right-one")
    n = notifier({"channels": [ch], "retries": 3, "backoff_ms": 10})
    rc, msg = n.send_now("告警", "text")
    assert rc != 0
    assert "310000" in msg and "sign not match" in msg and "ops-robot" in msg, msg
    st = n.stats(0)
    assert (st["sent"], st["failed"], st["retried"]) == (0, 1, 0)
    assert len(srv.requests) == 1  # a bad signature is not worth another try
    assert "310000" in logs_text()
    assert_no_secrets(msg)
    assert "SECnot-the-right-one" not in logs_text()


def test_dingtalk_rate_limit_is_retried(notifier, http_server, tls):
    srv = http_server(DingTalkRobot, https=True, rate_limit_first=1)
    n = notifier({"channels": [dingtalk_channel(srv, tls)], "retries": 2, "backoff_ms": 10})
    assert n.send("t", "x")[0] == 0
    assert n.flush() == 0
    st = n.stats(0)
    assert (st["sent"], st["failed"], st["retried"]) == (1, 0, 1)
    assert len(srv.requests) == 2 and len(srv.state["accepted"]) == 1


def test_dingtalk_untrusted_certificate(notifier, http_server, tls):
    srv = http_server(DingTalkRobot, https=True)
    ch = dingtalk_channel(srv, tls)
    del ch["ca_file"]
    n = notifier({"channels": [ch], "retries": 2, "backoff_ms": 10})
    rc, msg = n.send_now("t", "x")
    assert rc != 0 and "certificate" in msg.lower(), msg
    assert n.stats(0)["retried"] == 0  # retrying cannot fix trust
    # insecure_skip_verify: for test rigs only, but it must work
    ch["insecure_skip_verify"] = True
    n2 = notifier({"channels": [ch]})
    assert n2.send_now("t", "x") == (0, "")


def test_doc_worked_example():
    """The signing example in docs/notify.md is what DingTalk's algorithm gives."""
    ts, secret = "1700000000000", "SECexample0123456789"
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    b64 = base64.b64encode(mac).decode()
    text = (Path(__file__).resolve().parent.parent / "docs" / "notify.md").read_text()
    assert b64 in text and urllib.parse.quote(b64, safe="") in text


# ---- SMTP ---------------------------------------------------------------------------

def smtp_channel(box, tls, **extra):
    ch = {
        "type": "smtp",
        "url": box.url,
        "starttls": True,
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "from": "autodeploy@example.com",
        "to": ["ops@example.com", "oncall@example.org"],
        "ca_file": tls[0],
    }
    ch.update(extra)
    return ch


@pytest.mark.parametrize("auth", ["PLAIN", "LOGIN"])
def test_smtp_starttls_auth(notifier, smtp_server, tls, auth):
    n = notifier({"channels": [smtp_channel(smtp_server, tls, auth=auth)]})
    rc, msg = n.send(TITLE_ZH, TEXT_ZH, "task-42/deploy")
    assert rc == 0, msg
    assert n.flush() == 0
    assert n.stats(0)["sent"] == 1, logs_text()
    assert smtp_server.mechanisms == [auth]
    [got] = smtp_server.messages
    assert got["tls"] and got["authenticated"]
    assert smtp_server.logins == [SMTP_USER.encode()]
    assert got["mail_from"] == "autodeploy@example.com"
    assert got["rcpt_tos"] == ["ops@example.com", "oncall@example.org"]
    raw = got["data"]
    assert all(len(line) <= 78 for line in raw.split(b"\r\n")), raw
    assert b"=?UTF-8?B?" in raw  # RFC 2047, not raw UTF-8 in a header
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Subject"] == TITLE_ZH
    assert mail["From"] == "autodeploy@example.com"
    assert [a.addr_spec for a in mail["To"].addresses] == ["ops@example.com", "oncall@example.org"]
    assert mail["X-Autodeploy-Dedup-Key"] == "task-42/deploy"
    assert mail["Message-ID"].startswith("<") and mail["Message-ID"].endswith("@example.com>")
    sent_at = mail["Date"].datetime
    assert abs(sent_at.timestamp() - time.time()) < 60
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content() == TEXT_ZH


def test_smtp_plain_ascii_subject(notifier, smtp_server, tls):
    n = notifier({"channels": [smtp_channel(smtp_server, tls)]})
    assert n.send_now("deploy ok", "body") == (0, "")
    mail = email.message_from_bytes(smtp_server.messages[0]["data"], policy=email.policy.default)
    assert mail["Subject"] == "deploy ok"
    assert b"Subject: deploy ok\r\n" in smtp_server.messages[0]["data"]


def test_smtp_wrong_password_not_retried(notifier, smtp_server, tls):
    ch = smtp_channel(smtp_server, tls, password="wrong-" + SMTP_PASSWORD)
    n = notifier({"channels": [ch], "retries": 3, "backoff_ms": 10})
    rc, msg = n.send_now("t", "x")
    assert rc != 0 and "SMTP" in msg and "535" in msg, msg
    st = n.stats(0)
    assert (st["failed"], st["retried"]) == (1, 0), msg
    assert smtp_server.messages == []
    assert_no_secrets(msg)


@pytest.fixture
def plain_smtp_server():
    """aiosmtpd without TLS or AUTH (a local relay on port 25, say)."""
    from aiosmtpd.controller import Controller  # pylint: disable=import-outside-toplevel

    class Box:
        messages = []

        async def handle_DATA(self, server, session, envelope):  # pylint: disable=invalid-name,unused-argument
            self.messages.append(envelope.original_content or envelope.content)
            return "250 OK"

    box = Box()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    yield box
    controller.stop()


def test_smtp_starttls_is_required_unless_disabled(notifier, plain_smtp_server):
    ch = {"type": "smtp", "url": plain_smtp_server.url, "from": "a@b.example",
          "to": ["d@e.example"]}
    n = notifier({"channels": [ch], "retries": 2, "backoff_ms": 10})
    rc, msg = n.send_now("t", "x")  # starttls defaults to true: no clear text
    assert rc != 0 and "STARTTLS" in msg, msg
    assert n.stats(0)["retried"] == 0 and plain_smtp_server.messages == []
    ch["starttls"] = False
    n2 = notifier({"channels": [ch]})
    assert n2.send_now("t", "x") == (0, "")
    assert len(plain_smtp_server.messages) == 1


# ---- webhook ----------------------------------------------------------------------------

def test_webhook_json_and_headers(notifier, http_server):
    srv = http_server(Webhook)
    n = notifier({"channels": [{"type": "webhook", "url": srv.base + "/hook",
                                "headers": {"Authorization": WEBHOOK_BEARER, "X-Team": "ops"}}]})
    before = time.time()
    assert n.send(TITLE_ZH, TEXT_ZH, "k1") == (0, "")
    assert n.flush() == 0
    [req] = srv.requests
    body = req["body"]
    assert (body["title"], body["text"], body["dedup_key"]) == (TITLE_ZH, TEXT_ZH, "k1")
    when = datetime.datetime.fromisoformat(body["time"].replace("Z", "+00:00")).timestamp()
    assert before - 1 < when < time.time() + 1
    assert req["headers"]["Authorization"] == WEBHOOK_BEARER
    assert req["headers"]["X-Team"] == "ops"
    assert req["headers"]["Content-Type"].startswith("application/json")
    assert_no_secrets()


def test_fails_twice_then_succeeds(notifier, http_server):
    srv = http_server(Webhook, fail_first=2)
    n = notifier({"channels": [{"type": "webhook", "url": srv.base}],
                  "retries": 3, "backoff_ms": 20})
    assert n.send("t", "x")[0] == 0
    assert n.flush() == 0
    st = n.stats(0)
    assert (st["sent"], st["failed"], st["retried"]) == (1, 0, 2)
    assert len(srv.requests) == 3
    assert len(srv.state["accepted"]) == 1  # delivered once


def test_client_error_is_not_retried(notifier, http_server):
    class Gone(Handler):
        def do_POST(self):  # pylint: disable=invalid-name
            self.server.requests.append(self.read_json())
            self.reply(404, {"error": "no such hook"})

    srv = http_server(Gone)
    n = notifier({"channels": [{"type": "webhook", "url": srv.base}], "retries": 3})
    rc, msg = n.send_now("t", "x")
    assert rc != 0 and "HTTP 404" in msg
    assert len(srv.requests) == 1


# ---- a hung server -----------------------------------------------------------------------

def test_hung_server_times_out_and_blocks_nobody(notifier, http_server, hung):
    good = http_server(Webhook)
    timeout_ms, retries, backoff_ms = 300, 2, 50
    n = notifier({
        "channels": [
            {"type": "webhook", "url": hung.url, "name": "hung"},
            {"type": "webhook", "url": good.base, "name": "good"},
        ],
        "timeout_ms": timeout_ms, "retries": retries, "backoff_ms": backoff_ms,
    })
    t0 = time.monotonic()
    for i in range(3):
        assert n.send(f"m{i}", "x")[0] == 0
    assert time.monotonic() - t0 < 0.2, "ad_notify_send waited on the network"
    # The good channel gets all three while the hung one is still on its
    # first (which takes 3 x timeout_ms + backoff).
    wait_for(lambda: len(good.state.get("accepted", [])) == 3, "the good channel", timeout=5)
    st = n.stats(0)
    assert (st["failed"], st["depth"]) == (0, 3), st
    assert n.flush() == 0
    elapsed = time.monotonic() - t0
    tries = 1 + retries
    st = n.stats(0)
    assert (st["sent"], st["failed"], st["retried"]) == (0, 3, 3 * retries)
    assert len(hung.accepted_at) == 3 * tries
    # each try waited timeout_ms; backoff doubled between tries of one message
    gaps = [b - a for a, b in zip(hung.accepted_at, hung.accepted_at[1:])]
    assert all(g >= timeout_ms / 1000 * 0.95 for g in gaps), gaps
    assert gaps[0] >= (timeout_ms + backoff_ms) / 1000 * 0.95, gaps
    assert gaps[1] >= (timeout_ms + 2 * backoff_ms) / 1000 * 0.95, gaps
    floor = 3 * tries * timeout_ms / 1000
    assert floor * 0.95 < elapsed < floor + 3, elapsed
    assert n.stats(1)["sent"] == 3
    assert "hung" in logs_text() and "not delivered after 3 tries" in logs_text()


def test_full_queue_refuses_without_blocking(notifier, hung):
    n = notifier({"channels": [{"type": "webhook", "url": hung.url, "name": "hung"}],
                  "timeout_ms": 10000, "retries": 0, "queue_size": 2})
    t0 = time.monotonic()
    results = [n.send(f"m{i}", "x") for i in range(6)]
    assert time.monotonic() - t0 < 0.1
    refused = [m for rc, m in results if rc == AD_EFULL]
    assert refused and all(rc in (0, AD_EFULL) for rc, _ in results)
    assert "queue full on hung" in refused[0], refused[0]
    st = n.stats(0)
    assert st["refused"] == len(refused)
    assert st["queued"] == 6 - len(refused) and st["queued"] in (2, 3)
    assert n.flush(100) == AD_ETIMEOUT
    assert "queue full" in logs_text()
    # destroy does not wait out the 10 s timeout: the try in flight is cancelled
    t0 = time.monotonic()
    n.close()
    assert time.monotonic() - t0 < 2.5
    assert "dropped at shutdown" in logs_text()


def test_max_per_minute_paces_one_channel(notifier, http_server):
    slow, fast = http_server(Webhook), http_server(Webhook)
    n = notifier({"channels": [
        {"type": "webhook", "url": slow.base, "name": "paced", "max_per_minute": 2},
        {"type": "webhook", "url": fast.base, "name": "free"}]})
    for i in range(4):
        assert n.send(f"m{i}", "x")[0] == 0
    wait_for(lambda: len(fast.state.get("accepted", [])) == 4, "the unpaced channel", timeout=5)
    wait_for(lambda: len(slow.state.get("accepted", [])) == 2, "two paced messages", timeout=5)
    time.sleep(0.5)
    assert len(slow.state["accepted"]) == 2  # the third waits for the minute to pass
    assert n.stats(0)["depth"] == 2
    assert "held back by max_per_minute 2" in logs_text()
    assert n.stats_json()["channels"][1]["sent"] == 4


def test_dedup_key_coalesces_waiting_messages(notifier, hung):
    n = notifier({"channels": [{"type": "webhook", "url": hung.url}],
                  "timeout_ms": 10000, "retries": 0})
    assert n.send("first", "x", "a")[0] == 0
    wait_for(lambda: hung.conns, "the first try", timeout=5)  # "a" is in flight now
    for key in ("b", "b", "c", "b", "a"):
        assert n.send("again", "x", key)[0] == 0
    st = n.stats(0)
    assert (st["queued"], st["coalesced"], st["depth"]) == (4, 2, 4)


# ---- configuration -------------------------------------------------------------------------

BAD_CONFIGS = [
    ({"channels": [{"type": "pager"}]}, ['channels[0].type', '"pager"', "dingtalk, smtp, webhook"]),
    ({"channels": [{"url": "http://x"}]}, ["channels[0]", "type"]),
    ({"channels": []}, ["channels"]),
    ({}, ["channels", "required"]),
    ("{not json", ["not JSON"]),
    ({"chanels": []}, ['"chanels"']),
    ({"channels": [{"type": "webhook", "url": "http://x"}], "retries": -1}, ["retries", "-1"]),
    ({"channels": [{"type": "webhook", "url": "http://x"}], "timeout_ms": "soon"},
     ["timeout_ms", "soon"]),
    ({"channels": [{"type": "dingtalk"}]}, ["channels[0] (dingtalk#0)", "url"]),
    ({"channels": [{"type": "dingtalk", "url": "ftp://h/x"}]}, ["url", "http,https"]),
    ({"channels": [{"type": "webhook", "url": "smtp://h"}]}, ["url"]),
    ({"channels": [{"type": "webhook", "url": "http://x"},
                   {"type": "smtp", "url": "smtp://h", "from": "a@b", "to": ["c@d"], "colour": 1}]},
     ["channels[1]", '"colour"']),
    ({"channels": [{"type": "smtp", "url": "smtp://h", "from": "a@b"}]}, ["to"]),
    ({"channels": [{"type": "smtp", "url": "smtp://h", "to": ["c@d"]}]}, ["from"]),
    ({"channels": [{"type": "smtp", "url": "smtp://h", "from": "a@b", "to": ["x\r\nRCPT"]}]},
     ["to[0]"]),
    ({"channels": [{"type": "smtp", "url": "smtp://h", "from": "a@b", "to": ["c@d"],
                    "username": "u"}]}, ["password"]),
    ({"channels": [{"type": "smtp", "url": "smtp://h", "from": "a@b", "to": ["c@d"],
                    "auth": "PLAIN\r\n"}]}, ["auth"]),
    ({"channels": [{"type": "webhook", "url": "http://x", "headers": {"X-A": "a\r\nb"}}]},
     ["headers.X-A"]),
    ({"channels": [{"type": "webhook", "url": "http://x", "headers": ["a"]}]}, ["headers"]),
    ({"channels": [{"type": "dingtalk", "url": "https://h/robot/send", "at_mobiles": "138"}]},
     ["at_mobiles"]),
    ({"channels": [{"type": "webhook", "url": "http://x", "insecure_skip_verify": "maybe"}]},
     ["insecure_skip_verify"]),
]


@pytest.mark.parametrize("config,needles", BAD_CONFIGS)
def test_bad_config_names_the_key(lib, config, needles):
    with pytest.raises(ConfigError) as exc:
        Notifier(lib, config)
    for needle in needles:
        assert needle in str(exc.value), str(exc.value)


def test_bad_config_hides_secrets(lib):
    with pytest.raises(ConfigError) as exc:
        Notifier(lib, {"channels": [{"type": "dingtalk", "secret": SECRET,
                                     "url": f"ftp://h/robot/send?access_token={TOKEN}"}]})
    assert_no_secrets(str(exc.value))


def test_send_rejects_null(lib, notifier, http_server):
    srv = http_server(Webhook)
    n = notifier({"channels": [{"type": "webhook", "url": srv.base}]})
    err = AdError()
    assert lib.ad_notify_send(n.h, None, b"x", None, ctypes.byref(err)) == -1
    assert b"title" in err.message
