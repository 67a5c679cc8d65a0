"""``states/autodeploy/host`` (host init, issue 4) on a real master + minion.

What is proved here, on the Salt of ``$SALT_VENV`` (3008 by default; 3006 too):

* ``state.apply autodeploy.host`` with a test pillar (paths under the test's root, a
  throwaway user, ``packages: []``, ``apply_sysctl: false``, beacons every 2 s) returns
  retcode 0 in its ``salt/job/<jid>/ret/<minion>`` event: the directories exist with
  their owner and mode, the sysctl and limits files hold what they should;
* the running minion took the beacons without a restart: ``salt/beacon/<id>/load/``,
  ``.../memusage/`` and ``.../diskusage/`` reach the master bus within seconds, and
  keep coming (read with ``autodeploy-events --count --timeout``);
* a second apply changes nothing; after a minion restart the beacons come from the
  written minion.d file alone, and an apply by hand (``salt-call``) still changes
  nothing;
* with ``apply_sysctl: true`` and values equal to the running ones, the ``sysctl -p``
  step is skipped by its check (the check is tested, the host is not touched);
* a bad pillar gives one failing state naming every bad key, retcode 2, and nothing
  else is done.
"""

import grp
import itertools
import json
import os
import pwd
import re
import secrets
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STATES = REPO / "states"
MINION = "m1"
BEACONS = ("load", "memusage", "diskusage", "autodeploy_services")
INTERVAL = 2


# --------------------------------------------------------------------- helpers
@pytest.fixture
def events_cli(ad_bin):
    cli = ad_bin / "autodeploy-events"
    if not cli.exists():
        pytest.fail(f"no {cli} (run `make tools` or set AD_BIN)")
    return cli


@pytest.fixture
def throwaway_user():
    """A throwaway system user/group name; removed afterwards if the state made it."""
    names = []

    def make():
        names.append("adh" + secrets.token_hex(4))
        return names[-1]

    yield make
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


