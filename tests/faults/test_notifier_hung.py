"""Fault: the alert webhook accepts connections and never answers (a hung
endpoint), then answers again.

Invariants:
- task handling goes on while the endpoint hangs: a failed task reaches
  `failed` and a second task runs to `succeeded` meanwhile;
- the failed task's alert is delivered once the endpoint answers (the
  notifier's timeout and retries), exactly once.
"""
import ctypes
import json
import os
import socketserver
import threading
import time

from faultlib import engine_conf, start_env, wait_for


class HungHook:
    """HTTP on loopback: while `hung`, reads the request and never answers
    (the connection is dropped when it is released); else answers 200 and
    keeps the JSON body."""

    def __init__(self):
        self.hung = threading.Event()
        self.hung.set()
        self.got, self.hung_requests = [], 0
        outer = self

        class H(socketserver.StreamRequestHandler):
            def handle(self):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                hdr, _, body = head.partition(b"\r\n\r\n")
                n = next((int(l.split(b":")[1]) for l in hdr.split(b"\r\n")
                          if l.lower().startswith(b"content-length:")), 0)
                while len(body) < n:
                    body += self.request.recv(65536)
                if outer.hung.is_set():
                    outer.hung_requests += 1
                    while outer.hung.is_set():
                        time.sleep(0.1)
                    return  # dropped, never answered
                outer.got.append(json.loads(body))
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                     b"Connection: close\r\n\r\n{}")

        socketserver.ThreadingTCPServer.daemon_threads = True
        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"


def test_hung_webhook_blocks_no_task_and_alert_arrives_later(salt_env, ferretdb, ad_lib,
                                                             tmp_path):
    from test_tasks import REACTOR_KILL, REACTOR_RUN, STATES, Caller  # noqa: E402

    hook = HungHook()
    conf = engine_conf(ferretdb, tmp_path, watchdog_interval=1, notify={
        "channels": [{"type": "webhook", "url": hook.url}],
        "timeout_ms": 1500, "retries": 20, "backoff_ms": 500, "backoff_max_ms": 1000})
    env = start_env(salt_env, conf, minions=("m1",),
                    reactor=[{"autodeploy/task/*/run": [str(REACTOR_RUN)]},
                             {"autodeploy/task/*/kill": [str(REACTOR_KILL)]}],
                    file_roots={"base": [str(tmp_path / "srv-unused"), str(STATES)]})
    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    call = Caller(lib, {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
                        "master_key_path": os.path.join(env.master_opts["cachedir"],
                                                        ".root_key")})
    bad = call("task.deploy", tgt="m1", mods="autodeploy.test.fail", created_by="faults")["task"]
    assert call.wait_state(bad["_id"], ("failed",), timeout=90)["state"] == "failed"
    assert wait_for(lambda: hook.hung_requests >= 1, timeout=30), "the alert was never tried"
    t0 = time.monotonic()
    ok = call("task.deploy", tgt="m1", mods="autodeploy.test.ok", created_by="faults")["task"]
    assert call.wait_state(ok["_id"], ("succeeded",), timeout=90)["state"] == "succeeded"
    ok_s = time.monotonic() - t0
    assert not hook.got, "delivered while hung?"
    hook.hung.clear()
    assert wait_for(lambda: hook.got, timeout=60), "alert not delivered after the endpoint came back"
    time.sleep(0)  # the counts below are read after the positive evidence above
    mine = [a for a in hook.got if bad["_id"] in json.dumps(a)]
    assert len(mine) == 1, hook.got
    print(f"\nwebhook hung: {hook.hung_requests} tries held; a second task succeeded in "
          f"{ok_s:.1f} s meanwhile; the failed task's alert delivered once after release")
    hook.srv.shutdown()
