"""The task reactor (``reactor/*.sls``) and the deploy states (``states/``) on a real master.

What is proved here, end to end, on the Salt of ``$SALT_VENV`` (3006 and 3008):

* a signed ``autodeploy/task/<id>/run`` event fired on the master bus from the master
  side starts ``state.apply`` on the target under exactly the jid we chose; the job's
  ``salt/job/<jid>/new`` and ``salt/job/<jid>/ret/<minion>`` carry that jid, and every
  return carries ``metadata`` ``{autodeploy_task, attempt, step}``;
* the pillar in the request reaches the state: ``autodeploy.gameserver`` lays down the
  user, the directories, the config rendered from pillar and a systemd unit file that
  is neither enabled nor started;
* list targeting reports the missing minion in ``new``; a failing state returns
  retcode 2 with the metadata; a reused jid is announced again by the master but the
  minion drops it (no second return);
* a minion cannot start a deploy: neither a plain ``event.fire_master`` (which arrives
  wrapped, ``cmd: _minion_event``) nor an ``events`` preload (which arrives looking
  exactly like a master-side fire) nor an unsigned or wrongly signed master-side event
  starts a job, and each refusal is logged with its reason; a signed request with a
  jid that is not a Salt jid is refused too;
* ``autodeploy/task/<id>/kill`` kills a running step: the kill job (under its own
  pre-assigned jid) returns "Signal 9 sent to job <jid> ...", the killed job never
  returns, and its ``sleep`` child is gone.

The bus is watched and fired through a small helper run by the venv's Python
(``salt.utils.event.get_master_event``), so this file itself needs no Salt import.
"""

import base64
import datetime
import fnmatch
import grp
import hashlib
import hmac
import json
import os
import pwd
import secrets
import stat
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REACTOR_RUN = REPO / "reactor" / "autodeploy_task.sls"
REACTOR_KILL = REPO / "reactor" / "autodeploy_kill.sls"
STATES = REPO / "states"

BUS_HELPER = r'''
import json, sys, time
import salt.config, salt.utils.event

def main():
    mode, conf = sys.argv[1], sys.argv[2]
    opts = salt.config.master_config(conf)
    if mode == "fire":
        tag, data = sys.argv[3], json.loads(sys.argv[4])
        with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as ev:
            ok = ev.fire_event(data, tag)
        print(json.dumps({"fired": bool(ok)}), flush=True)
        return 0 if ok else 1
    out = open(sys.argv[3], "a", buffering=1)
    ev = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
    if not ev.connect_pub(timeout=30):
        return 1
    out.write(json.dumps({"ready": True}) + "\n")
    while True:
        e = ev.get_event(wait=1, full=True, auto_reconnect=True)
        if e:
            out.write(json.dumps({"t": time.time(), "tag": e["tag"], "data": e["data"]},
                                 default=repr) + "\n")

sys.exit(main())
'''