class JobWatch:
    """``autodeploy-events`` in the background, printing job returns to a file.

    A reader registers with the master a moment after it logs "connected"; events in
    between are lost to it (see test_bus.py), so ``__init__`` fires probe events
    until one is read back.
    """

    def __init__(self, cli, env, workdir):
        self.cli, self.env = str(cli), env
        self.out = Path(workdir) / "jobs.jsonl"
        self.err = Path(workdir) / "jobs.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [self.cli, "-c", str(env.master_config_path), "-m", "salt/job/*/ret/*",
                 "-m", "autodeploy/test/probe/*"],
                stdout=out, stderr=err,
            )
        run = uuid.uuid4().hex[:8]
        deadline = time.monotonic() + 30
        for n in itertools.count():
            tag = f"autodeploy/test/probe/{run}/{n}"
            subprocess.run([self.cli, "fire", tag, "{}", "-c", str(env.master_config_path)],
                           capture_output=True, timeout=30)
            t = time.monotonic() + 0.5
            while time.monotonic() < t:
                if self.find(tag):
                    return
                time.sleep(0.05)
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, "probe never read back: " + self.err.read_text()

    def events(self):
        out = []
        for line in self.out.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line being written
        return out

    def find(self, tag):
        return [e for e in self.events() if e["tag"] == tag]

    def ret(self, jid, timeout=120):
        tag = f"salt/job/{jid}/ret/{MINION}"
        deadline = time.monotonic() + timeout
        while not self.find(tag):
            assert time.monotonic() < deadline, f"no {tag} in {timeout}s"
            time.sleep(0.1)
        return self.find(tag)[0]["data"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def apply(env, watch, pillar):
    """``salt m1 state.apply autodeploy.host pillar=...``: the job's ret event data."""
    res = env.run_cli("salt", [MINION, "state.apply", "autodeploy.host",
                               "pillar=" + json.dumps(pillar), "--out=json",
                               "--show-jid", "--timeout=120"], timeout=240)
    m = re.search(r"^jid: (\d{20})$", res.stdout, re.M)
    assert m, res
    return watch.ret(m.group(1))


def states(ret):
    """{state id: state result dict} from a state.apply return."""
    assert isinstance(ret, dict), f"the state did not run: {ret!r}"
    return {v["__id__"]: v for v in ret.values()}


def changed(by_id):
    return sorted(k for k, v in by_id.items() if v["changes"])


def beacon_events(cli, env, count, timeout):
    """Read ``count`` beacon events off the master bus: (exit code, events, seconds)."""
    t0 = time.monotonic()
    res = subprocess.run(
        [str(cli), "-c", str(env.master_config_path), "-m", f"salt/beacon/{MINION}/*",
         "--count", str(count), "--timeout", str(timeout)],
        capture_output=True, text=True, timeout=timeout + 30,
    )
    evs = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
    return res.returncode, evs, time.monotonic() - t0


def by_beacon(evs):
    out = {}
    for ev in evs:
        name = ev["tag"].split("/")[3]
        assert ev["tag"] == f"salt/beacon/{MINION}/{name}/", ev["tag"]
        out.setdefault(name, []).append(ev["data"])
    return out


def check_beacon_payloads(kinds):
    assert set(kinds) == set(BEACONS), sorted(kinds)
    for d in kinds["load"]:
        assert set(d) == {"1m", "5m", "15m", "id", "_stamp"}, d
        assert all(isinstance(d[k], float) and d[k] >= 0 for k in ("1m", "5m", "15m")), d
    for d in kinds["memusage"]:
        assert set(d) == {"memusage", "id", "_stamp"} and 0 < d["memusage"] <= 100, d
    for d in kinds["autodeploy_services"]:  # no game server recorded on this host
        assert set(d) == {"services", "count", "left_out", "id", "_stamp"}, d
        assert d["services"] == {} and d["count"] == 0, d
    for d in kinds["diskusage"]:
        assert set(d) == {"diskusage", "mount", "id", "_stamp"}, d
        assert d["mount"] == "/" and 0 <= d["diskusage"] <= 100, d
    assert all(d["id"] == MINION for ds in kinds.values() for d in ds)


def restart_minion(env):
    """Stop and start the minion with the same config.

    Salt (3006 and 3008) refuses to start while the process named in
    ``run/process_responsibility_salt-minion.pid`` exists. Here the old minion's
    main process is a child of the stopped one; orphaned, it stays a zombie of PID 1
    for ~2 s (this machine's init reaps late), so wait until it is gone.
    """
    env.stop_minion(MINION)
    mantle = env.minion_conf_dir(MINION).parent / "run" / "process_responsibility_salt-minion.pid"
    if mantle.exists():
        pid = json.loads(mantle.read_text())["pid"]
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}"):
            assert time.monotonic() < deadline, f"old minion process {pid} still there"
            time.sleep(0.1)
    env.start_minion(MINION)


def start(salt_env, tmp_path):
    env = salt_env(master_opts={
        "file_roots": {"base": [str(Path(tmp_path) / "srv-unused"), str(STATES)]},
    })
    env.start_master()
    env.start_minion(MINION)
    env.wait_for_minion(MINION)
    return env


def host_pillar(env, user):
    root = env.root / "host"
    return {"autodeploy": {"services_dir": str(root / "services.d"), "host": {
        "base_dir": str(root / "data"),
        "user": user,
        "packages": [],
        "apply_sysctl": False,
        "sysctl_file": str(root / "etc" / "sysctl.d" / "90-autodeploy-game.conf"),
        "limits_file": str(root / "etc" / "limits.d" / "90-autodeploy-game.conf"),
        # minion.d of the test minion: what it reads when it (re)starts
        "beacons_file": str(env.minion_conf_dir(MINION) / "minion.d"
                            / "autodeploy-beacons.conf"),
        "beacon_interval": INTERVAL,
    }}}


# ----------------------------------------------------------------------- tests
def test_host_init_applies_and_beacons_report(salt_env, tmp_path, events_cli,
                                              throwaway_user):
    env = start(salt_env, tmp_path)
    watch = JobWatch(events_cli, env, env.root)
    user = throwaway_user()
    pillar = host_pillar(env, user)
    h = pillar["autodeploy"]["host"]
    timings = {}
    try:
        # 1. First run: everything is laid down, retcode 0.
        t0 = time.monotonic()
        ret = apply(env, watch, pillar)
        timings["first apply"] = time.monotonic() - t0
        assert ret["retcode"] == 0, ret["return"]
        by_id = states(ret["return"])
        assert all(s["result"] is True for s in by_id.values()), by_id
        assert set(by_id) == {
            "autodeploy_host_group", "autodeploy_host_user", "autodeploy_host_base_dir",
            "autodeploy_host_dir_games", "autodeploy_host_dir_logs",
            "autodeploy_host_dir_backup", "autodeploy_host_sysctl_file",
            "autodeploy_host_limits_file", "autodeploy_host_beacons_file",
            "autodeploy_host_beacon_load", "autodeploy_host_beacon_memusage",
            "autodeploy_host_beacon_diskusage", "autodeploy_host_sync_beacons",
            "autodeploy_host_beacon_autodeploy_services",
        }  # no packages ([]), no `sysctl -p` (apply_sysctl false)
        for name in BEACONS:  # beacon.present reports an add in its comment only
            assert by_id[f"autodeploy_host_beacon_{name}"]["comment"] == \
                f"Adding {name} to beacons"

        pw = pwd.getpwnam(user)
        gid = grp.getgrnam(user).gr_gid
        assert pw.pw_gid == gid and pw.pw_shell == "/usr/sbin/nologin"
        assert pw.pw_uid < 1000  # a system user
        base = Path(h["base_dir"])
        assert base.is_dir()
        for sub in ("games", "logs", "backup"):
            st = (base / sub).stat()
            assert stat.S_ISDIR(st.st_mode) and (st.st_uid, st.st_gid) == (pw.pw_uid, gid)
            assert stat.S_IMODE(st.st_mode) == 0o750, sub

        sysctl = Path(h["sysctl_file"]).read_text()
        settings = dict(re.findall(r"^([a-z0-9_.-]+) = (.+)$", sysctl, re.M))
        for key, value in {
            "fs.file-max": "9223372036854775807", "fs.nr_open": "1073741816",
            "net.core.somaxconn": "65535", "net.ipv4.tcp_max_syn_backlog": "65535",
            "net.ipv4.tcp_tw_reuse": "1", "net.ipv4.tcp_fin_timeout": "15",
            "net.ipv4.ip_local_port_range": "15000 65000", "vm.swappiness": "10",
        }.items():
            assert settings.get(key) == value, (key, sysctl)
        lines = sysctl.splitlines()
        for i, line in enumerate(lines):  # every setting has its comment above it
            if re.match(r"^[a-z]", line):
                assert lines[i - 1].startswith("# "), line
        assert stat.S_IMODE(Path(h["sysctl_file"]).stat().st_mode) == 0o644

        limits = [l.split() for l in Path(h["limits_file"]).read_text().splitlines()
                  if l and not l.startswith("#")]
        assert limits == [[user, "soft", "nofile", "1048576"],
                          [user, "hard", "nofile", "1048576"],
                          [user, "soft", "nproc", "65535"],
                          [user, "hard", "nproc", "65535"]]

        conf = Path(h["beacons_file"]).read_text()
        assert f'- {{"interval": {INTERVAL}}}' in conf and "beacons:" in conf

        # 2. The running minion took the beacons (no restart): all four report,
        #    every interval (4 kinds x 3 rounds).
        rc, evs, secs = beacon_events(events_cli, env, count=12, timeout=15)
        timings["12 beacon events after apply"] = secs
        assert rc == 0, (rc, evs)
        kinds = by_beacon(evs)
        check_beacon_payloads(kinds)
        assert all(len(v) >= 2 for v in kinds.values()), {k: len(v) for k, v in kinds.items()}
        running = env.salt(MINION, "beacons.list", return_yaml=False)[MINION]
        assert set(running) >= set(BEACONS)
        print("beacon events:", json.dumps(evs[:3]))

        # 3. Second run: nothing to do.
        t0 = time.monotonic()
        ret = apply(env, watch, pillar)
        timings["second apply"] = time.monotonic() - t0
        assert ret["retcode"] == 0, ret["return"]
        by_id = states(ret["return"])
        assert changed(by_id) == [] and all(s["result"] is True for s in by_id.values())
        assert by_id["autodeploy_host_beacon_load"]["comment"] == "Job load in correct state"

        # 4. A restarted minion gets its beacons from the minion.d file alone, and a
        #    run by hand (salt-call on the host) finds nothing to do.
        restart_minion(env)
        env.wait_for_minion(MINION)
        rc, evs, secs = beacon_events(events_cli, env, count=8, timeout=15)
        timings["8 beacon events after restart"] = secs
        assert rc == 0, (rc, evs)
        check_beacon_payloads(by_beacon(evs))
        t0 = time.monotonic()
        res = env.salt_call(MINION, "state.apply", "autodeploy.host",
                            pillar=json.dumps(pillar), raw=True,
                            cli_args=["--retcode-passthrough"])
        timings["salt-call apply after restart"] = time.monotonic() - t0
        assert res.returncode == 0, res.stdout + res.stderr
        by_id = states(res.json["local"])
        assert changed(by_id) == [] and all(s["result"] is True for s in by_id.values())

        # 5. apply_sysctl: the `sysctl -p` step runs unless every running value
        #    equals the file. Only keys already at their running values here (a
        #    multi-value one included), so the check must skip it.
        somaxconn = Path("/proc/sys/net/core/somaxconn").read_text().strip()
        ports = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().strip()
        assert "\t" in ports
        sysctl_pillar = {k: None for k in settings}  # drop every default
        sysctl_pillar.update({"net.core.somaxconn": int(somaxconn),
                              "net.ipv4.ip_local_port_range": ports})
        pillar2 = json.loads(json.dumps(pillar))
        pillar2["autodeploy"]["host"].update(apply_sysctl=True, sysctl=sysctl_pillar)
        ret = apply(env, watch, pillar2)
        assert ret["retcode"] == 0, ret["return"]
        by_id = states(ret["return"])
        assert changed(by_id) == ["autodeploy_host_sysctl_file"]
        run = by_id["autodeploy_host_sysctl_apply"]
        assert run["result"] is True and "unless condition is true" in run["comment"], run
        written = dict(re.findall(r"^([a-z0-9_.-]+) = (.+)$",
                                  Path(h["sysctl_file"]).read_text(), re.M))
        assert written == {"net.core.somaxconn": somaxconn,
                           "net.ipv4.ip_local_port_range": " ".join(ports.split())}
        print("timings:", json.dumps({k: round(v, 2) for k, v in timings.items()}))
    finally:
        watch.close()


def test_bad_pillar_fails_one_state_naming_the_keys(salt_env, tmp_path, events_cli,
                                                    throwaway_user):
    env = start(salt_env, tmp_path)
    watch = JobWatch(events_cli, env, env.root)
    user = throwaway_user()
    pillar = host_pillar(env, user)
    try:
        pillar["autodeploy"]["host"].update(
            packages="libstdc++6",            # not a list
            beacon_interval=0,
            limits={"nofile": 4000000},       # above fs.nr_open below
            sysctl={"net.core.somaxconn": "1; reboot", "fs.nr_open": 1048576},
            base_dir="data",                  # relative
        )
        ret = apply(env, watch, pillar)
        assert ret["retcode"] == 2, ret
        by_id = states(ret["return"])
        assert list(by_id) == ["autodeploy_host_pillar"], by_id
        bad = by_id["autodeploy_host_pillar"]
        assert bad["result"] is False and not bad["changes"]
        for key in ("autodeploy:host:packages", "autodeploy:host:beacon_interval",
                    "autodeploy:host:limits:nofile", "autodeploy:host:sysctl:net.core.somaxconn",
                    "autodeploy:host:base_dir"):
            assert key in bad["name"], (key, bad["name"])
        # nothing was done
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
        assert not Path(pillar["autodeploy"]["host"]["beacons_file"]).exists()
        assert not Path(pillar["autodeploy"]["host"]["limits_file"]).exists()

        # One bad key alone is named alone.
        pillar = host_pillar(env, user)
        pillar["autodeploy"]["host"]["packages"] = {"libstdc++6": "latest"}
        ret = apply(env, watch, pillar)
        assert ret["retcode"] == 2
        bad = states(ret["return"])["autodeploy_host_pillar"]
        assert bad["name"].startswith("autodeploy:host:packages must be a list"), bad["name"]
        assert ";" not in bad["name"]
    finally:
        watch.close()
