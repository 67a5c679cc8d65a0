"""Deploy tasks end to end on a real master, minion, FerretDB and engine.

Tasks are created and intervened on through the library's runner entry point
(``ad_call``, what ``salt-run autodeploy.*`` calls); the engine follows the
jobs through the bus; alerts go to a real HTTP webhook server on loopback.

- success; a failing state (retcode 2) -> failed + alert; a sleeping state past
  its timeout -> timed_out + alert and the job is killed; cancel kills a running
  step; retry starts a new attempt with a new jid; pause/resume of a multi-step
  task stops between steps; an intervention event fired by a minion (even one
  forged to look master-made) is refused and recorded, and a forged job return
  does not complete a step.

Refusals are proven by the evidence the engine leaves (a note on the task and
a counter in the engine's stats, logged every second here), never by a sleep
followed by "nothing changed".
"""
import re
import ctypes
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
REACTOR_RUN = REPO / "reactor" / "autodeploy_task.sls"
REACTOR_KILL = REPO / "reactor" / "autodeploy_kill.sls"
STATES = REPO / "states"


class ErrorT(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("domain", ctypes.c_char * 16),
                ("message", ctypes.c_char * 240)]


class Alerts:
    """A webhook receiver: every POST body is kept."""

    def __init__(self):
        self.got = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                outer.got.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.srv = HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_port}/hook"

    def titles(self):
        return [a.get("title", "") for a in self.got]