# --------------------------------------------------------------------- helpers
def new_jid(suffix="ad"):
    """A jid in Salt's format plus an ``_ad<hex>`` suffix (never one Salt makes)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y%m%d%H%M%S%f}_{suffix}{secrets.token_hex(3)}"


class Bus:
    """Watch the master bus through the helper; fire events through it."""

    def __init__(self, env, python, workdir):
        self.env = env
        self.python = str(python)
        self.helper = Path(workdir) / "adbus.py"
        self.helper.write_text(BUS_HELPER)
        self.path = Path(workdir) / "events.jsonl"
        self.path.write_text("")
        self.proc = subprocess.Popen(
            [self.python, str(self.helper), "watch", str(env.master_config_path),
             str(self.path)],
            stdout=subprocess.DEVNULL, stderr=open(Path(workdir) / "adbus.err", "w"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while '"ready"' not in self.path.read_text():
            assert self.proc.poll() is None, "bus watcher died: " + (
                (Path(workdir) / "adbus.err").read_text())
            assert time.monotonic() < deadline, "bus watcher not ready"
            time.sleep(0.05)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def events(self, pattern="*"):
        out = []
        for line in self.path.read_text().splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a line being written
            if "tag" in ev and fnmatch.fnmatchcase(ev["tag"], pattern):
                out.append(ev)
        return out

    def wait(self, pattern, count=1, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(pattern)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                tags = [e["tag"] for e in self.events()][-30:]
                raise AssertionError(f"no {pattern!r} (x{count}) in {timeout}s; last tags: {tags}")
            time.sleep(0.1)

    def fire(self, tag, data):
        res = subprocess.run(
            [self.python, str(self.helper), "fire", str(self.env.master_config_path), tag,
             json.dumps(data)],
            capture_output=True, text=True, timeout=60,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        return res


def master_key(env):
    # get_master_key('root', opts): <cachedir>/.<user>_key; the test master runs as root.
    return (Path(env.master_opts["cachedir"]) / ".root_key").read_text()


def signed(env, tag, request, key=None):
    """The event data for ``request``: {body, sig} with sig = HMAC-SHA256(tag|body)."""
    body = json.dumps(request, sort_keys=True, separators=(",", ":"))
    key = master_key(env) if key is None else key
    mac = hmac.new(key.encode(), f"{tag}|{body}".encode(), hashlib.sha256).digest()
    return {"body": body, "sig": base64.b64encode(mac).decode()}


def fire_run(bus, task_id, **request):
    tag = f"autodeploy/task/{task_id}/run"
    request = {"task_id": task_id, "attempt": 1, **request}
    bus.fire(tag, signed(bus.env, tag, request))
    return request


def start(salt_env, salt_venv, tmp_path, minions=("m1",)):
    env = salt_env(master_opts={
        "reactor": [
            {"autodeploy/task/*/run": [str(REACTOR_RUN)]},
            {"autodeploy/task/*/kill": [str(REACTOR_KILL)]},
        ],
        "file_roots": {"base": [str(Path(tmp_path) / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    for mid in minions:
        env.start_minion(mid)
    for mid in minions:
        env.wait_for_minion(mid)
    bus = Bus(env, salt_venv / "bin" / "python", env.root)
    return env, bus


@pytest.fixture
def game_user():
    """A throwaway system user/group name; removed afterwards if the state made it."""
    name = "adt" + secrets.token_hex(4)
    yield name
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


def warnings_in(env, needle):
    text = env.master_log.read_text(errors="replace")
    return [l for l in text.splitlines() if "autodeploy reactor: ignored" in l and needle in l]


def states_by_id(ret_data):
    ret = ret_data["return"]
    assert isinstance(ret, dict), f"state run did not run: {ret!r}"
    return {v["__id__"]: v for v in ret.values()}


# ----------------------------------------------------------------------- tests
def test_run_event_deploys_with_our_jid_and_metadata(salt_env, salt_venv, tmp_path, game_user):
    env, bus = start(salt_env, salt_venv, tmp_path)
    try:
        base_dir = env.root / "game"
        unit_dir = env.root / "units"
        jid = new_jid()
        pillar = {"autodeploy": {
            "unit_dir": str(unit_dir),
            "services_dir": str(env.root / "services.d"),
            "service": {
                "id": "cn-s101", "platform": "cn", "server_no": 101, "user": game_user,
                "base_dir": str(base_dir), "port": 7101, "version": "1.0.3",
                "config": {"max_players": 500, "motd": "hello there", "pvp": True,
                           "db": {"host": "10.0.0.5", "port": 3306}},
            },
        }}
        fire_run(bus, "t-deploy-1", attempt=1, jid=jid, tgt="m1",
                 mods="autodeploy.gameserver", pillar=pillar, step="deploy")

        new = bus.wait(f"salt/job/{jid}/new")[0]["data"]
        assert new["jid"] == jid and new["fun"] == "state.apply"
        assert new["minions"] == ["m1"]
        assert "metadata" not in new  # `new` never carries it (3006 and 3008)

        ret = bus.wait(f"salt/job/{jid}/ret/m1", timeout=120)[0]["data"]
        assert ret["jid"] == jid
        assert ret["metadata"] == {"autodeploy_task": "t-deploy-1", "attempt": 1,
                                   "step": "deploy"}
        assert ret["retcode"] == 0, ret["return"]
        by_id = states_by_id(ret)
        assert all(s["result"] is True for s in by_id.values()), by_id
        assert {"autodeploy_gameserver_user", "autodeploy_gameserver_group",
                "autodeploy_gameserver_config", "autodeploy_gameserver_unit",
                "autodeploy_gameserver_binary"} <= set(by_id)
        # deploy only: nothing touches the service, and no daemon-reload outside /etc
        assert not [k for k in ret["return"] if k.startswith("service_|-")]
        assert "autodeploy_gameserver_daemon_reload" not in by_id

        home = base_dir / "game-cn-101"
        uid = pwd.getpwnam(game_user).pw_uid
        gid = grp.getgrnam(game_user).gr_gid
        for sub in ("", "bin", "conf", "logs", "data"):
            st = (home / sub).stat()
            assert stat.S_ISDIR(st.st_mode) and (st.st_uid, st.st_gid) == (uid, gid), sub
            assert stat.S_IMODE(st.st_mode) == 0o750, sub
        ini = (home / "conf" / "game.ini").read_text()
        for line in ("[server]", "id = cn-s101", "port = 7101", "max_players = 500",
                     "motd = hello there", "pvp = true", "[db]", "host = 10.0.0.5",
                     "port = 3306", f"data_dir = {home}/data"):
            assert line in ini.splitlines(), (line, ini)
        assert stat.S_IMODE((home / "conf" / "game.ini").stat().st_mode) == 0o640
        binary = home / "bin" / "gameserver"
        assert os.access(binary, os.X_OK) and "version 1.0.3" in binary.read_text()
        unit = (unit_dir / "game-cn-101.service").read_text()
        assert f"ExecStart={home}/bin/gameserver --config {home}/conf/game.ini" in unit
        assert f"User={game_user}" in unit and "WantedBy=multi-user.target" in unit
        assert not list(unit_dir.glob("*.wants"))  # installed, not enabled
        # the record the autodeploy_services beacon measures it by (docs/usage.md)
        record = json.loads((env.root / "services.d" / "cn-s101.json").read_text())
        assert record == {"id": "cn-s101", "platform": "cn", "server_no": "101",
                          "unit": "game-cn-101.service", "home": str(home),
                          "pid_file": f"{home}/run/gameserver.pid"}, record

        # A list target with one unknown minion, and a failing state: retcode 2.
        jid2 = new_jid()
        fire_run(bus, "t-fail-1", attempt=2, jid=jid2, tgt=["m1", "ghost"],
                 mods="autodeploy.test.fail", step="check")
        new2 = bus.wait(f"salt/job/{jid2}/new")[0]["data"]
        assert new2["tgt_type"] == "list" and new2["minions"] == ["m1"]
        assert new2["missing"] == ["ghost"]
        ret2 = bus.wait(f"salt/job/{jid2}/ret/m1", timeout=60)[0]["data"]
        assert ret2["retcode"] == 2
        assert ret2["metadata"] == {"autodeploy_task": "t-fail-1", "attempt": 2,
                                    "step": "check"}
        assert [s["result"] for s in states_by_id(ret2).values()] == [False]

        # The same jid again: the master announces it again, the minion drops it.
        fire_run(bus, "t-fail-1", attempt=3, jid=jid2, tgt=["m1", "ghost"],
                 mods="autodeploy.test.ok")
        bus.wait(f"salt/job/{jid2}/new", count=2)
        jid3 = new_jid()  # a later job on the same minion returns...
        fire_run(bus, "t-ok-1", jid=jid3, tgt="m1", mods="autodeploy.test.ok")
        ret3 = bus.wait(f"salt/job/{jid3}/ret/m1", timeout=60)[0]["data"]
        assert ret3["retcode"] == 0 and ret3["metadata"]["autodeploy_task"] == "t-ok-1"
        # ...and the duplicate was dropped on arrival, by the minion's own log
        # (info level): received twice, started once, and handled before the
        # later job was received (the minion handles publications in order)
        lines = dropped_duplicate(env, "m1", jid2, jid3)
        assert len(bus.events(f"salt/job/{jid2}/ret/*")) == 1, lines
    finally:
        bus.close()


def dropped_duplicate(env, minion, dup, later):
    """The minion log's evidence that the publication of ``dup`` (a jid the
    minion had run) was dropped: two "Executing command" lines, one "Starting
    a new job", the second receipt before ``later``'s. Salt logs nothing more
    for the drop (minion.py: ``if data["jid"] in self.jid_queue: return``)."""
    log = env.minion_log(minion)
    started = f"Starting a new job {later} "
    deadline = time.monotonic() + 30
    while started not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{later} never started on {minion}"
        time.sleep(0.1)
    lines = log.read_text(errors="replace").splitlines()
    got = [i for i, l in enumerate(lines) if f"with jid {dup}" in l and "Executing command" in l]
    ran = [l for l in lines if f"Starting a new job {dup} " in l]
    later_got = [i for i, l in enumerate(lines) if f"with jid {later}" in l and "Executing" in l]
    assert len(got) == 2 and len(ran) == 1, (got, ran)
    assert later_got and got[1] < later_got[0], (got, later_got)
    return [lines[i] for i in got] + ran


def test_only_signed_master_events_start_jobs(salt_env, salt_venv, tmp_path):
    env, bus = start(salt_env, salt_venv, tmp_path)
    try:
        tag = "autodeploy/task/t-evil/run"
        jids = {}

        def request(name):
            jids[name] = new_jid()
            return {"task_id": "t-evil", "attempt": 1, "jid": jids[name], "tgt": "m1",
                    "mods": "autodeploy.test.ok"}

        # 1. A minion fires a correctly signed request (say, a leaked one) the plain
        #    way: it arrives wrapped, {id, cmd: _minion_event, data: {...}}.
        env.salt_call("m1", "event.fire_master", signed(env, tag, request("wrapped")), tag)
        # 2. A minion fires through the "events" preload: the master unwraps it and it
        #    looks exactly like a master-side fire. Only the signature is missing.
        forged = {"body": json.dumps(request("preload")), "sig": "AAAA"}
        env.salt_call("m1", "event.fire_master", {}, "autodeploy/ignored",
                      preload={"events": [{"tag": tag, "data": forged}]})
        # 3. Master side but unsigned, or signed with another key.
        bus.fire(tag, {"body": json.dumps(request("unsigned"))})
        bus.fire(tag, signed(env, tag, request("badkey"), key="x" * 40))
        # 4. Signed, but for another task id than the tag's, or with a bad jid.
        bus.fire(tag, signed(env, tag, {**request("othertask"), "task_id": "t-other"}))
        bad = {**request("badjid"), "jid": "task-evil-1"}
        bus.fire(tag, signed(env, tag, bad))
        nl = request("newline")
        jids["newline"] = nl["jid"] = nl["jid"] + "\n"  # re's $ alone would let it by
        bus.fire(tag, signed(env, tag, nl))
        # 5. The control: the same request, signed, from the master side. The reactor
        #    handles events in order, so once this one's job exists, all the above
        #    have been decided.
        ok = request("control")
        bus.fire(tag, signed(env, tag, ok))
        bus.wait(f"salt/job/{jids['control']}/ret/m1", timeout=60)

        evil_wrapped = [e for e in bus.events(tag) if e["data"].get("cmd") == "_minion_event"]
        assert evil_wrapped and evil_wrapped[0]["data"]["id"] == "m1"
        unwrapped = [e for e in bus.events(tag) if e["data"].get("sig") == "AAAA"]
        assert unwrapped and "id" not in unwrapped[0]["data"]  # indistinguishable by fields
        for name, jid in jids.items():
            if name != "control":
                assert not bus.events(f"salt/job/{jid}/*"), name
        assert len(bus.events("salt/job/*/new")) == 1
        for needle in ('sent by a minion (id "m1")', "bad signature", "not signed",
                       "does not match the tag", "is not a Salt jid"):
            assert warnings_in(env, needle), needle
        assert len(warnings_in(env, "bad signature")) == 2  # the preload and the bad key
        assert len(warnings_in(env, "is not a Salt jid")) == 2
    finally:
        bus.close()


def _sleep_pids(seconds):
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[:2] == [b"sleep", str(seconds).encode()]:
                pids.append(int(name))
    return pids


def test_kill_event_stops_a_running_step(salt_env, salt_venv, tmp_path):
    env, bus = start(salt_env, salt_venv, tmp_path)
    try:
        seconds = 400 + secrets.randbelow(500)  # a sleep no one else runs
        jid = new_jid()
        t0 = time.monotonic()
        fire_run(bus, "t-long", attempt=1, jid=jid, tgt="m1", mods="autodeploy.test.sleep",
                 pillar={"autodeploy": {"test": {"seconds": seconds}}})
        bus.wait(f"salt/job/{jid}/new")
        deadline = time.monotonic() + 60
        while not _sleep_pids(seconds):
            assert time.monotonic() < deadline, "the step never started its sleep"
            time.sleep(0.1)

        kill_jid = new_jid()
        tag = "autodeploy/task/t-long/kill"
        bus.fire(tag, signed(env, tag, {"task_id": "t-long", "attempt": 1, "jid": jid,
                                        "tgt": "m1", "kill_jid": kill_jid}))
        ret = bus.wait(f"salt/job/{kill_jid}/ret/m1", timeout=60)[0]["data"]
        assert ret["fun"] == "saltutil.kill_job"
        assert ret["return"].startswith(f"Signal 9 sent to job {jid} at pid ")
        assert ret["metadata"] == {"autodeploy_task": "t-long", "attempt": 1,
                                   "step": "kill", "target_jid": jid}
        deadline = time.monotonic() + 10
        while _sleep_pids(seconds):
            assert time.monotonic() < deadline, "the step's sleep survived the kill"
            time.sleep(0.1)
        assert time.monotonic() - t0 < seconds / 4  # ended early
        # The killed job never returns; a second kill finds nothing to kill.
        kill2 = new_jid()
        bus.fire(tag, signed(env, tag, {"task_id": "t-long", "attempt": 1, "jid": jid,
                                        "tgt": "m1", "kill_jid": kill2}))
        assert bus.wait(f"salt/job/{kill2}/ret/m1", timeout=60)[0]["data"]["return"] == ""
        assert not bus.events(f"salt/job/{jid}/ret/*")
    finally:
        bus.close()
