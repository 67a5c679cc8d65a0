"""DingTalk's bpms_instance_change push decides orders (issue 11, "Approval"), on a
real master, FerretDB and the engine, in the world of test_purchase_e2e.py (its
fixture's context manager and its Cloud server, imported, not copied):

1. two profiles' services wait; one purchase run plans two orders; each gets a
   DingTalk OA instance, and the poll keeps answering RUNNING, so only a push
   can decide;
2. pushes forged three ways (a bad signature, another owner key, a signed body
   that does not decrypt) are answered 403, 403 and 400 with a reason, counted
   in the engine's purchase stats and logged in the master's log (the token and
   the key nowhere in it), and the order is untouched;
3. a finish/agree push, sealed and signed here with Python's `cryptography`
   as DingTalk's SDK does, approves the first order: the answer is the
   encrypted "success" (it opens with the same keys and its signature holds),
   the history says the callback did it, the notice is sent; the same push
   again changes nothing (decided once);
4. finish/refuse on the second order rejects it, with a reason; check_url is
   answered success.

Runtime: about 15 s.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import netns
from test_purchase_e2e import BIG, Cloud, running_loop, state_of
from waiting import wait_for

pytestmark = netns.required()

SMALL = "aliyun:cn-hangzhou:game-4c8g"
MID = "aliyun:cn-hangzhou:game-8c16g"
READER = "reader-token-0123456789abcdef"
TOKEN = "callback-token-e2e"
AES_KEY = base64.b64encode(bytes(range(100, 132))).decode()[:43]  # an EncodingAESKey
OWNER = "dingkey"  # the app key: owner_key's default


class DingTalk:
    """DingTalk's side of the HTTP push, as its DingCallbackCrypto does it."""

    def __init__(self, token=TOKEN, aes_key=AES_KEY, owner=OWNER):
        self.token, self.owner = token, owner
        self.key = base64.b64decode(aes_key + "=")

    def _cipher(self):
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def sign(self, ts, nonce, enc):
        return hashlib.sha1("".join(sorted([self.token, ts, nonce, enc])).encode()).hexdigest()

    def seal(self, text):
        msg = text.encode()
        body = os.urandom(16) + struct.pack(">I", len(msg)) + msg + self.owner.encode()
        pad = 32 - len(body) % 32
        e = self._cipher().encryptor()
        return base64.b64encode(e.update(body + bytes([pad]) * pad) + e.finalize()).decode()

    def open(self, enc):
        d = self._cipher().decryptor()
        raw = d.update(base64.b64decode(enc)) + d.finalize()
        raw = raw[:-raw[-1]]
        n = struct.unpack(">I", raw[16:20])[0]
        assert raw[20 + n:].decode() == self.owner
        return raw[20:20 + n].decode()

    def push(self, port, event, ts="1780000000000", nonce="nonce0123456789a", sig=None,
             enc=None):
        """POST the push; (status, answer as JSON)."""
        enc = enc if enc is not None else self.seal(json.dumps(event))
        sig = sig or self.sign(ts, nonce, enc)
        url = (f"http://127.0.0.1:{port}/callbacks/dingtalk?msg_signature={sig}"
               f"&timestamp={ts}&nonce={nonce}")
        req = urllib.request.Request(url, data=json.dumps({"encrypt": enc}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def purchase_stats(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/status",
                                 headers={"Authorization": f"Bearer {READER}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read()).get("purchase", {})


@pytest.fixture
def pushes(salt_env, ferretdb, tmp_path):
    port = free_port()

    def tweak(engine):
        Cloud.state["poll_running"] = True  # the poll never decides here
        engine["http"] = {"listen": f"127.0.0.1:{port}", "reader_tokens": [READER]}
        p = engine["purchase"]
        p["profiles"][SMALL] = {"flavour": "ecs.c7.xlarge", "cpu": 4, "mem_mb": 8192,
                                "disk_gb": 100}
        p["profiles"][MID] = {"flavour": "ecs.c7.2xlarge", "cpu": 8, "mem_mb": 16384,
                              "disk_gb": 100}
        p["preference"] = [BIG, MID, SMALL]
        p["approval"]["dingtalk"]["callback"] = {"token": TOKEN, "aes_key": AES_KEY}

    with running_loop(salt_env, ferretdb, tmp_path, tweak) as world:
        env, _fabric, db, _mails, alerts, _smtp = world
        yield env, db, port, alerts


def instance_of(db, oid):
    return ((db.orders.find_one({"_id": oid}) or {}).get("approval") or {}).get("instance_id")


def event(iid, kind, result=None):
    e = {"EventType": "bpms_instance_change", "processInstanceId": iid,
         "processCode": "PROC-AUTODEPLOY", "corpId": "dingcorp", "type": kind,
         "staffId": "sre-1", "title": "host order", "createTime": 1780000000000}
    if result:
        e.update(result=result, finishTime=1780000060000)
    return e


def test_pushes_decide_orders_once_and_forgeries_are_refused(pushes):
    env, db, port, alerts = pushes
    st, dt = Cloud.state, DingTalk()
    # 1. services of two profiles wait: one order each, each with an OA instance
    for code, profile, cpu in (("big", BIG, 9), ("small", SMALL, 3), ("mid", MID, 5)):
        env.salt_run("autodeploy.platform", code, state="autodeploy.test.ok",
                     profiles=json.dumps([profile]), footprint=json.dumps({"cpu": cpu, "mem_mb": 2048}),
                     reserve=json.dumps({"min": 1, "max": 1}))
    env.salt_run("autodeploy.cycle")
    wait_for(lambda: db.services.count_documents({"state": "waiting_resources"}) == 3, "three services waiting", timeout=30)
    run = env.salt_run("autodeploy.purchase", dry_run=False)
    ids = {o["id"].rsplit("-", 1)[0]: o["id"] for o in run["orders"]}
    big, small, mid = ids[BIG], ids[SMALL], ids[MID]
    big_iid = wait_for(lambda: instance_of(db, big), "the big order's OA instance", timeout=30)
    small_iid = wait_for(lambda: instance_of(db, small), "the small order's OA instance", timeout=30)
    wait_for(lambda: st["instances"][big_iid]["polls"] >= 2 and st["instances"][small_iid]["polls"] >= 2, "both instances polled (RUNNING)", timeout=30)
    before = db.orders.find_one({"_id": big})
    assert before["state"] == "awaiting_approval", before["state"]

    # 2. forgeries: refused with a reason, counted, the order untouched
    agree = event(big_iid, "finish", "agree")
    status, ans = dt.push(port, agree, sig="0" * 40)
    assert status == 403 and "signature does not match" in ans["reason"], (status, ans)
    status, ans = DingTalk(owner="another-app").push(port, agree)
    assert status == 403 and "another owner key" in ans["reason"], (status, ans)
    status, ans = dt.push(port, agree, enc="bm90IGEgY2lwaGVydGV4dA==")  # signed, 16 bytes of text
    assert status == 400 and "padding" in ans["reason"], (status, ans)
    stats = purchase_stats(port)
    assert stats["callbacks_refused"] == 3 and stats["callbacks_decided"] == 0, stats
    after = db.orders.find_one({"_id": big})
    assert (after["state"], after["rev"]) == ("awaiting_approval", before["rev"]), after["history"]
    log = env.master_log
    wait_for(lambda: log.exists() and "DingTalk callback from 127.0.0.1 refused (403): callback: the "
         "signature does not match" in log.read_text(errors="replace"), "the refusal logged", timeout=30)
    text = log.read_text(errors="replace")
    assert "refused (400): callback: bad padding" in text
    assert TOKEN not in text and AES_KEY not in text  # secrets never logged

    # 3. the real push approves; DingTalk's answer checks out
    status, ans = dt.push(port, agree)
    assert status == 200, (status, ans)
    assert set(ans) == {"msg_signature", "timeStamp", "nonce", "encrypt"}, ans
    assert dt.open(ans["encrypt"]) == "success"
    assert ans["msg_signature"] == dt.sign(ans["timeStamp"], ans["nonce"], ans["encrypt"])
    wait_for(lambda: state_of(db, big) not in ("awaiting_approval", None), "approved", timeout=30)
    hist = db.orders.find_one({"_id": big})["history"]
    (approve,) = [h for h in hist if h.get("what") == "approve"]
    assert approve["actor"] == "dingtalk:callback", approve
    assert approve["cause"] == "approved in DingTalk OA (bpms_instance_change callback)", approve
    assert (approve["from"], approve["to"]) == ("awaiting_approval", "approved"), approve
    wait_for(lambda: any(t.endswith(f"order {big}: approved") for t in alerts.titles()), "the approved notice", timeout=30)
    #    the same push again, with the poll still running: decided once
    status, ans = dt.push(port, agree, ts="1780000000500")
    assert status == 200 and dt.open(ans["encrypt"]) == "success"
    hist = db.orders.find_one({"_id": big})["history"]
    assert len([h for h in hist if h.get("what") == "approve"]) == 1, hist
    assert state_of(db, small) == "awaiting_approval"

    # 4. a refusal rejects the second order, with a reason
    status, ans = dt.push(port, event(small_iid, "finish", "refuse"))
    assert status == 200 and dt.open(ans["encrypt"]) == "success", (status, ans)
    wait_for(lambda: state_of(db, small) == "rejected", "rejected", timeout=30)
    o = db.orders.find_one({"_id": small})
    assert o["end_reason"] == "rejected in DingTalk OA (bpms_instance_change callback)", o
    assert o["history"][-1]["actor"] == "dingtalk:callback", o["history"][-1]
    status, ans = dt.push(port, {"EventType": "check_url"})
    assert status == 200 and dt.open(ans["encrypt"]) == "success"
    stats = purchase_stats(port)
    assert (stats["callbacks"], stats["callbacks_decided"], stats["callbacks_refused"]) == (4, 2, 3), stats

    # 5. a race: the poll turns agree while eight pushes of the same agree land at
    #    once on the server's threads: one decision, whoever wins
    mid_iid = wait_for(lambda: instance_of(db, mid), "the third order's OA instance", timeout=30)
    assert state_of(db, mid) == "awaiting_approval"
    st["instances"][mid_iid]["agree"] = True
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: dt.push(port, event(mid_iid, "finish", "agree")), range(8)))
    assert all(code == 200 and dt.open(a["encrypt"]) == "success" for code, a in answers), answers
    wait_for(lambda: state_of(db, mid) not in ("awaiting_approval", None), "the third approved", timeout=30)
    time.sleep(2)  # two more polls: they find it decided
    hist = db.orders.find_one({"_id": mid})["history"]
    approves = [h for h in hist if h.get("what") == "approve"]
    assert len(approves) == 1 and approves[0]["actor"] in ("dingtalk:callback", "dingtalk:boss"), hist
    decided = purchase_stats(port)["callbacks_decided"] - stats["callbacks_decided"]
    assert decided == (1 if approves[0]["actor"] == "dingtalk:callback" else 0), (decided, approves)
    assert all(i["polls"] >= 2 for i in st["instances"].values())  # the poll ran all along