@pytest.fixture
def stack(salt_env, ferretdb, ad_lib, tmp_path):
    alerts = Alerts()
    engine = {
        "mongo_uri": ferretdb.uri, "spool_dir": str(tmp_path / "spool"),
        "batch_ms": 20, "watchdog_interval": 1, "stats_interval": 1,
        "log_events": "autodeploy/*",
        "notify": {"channels": [{"type": "webhook", "url": alerts.url}],
                   "timeout_ms": 2000, "retries": 1},
    }
    env = salt_env(master_opts={
        "engines": [{"autodeploy": engine}],
        "reactor": [{"autodeploy/task/*/run": [str(REACTOR_RUN)]},
                    {"autodeploy/task/*/kill": [str(REACTOR_KILL)]}],
        "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    env.start_minion("m1")
    env.wait_for_minion("m1")
    lib = ctypes.CDLL(str(ad_lib))
    lib.ad_call.restype = ctypes.c_void_p
    lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.ad_free.argtypes = [ctypes.c_void_p]
    conf = {"mongo_uri": ferretdb.uri, "sock_dir": str(env.sock_dir),
            "master_key_path": str(Path(env.master_opts["cachedir"]) / ".root_key")}
    yield env, Caller(lib, conf), alerts
    alerts.srv.shutdown()


class Caller:
    """ad_call (the runners' entry point) with `conf`, in this process."""

    def __init__(self, lib, conf):
        self.lib, self.conf = lib, json.dumps(conf).encode()

    @classmethod
    def load(cls, lib_path, conf):
        """A Caller over the library at `lib_path` (ctypes), its types declared."""
        lib = ctypes.CDLL(str(lib_path))
        lib.ad_call.restype = ctypes.c_void_p
        lib.ad_call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
        lib.ad_free.argtypes = [ctypes.c_void_p]
        return cls(lib, conf)

    def __call__(self, command, **args):
        err = ErrorT()
        p = self.lib.ad_call(self.conf, command.encode(), json.dumps(args).encode(),
                             ctypes.byref(err))
        if not p:
            raise ValueError(err.message.decode())
        out = json.loads(ctypes.string_at(p).decode())
        self.lib.ad_free(p)
        return out

    def wait_state(self, task_id, states, timeout=60):
        deadline = time.time() + timeout
        task = None
        while time.time() < deadline:
            task = self("task.get", id=task_id)["task"]
            if task["state"] in states:
                return task
            time.sleep(0.3)
        raise AssertionError(f"task {task_id} stayed {task and task['state']}: {task}")


def history(task):
    return [(h.get("from"), h.get("to"), h.get("note")) for h in task["history"]]


STATS = re.compile(r"stats (\{.*\})\s*$")


def engine_stats(env):
    """Every stats line the engine logged (stats_interval: 1), oldest first.
    The stats timer and the watchdog run in the same engine loop."""
    out = []
    for line in env.master_log.read_text(errors="replace").splitlines():
        m = STATS.search(line)
        if m:
            try:
                out.append(json.loads(m.group(1)))
            except ValueError:
                pass
    return out


def task_counter(env, name):
    lines = engine_stats(env)
    return lines[-1].get("tasks", {}).get(name, 0) if lines else 0


def notes_of(call, task_id):
    return [h.get("note") or "" for h in call("task.get", id=task_id)["task"]["history"]]


def running_on(env, minion, jid):
    running = env.salt(minion, "saltutil.running")
    return any(j.get("jid") == jid for j in running.get(minion, []))


def test_success_and_failure_with_alert(stack):
    env, call, alerts = stack
    ok = call("task.deploy", tgt="m1", mods="autodeploy.test.ok", created_by="alice",
              reason="open s1001")["task"]
    assert ok["state"] == "running" and ok["jid"].endswith(ok["jid"][-8:])
    done = call.wait_state(ok["_id"], {"succeeded"})
    assert [h[:2] for h in history(done)] == [(None, "queued"), ("queued", "running"),
                                             ("running", "succeeded")]
    assert done["history"][1]["actor"] == "alice"
    got = call("task.get", id=ok["_id"])
    assert got["results"][0]["jid"] == done["jid"] and got["results"][0]["retcode"] == 0

    bad = call("task.deploy", tgt="m1", mods="autodeploy.test.fail", created_by="bob")["task"]
    failed = call.wait_state(bad["_id"], {"failed"})
    assert "retcode 2" in failed["history"][-1]["cause"]
    res = call("task.get", id=bad["_id"])["results"][0]
    assert res["retcode"] == 2 and res["states"][0]["result"] is False  # failed first
    wait_for(lambda: any(bad["_id"] in t and "failed" in t for t in alerts.titles()),
             f"the failed alert; got {alerts.got}")
    listed = call("task.list", status="failed")["tasks"]
    assert [t["_id"] for t in listed] == [bad["_id"]]


def test_timeout_kills_and_alerts_then_retry(stack):
    env, call, alerts = stack
    t = call("task.deploy", tgt="m1", mods="autodeploy.test.sleep", timeout=3,
             pillar={"autodeploy": {"test": {"seconds": 60}}}, created_by="carol")["task"]
    first_jid = t["jid"]
    timed = call.wait_state(t["_id"], {"timed_out"}, timeout=30)
    moved = [h for h in timed["history"] if h.get("to") == "timed_out"]
    assert moved and moved[0]["actor"] == "watchdog"
    wait_for(lambda: any(t["_id"] in x and "timed_out" in x for x in alerts.titles()),
             "the timed_out alert")
    # the sleep was killed on the minion: it is no longer running there
    wait_for(lambda: not running_on(env, "m1", first_jid), "the sleep gone from m1", interval=1)
    # the kill job's answer is the probe, recorded on the task
    wait_for(lambda: any("probe on m1: job was alive and was killed" in n
                         for n in notes_of(call, t["_id"])), "the kill probe's note")
    # retry: a new attempt with a new jid
    call("task.intervene", id=t["_id"], action="retry", reason="try again", actor="carol")
    again = call.wait_state(t["_id"], {"running"}, timeout=20)
    again = wait_for(lambda: (lambda a: a if a["attempt"] == 2 else None)(
        call("task.get", id=t["_id"])["task"]), "attempt 2", timeout=20)
    assert again["jid"] != first_jid
    call("task.intervene", id=t["_id"], action="cancel", reason="enough", actor="carol")
    call.wait_state(t["_id"], {"cancelled"}, timeout=20)


def test_pause_resume_between_steps_and_cancel(stack):
    env, call, alerts = stack
    steps = [{"name": "init", "mods": "autodeploy.test.sleep",
              "pillar": {"autodeploy": {"test": {"seconds": 4}}}},
             {"name": "deploy", "mods": "autodeploy.test.ok"},
             {"name": "verify", "mods": "autodeploy.test.ok"}]
    t = call("task.deploy", tgt="m1", steps=steps, created_by="dave")["task"]
    assert t["state"] == "running" and t["step"] == 0
    call("task.intervene", id=t["_id"], action="pause", reason="hold on", actor="dave")
    # the pause was requested while step 0 ran (not after it ended)
    requested = wait_for(lambda: [h for h in call("task.get", id=t["_id"])["task"]["history"]
                                  if h.get("from") == "running" and h.get("to") == "running"
                                  and "pause requested" in h.get("cause", "")],
                         "the pause request on the running step")
    assert requested[0]["actor"] == "dave"
    paused = call.wait_state(t["_id"], {"paused"}, timeout=40)
    assert paused["resume_step"] == 1 and paused["step"] == 0  # init finished, deploy not started
    # it stays paused: the engine's loop (stats and watchdog) ran twice more
    # after the pause and started nothing
    seen = len(engine_stats(env))
    wait_for(lambda: len(engine_stats(env)) >= seen + 2, "two more engine loop ticks")
    still = call("task.get", id=t["_id"])["task"]
    assert (still["state"], still["rev"], still["jid"]) == ("paused", paused["rev"], paused["jid"])
    call("task.intervene", id=t["_id"], action="resume", reason="go", actor="dave")
    done = call.wait_state(t["_id"], {"succeeded"}, timeout=60)
    assert done["step"] == 2
    # invalid transition: a refusal recorded in the audit trail
    call("task.intervene", id=t["_id"], action="resume", reason="again", actor="dave")
    wait_for(lambda: any("resume refused" in n for n in notes_of(call, t["_id"])),
             "the refused resume's note", timeout=10)

    # cancel a long running step: the job is killed
    long = call("task.deploy", tgt="m1", mods="autodeploy.test.sleep",
                pillar={"autodeploy": {"test": {"seconds": 60}}}, created_by="dave")["task"]
    # the step really runs on the minion before we cancel it
    wait_for(lambda: running_on(env, "m1", long["jid"]), "the step's job on m1")
    call("task.intervene", id=long["_id"], action="cancel", reason="wrong build", actor="dave")
    c = call.wait_state(long["_id"], {"cancelled"}, timeout=20)
    assert [h for h in c["history"] if h.get("to") == "cancelled"][0]["actor"] == "dave"
    wait_for(lambda: any("probe on m1: job was alive and was killed" in n
                         for n in notes_of(call, long["_id"])), "the kill probe's note")
    wait_for(lambda: not running_on(env, "m1", long["jid"]), "the step gone from m1", interval=1)


def test_minion_cannot_intervene(stack):
    env, call, alerts = stack
    t = call("task.deploy", tgt="m1", mods="autodeploy.test.sleep", timeout=120,
             pillar={"autodeploy": {"test": {"seconds": 20}}}, created_by="erin")["task"]
    # a plain minion event, and one forged through the preload path so that it
    # arrives unwrapped, looking master-made
    body = json.dumps({"task_id": t["_id"], "action": "cancel", "reason": "x", "actor": "m1"})
    env.salt_call("m1", "event.fire_master", json.dumps({"action": "cancel"}),
                  f"autodeploy/intervene/{t['_id']}")
    env.salt_call("m1", "event.fire_master", "{}", "x",
                  f"preload={json.dumps({'events': [{'tag': f'autodeploy/intervene/{t[chr(95) + chr(105) + chr(100)]}', 'data': {'body': body, 'sig': 'AAAA'}}]})}")
    wait_for(lambda: sum("intervention refused" in n for n in notes_of(call, t["_id"])) >= 2,
             "two refusal notes")
    wait_for(lambda: task_counter(env, "refused_unsigned") >= 2, "refused_unsigned >= 2")
    task = call("task.get", id=t["_id"])["task"]
    assert task["state"] == "running" and task["rev"] == t["rev"], history(task)
    # forged returns claiming the step succeeded: the events reach the bus
    # (salt/job/*/ret/* is not on Salt's minion blacklist) but not the
    # master's job cache; one for a minion the job did not target
    def forged(minion):
        return {"tag": f"salt/job/{task['jid']}/ret/{minion}",
                "data": {"id": minion, "jid": task["jid"], "fun": "state.apply", "retcode": 0,
                         "success": True, "return": {}, "cmd": "_return",
                         "metadata": {"autodeploy_task": t["_id"], "attempt": 1,
                                      "step": "deploy"}}}
    env.salt_call("m1", "event.fire_master", "{}", "x",
                  f"preload={json.dumps({'events': [forged('m1'), forged('m9')]})}")
    want = [f"return refused: job {task['jid']} from m1: not in the master's job cache",
            f"return refused: job {task['jid']} from m9: the job did not target this minion"]
    notes = wait_for(lambda: (lambda ns: ns if all(any(w in n for n in ns) for w in want)
                              else None)(notes_of(call, t["_id"])), f"notes {want}")
    wait_for(lambda: task_counter(env, "refused_forged_returns") >= 2,
             "refused_forged_returns >= 2")
    after = call("task.get", id=t["_id"])["task"]
    assert (after["state"], after["rev"], after["jid"], after["step"]) == \
        ("running", task["rev"], task["jid"], task["step"]), (notes, history(after))
    assert running_on(env, "m1", task["jid"])  # the real step is still running
    call("task.intervene", id=t["_id"], action="cancel", reason="cleanup", actor="erin")
    call.wait_state(t["_id"], {"cancelled"}, timeout=20)


def test_bad_arguments_name_the_argument(stack):
    env, call, alerts = stack
    for args, word in [({}, "tgt"), ({"tgt": "m1", "timeout": -5}, "timeout"),
                       ({"tgt": "m1", "mods": 5}, "mods"),
                       ({"tgt": "m1", "tgt_type": "magic"}, "tgt_type")]:
        with pytest.raises(ValueError, match=word):
            call("task.deploy", **args)
    with pytest.raises(ValueError, match="action"):
        call("task.intervene", id="nope", action="explode")
    with pytest.raises(ValueError, match="status"):
        call("task.list", status="weird")
    with pytest.raises(ValueError, match="no task"):
        call("task.get", id="t-missing")
