"""``autodeploy-events`` (libautodeploy's bus) against a real salt-master.

What is proved here, end to end, on the Salt in ``$SALT_VENV``:

* job events read off ``master_event_pub.ipc`` decode to what Salt sent:
  ``salt/job/<jid>/new`` and ``.../ret/<minion>`` carry the jid the ``salt``
  CLI printed, retcode 0 and ``return: True`` for ``test.ping``; a
  ``state.apply`` return holds the state results, retcode 0, or 2 when a
  state fails; an event matching several ``-m`` globs is printed once;
* an event fired by the library is read by Salt's own
  ``salt.utils.event`` listener with the same data (UTF-8 included);
* a running reader reconnects by itself after the master restarts;
* ``--fanout`` republishes events as two-part ZeroMQ messages [tag,
  payload], in JSON or in the msgpack Salt sent;
* ``ipc_mode: tcp`` masters are read over TCP, and ``-c`` finds the ports
  in the master config;
* the CLI contract: ``--count``/``--timeout`` exit codes, errors that name
  the bad argument (64) or the unreachable socket (1), and the master
  config reader agreeing with ``salt.config.master_config``.

Subscribe race: a reader is connected when it logs "connected", but the
master registers a subscriber a moment later, and events published in
between are lost to it. ``sync`` therefore fires probe events until the
reader has seen one, before any job is started.

One master + minion serves the module (``bus_env``); the master-restart
test runs last of those; the TCP test has its own master. Both are
rooted in a short /tmp dir (see ``short_env``).
"""

import contextlib
import json
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import threading
import time
import uuid

import pytest

from saltenv import SaltEnv, free_ports

MINION = "m1"
CONNECTED = "connected to the master event bus"

# Salt's own listener: prints one line when subscribed, then the first
# event whose tag starts with argv[2], as JSON (or null on timeout).
SALT_LISTENER = r"""
import json, sys
import salt.config, salt.utils.event
conf, tag, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
opts = salt.config.master_config(conf)
bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
print("listening", flush=True)
ret = bus.get_event(full=True, tag=tag, wait=wait)
print(json.dumps(ret), flush=True)
bus.destroy()
"""

# Salt's reading of a master config: the settings the CLI needs.
SALT_CONF = r"""
import json, sys
import salt.config
o = salt.config.master_config(sys.argv[1])
print(json.dumps({k: o[k] for k in ("sock_dir", "ipc_mode",
      "tcp_master_pub_port", "tcp_master_pull_port")}))
"""


# --------------------------------------------------------------- helpers
class Reader:
    """``autodeploy-events`` running in the background; stdout parsed as
    JSON lines, stderr kept, both read by threads as they arrive."""

    def __init__(self, argv):
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        self.events = []
        self.bad_lines = []
        self.err_lines = []
        self.cond = threading.Condition()
        self.threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _pump(self, stream, is_stdout):
        for line in stream:
            with self.cond:
                if not is_stdout:
                    self.err_lines.append(line.rstrip("\n"))
                else:
                    try:
                        self.events.append(json.loads(line))
                    except ValueError:
                        self.bad_lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    @property
    def stderr(self):
        with self.cond:
            return "\n".join(self.err_lines)

    def _wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = pred()
                if found:
                    return found
                left = deadline - time.monotonic()
                ended = self.proc.poll() is not None and not any(
                    t.is_alive() for t in self.threads)
                if left <= 0 or ended:
                    raise AssertionError(
                        f"{what} not seen in {timeout}s (rc={self.proc.poll()}); "
                        f"{len(self.events)} events; stderr:\n"
                        + "\n".join(self.err_lines[-20:]))
                self.cond.wait(min(left, 0.2))

    def wait_stderr(self, text, timeout=20):
        return self._wait(lambda: any(text in l for l in self.err_lines), timeout,
                          f"stderr {text!r}")

    def wait_event(self, tag, timeout=20):
        """The first event with exactly this tag (or a tag matching a regex)."""
        rx = tag if isinstance(tag, re.Pattern) else None

        def find():
            for ev in self.events:
                if (rx.fullmatch(ev["tag"]) if rx else ev["tag"] == tag):
                    return ev
            return None

        return self._wait(find, timeout, f"event {tag!r}")

    def tags(self):
        with self.cond:
            return [ev["tag"] for ev in self.events]

    def stop(self, timeout=15):
        """SIGTERM; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.argv} ignored SIGTERM for {timeout}s")
        for t in self.threads:
            t.join(timeout=5)
        return rc

    def wait_exit(self, timeout=30):
        rc = self.proc.wait(timeout=timeout)
        for t in self.threads:
            t.join(timeout=5)
        return rc


def fire(ad_bin, tag, data, *where, check=True):
    res = subprocess.run(
        [str(ad_bin / "autodeploy-events"), "fire", tag,
         json.dumps(data, ensure_ascii=False), *map(str, where)],
        capture_output=True, encoding="utf-8", timeout=30,
    )
    if check:
        assert res.returncode == 0, res.stderr
    return res


def sync(reader, ad_bin, where, timeout=30, on_seen=None):
    """Fire probe events until the reader has printed one (see module doc).

    ``on_seen(tag)`` may add its own condition (e.g. a fan-out subscriber
    got it too); the probe repeats until it returns true.
    """
    run = uuid.uuid4().hex[:12]
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        tag = f"autodeploy/test/probe/{run}/{n}"
        fire(ad_bin, tag, {"probe": n}, *where)
        try:
            reader.wait_event(tag, timeout=0.5)
            if on_seen is None or on_seen(tag):
                return tag
        except AssertionError:
            if reader.proc.poll() is not None:
                raise
        n += 1
    raise AssertionError(f"no probe seen in {timeout}s; stderr:\n{reader.stderr}")


def run_job(env, *fun_and_args):
    """``salt m1 <fun> <args> --show-jid``: (jid, output as JSON, CliResult)."""
    res = env.run_cli(
        "salt", [MINION, *fun_and_args, "--out=json", "--show-jid", "--timeout=60"],
        timeout=120,
    )
    m = re.search(r"^jid: (\d{20})\n", res.stdout, re.M)
    assert m, res
    return m.group(1), json.loads(res.stdout[m.end():]), res


@contextlib.contextmanager
def short_env(salt_venv, **kwargs):
    """A SaltEnv with a master + minion up, rooted under a short /tmp dir.

    Short on purpose: Unix socket paths are limited to 107 bytes, and
    SaltEnv refuses a root too deep for them (pytest's tmp dirs are).
    """
    root = tempfile.mkdtemp(prefix="adbus-", dir="/tmp")
    env = SaltEnv(root, salt_venv / "bin", **kwargs)
    try:
        env.start_master()
        env.start_minion(MINION)
        env.wait_for_minion(MINION)
        yield env
    finally:
        env.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def bus_env(salt_venv):
    """One master + minion for the module (a test-scoped env costs ~5 s)."""
    with short_env(salt_venv) as env:
        yield env


@pytest.fixture
def readers(ad_bin):
    """Factory: ``readers(*args) -> Reader`` running autodeploy-events;
    any still running at teardown is stopped."""
    started = []

    def start(*args):
        r = Reader([ad_bin / "autodeploy-events", *args])
        started.append(r)
        return r

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()


@pytest.fixture
def job_reader(bus_env, readers, ad_bin):
    """A reader of job events + probes on the shared master, synced."""
    r = readers("-s", bus_env.sock_dir, "-m", "salt/job/*", "-m", "*/new",
                "-m", "autodeploy/test/*")
    r.wait_stderr(CONNECTED)
    sync(r, ad_bin, ["-s", bus_env.sock_dir])
    return r


def salt_major(venv):
    """3006, 3008... from the venv's salt-<version>.dist-info."""
    infos = list((venv / "lib").glob("python*/site-packages/salt-*.dist-info"))
    assert infos, f"no salt dist-info in {venv}"
    return int(infos[0].name.split("-")[1].split(".")[0])


def without_stamp(data):
    return {k: v for k, v in data.items() if k != "_stamp"}


# ------------------------------------------------------------ job events
def test_ping_job_events(bus_env, job_reader):
    jid, out, _ = run_job(bus_env, "test.ping")
    assert out == {MINION: True}

    new = job_reader.wait_event(f"salt/job/{jid}/new")
    assert new["data"]["jid"] == jid
    assert new["data"]["fun"] == "test.ping"
    assert new["data"]["minions"] == [MINION]

    ret = job_reader.wait_event(f"salt/job/{jid}/ret/{MINION}")
    data = ret["data"]
    assert (data["jid"], data["id"], data["fun"]) == (jid, MINION, "test.ping")
    assert data["retcode"] == 0
    assert data["return"] is True
    assert data["success"] is True
    assert isinstance(data["_stamp"], str)

    # ".../new" matches both "salt/job/*" and "*/new": printed once.
    assert job_reader.tags().count(f"salt/job/{jid}/new") == 1
    assert job_reader.stop() == 0
    assert not job_reader.bad_lines


STATE_OK = """\
adbus_hello:
  test.succeed_with_changes:
    - name: hello from autodeploy
adbus_second:
  test.succeed_without_changes: []
"""
STATE_FAIL = """\
adbus_fine:
  test.succeed_without_changes: []
adbus_broken:
  test.fail_without_changes:
    - name: this state fails on purpose
"""


def state_results(ret):
    """{state id: result} from a state.apply return."""
    assert isinstance(ret, dict), ret
    return {v["__id__"]: v["result"] for v in ret.values()}


def test_state_apply_events(bus_env, job_reader):
    bus_env.write_state("adbus_ok.sls", STATE_OK)
    jid, out, res = run_job(bus_env, "state.apply", "adbus_ok")
    assert res.returncode == 0, res

    new = job_reader.wait_event(f"salt/job/{jid}/new")
    assert new["data"]["fun"] == "state.apply"
    assert new["data"]["arg"] == ["adbus_ok"]
    ret = job_reader.wait_event(f"salt/job/{jid}/ret/{MINION}")["data"]
    assert ret["jid"] == jid and ret["fun"] == "state.apply"
    assert ret["retcode"] == 0
    assert state_results(ret["return"]) == {"adbus_hello": True, "adbus_second": True}
    hello = next(v for v in ret["return"].values() if v["__id__"] == "adbus_hello")
    assert hello["name"] == "hello from autodeploy"
    assert hello["changes"]  # succeed_with_changes reports some
    # the ret event carries what the salt CLI printed
    assert ret["return"] == out[MINION]


def test_failing_state_gives_retcode_2(bus_env, job_reader):
    bus_env.write_state("adbus_fail.sls", STATE_FAIL)
    jid, _, res = run_job(bus_env, "state.apply", "adbus_fail")
    assert res.returncode != 0, res

    ret = job_reader.wait_event(f"salt/job/{jid}/ret/{MINION}")["data"]
    assert ret["jid"] == jid
    assert ret["retcode"] == 2
    assert state_results(ret["return"]) == {"adbus_fine": True, "adbus_broken": False}


# ------------------------------------------------------------------ fire
def test_fired_event_reaches_salts_own_listener(bus_env, ad_bin, salt_venv):
    data = {"x": 1, "s": "开服"}
    listener = subprocess.Popen(
        [str(salt_venv / "bin" / "python"), "-c", SALT_LISTENER,
         str(bus_env.master_config_path), "my/tag", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
    )
    try:
        assert listener.stdout.readline().strip() == "listening", listener.stderr.read()
        # Salt's subscriber has the same race as ours: fire until it hears.
        got = []
        t = threading.Thread(target=lambda: got.append(listener.stdout.readline()),
                             daemon=True)
        t.start()
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            res = fire(ad_bin, "my/tag", data, "-c", bus_env.master_config_path)
            assert res.stdout == "" and res.stderr == ""
            t.join(0.5)
        assert got, "Salt's listener heard nothing"
        ev = json.loads(got[0])
        assert ev is not None, "Salt's get_event timed out"
        assert ev["tag"] == "my/tag"
        assert without_stamp(ev["data"]) == data
    finally:
        listener.kill()
        listener.wait()


def test_fire_errors_name_the_problem(ad_bin, tmp_path):
    res = fire(ad_bin, "my/tag", {}, "-s", tmp_path / "nowhere", check=False)
    assert res.returncode == 1
    assert str(tmp_path / "nowhere" / "master_event_pull.ipc") in res.stderr
    assert "No such file" in res.stderr

    cli = str(ad_bin / "autodeploy-events")
    res = subprocess.run([cli, "fire", "my/tag", '{"x":', "-s", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "JSON_OBJECT" in res.stderr, res.stderr
    res = subprocess.run([cli, "fire", "my/tag", "[1]", "-s", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "must be a JSON object" in res.stderr, res.stderr


# ------------------------------------------------------------ CLI contract
@pytest.mark.parametrize(
    "args, named",
    [
        (["--bogus"], "--bogus"),
        (["--count", "zero"], "--count"),
        (["--timeout", "-1"], "--timeout"),
        (["--fanout-format", "xml"], "--fanout-format"),
        (["--tcp", "127.0.0.1"], "--tcp"),
        (["-s", "/a", "--pub", "/b"], "only one of"),
        (["fire"], "TAG"),
        (["fire", "a/b", "--count", "1"], "--count"),
        (["--pull", "/x"], "--pull"),
        (["listen"], "'listen'"),
        (["--count"], "--count"),
    ],
)
def test_bad_arguments_exit_64(ad_bin, args, named):
    res = subprocess.run([str(ad_bin / "autodeploy-events"), *args],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 64, res
    assert named in res.stderr, res.stderr


def test_help(ad_bin):
    res = subprocess.run([str(ad_bin / "autodeploy-events"), "--help"],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 0 and "usage:" in res.stdout and "fire TAG" in res.stdout


def test_count_and_timeout_exit_codes(bus_env, readers, ad_bin):
    where = ["-s", bus_env.sock_dir]
    # --count reached: exactly N lines, exit 0.
    r = readers(*where, "-m", "autodeploy/test/*", "--count", "2", "--timeout", "60")
    r.wait_stderr(CONNECTED)
    deadline = time.monotonic() + 30
    n = 0
    while r.proc.poll() is None and time.monotonic() < deadline:
        fire(ad_bin, f"autodeploy/test/count/{n}", {"n": n}, *where)
        n += 1
        time.sleep(0.2)
    assert r.wait_exit() == 0, r.stderr
    assert len(r.events) == 2
    # --timeout before --count: 2; --timeout alone: 0. Both print nothing.
    quiet = readers(*where, "-m", "nothing/matches/*", "--count", "5", "--timeout", "1")
    alone = readers(*where, "-m", "nothing/matches/*", "--timeout", "1", "--stats")
    assert quiet.wait_exit() == 2 and "timed out" in quiet.stderr
    assert alone.wait_exit() == 0
    assert quiet.events == [] and alone.events == []
    stats = json.loads(alone.err_lines[-1])
    assert stats["matched"] == 0 and stats["reconnects"] == 0


def test_master_config_read_as_salt_reads_it(ad_bin, salt_venv, tmp_path):
    conf = tmp_path / "etc"
    (conf / "master.d").mkdir(parents=True)
    (conf / "extra").mkdir()
    (conf / "master").write_text(textwrap.dedent(f"""\
        # main file: overridden below
        root_dir: {tmp_path}
        cachedir: {tmp_path}/cache
        sock_dir: '{tmp_path}/sock/main'   # comment
        tcp_master_pub_port: 4000
        file_roots:
          base:
            - /srv/salt
        include:
          - extra/*.conf
        """))
    (conf / "master.d" / "10-mode.conf").write_text('ipc_mode: "tcp"\ntcp_master_pull_port: 4001\n')
    (conf / "master.d" / "20-port.conf").write_text("tcp_master_pub_port: 4002\n")
    (conf / "extra" / "a.conf").write_text(f"sock_dir: {tmp_path}/sock/extra\ninclude: [../n.yml]\n")
    (conf / "n.yml").write_text("tcp_master_pull_port: 4003\n")
    ours = subprocess.run([str(ad_bin / "autodeploy-events"), "--show-config", "-c", str(conf)],
                          capture_output=True, text=True, timeout=10)
    assert ours.returncode == 0, ours.stderr
    ours = json.loads(ours.stdout)
    salts = subprocess.run([str(salt_venv / "bin" / "python"), "-c", SALT_CONF,
                            str(conf / "master")], capture_output=True, text=True, timeout=60)
    assert salts.returncode == 0, salts.stderr
    salts = json.loads(salts.stdout)
    assert {k: ours[k] for k in salts} == salts
    assert salts["sock_dir"] == f"{tmp_path}/sock/extra" and salts["tcp_master_pull_port"] == 4003
    assert ours["files"][0] == str(conf / "master") and len(ours["files"]) == 5

    (conf / "master.d" / "30-bad.conf").write_text("ipc_mode: tcp\ntcp_master_pub_port: 99999\n")
    bad = subprocess.run([str(ad_bin / "autodeploy-events"), "--show-config", "-c", str(conf)],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 1
    assert "30-bad.conf:2: tcp_master_pub_port" in bad.stderr, bad.stderr


# ---------------------------------------------------------------- fan-out
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_fanout(bus_env, readers, ad_bin, fmt):
    zmq = pytest.importorskip("zmq")
    msgpack = pytest.importorskip("msgpack")
    port = free_ports(1)[0]
    r = readers("-s", bus_env.sock_dir, "-m", "salt/job/*", "-m", "autodeploy/test/*",
                "--fanout", f"tcp://127.0.0.1:{port}", "--fanout-format", fmt)
    r.wait_stderr(f"publishing events on tcp://127.0.0.1:{port}")
    r.wait_stderr(CONNECTED)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"salt/job/")
    sub.setsockopt(zmq.SUBSCRIBE, b"autodeploy/test/probe/")
    sub.connect(f"tcp://127.0.0.1:{port}")
    got = []

    def decode(payload):
        if fmt == "json":
            return json.loads(payload)
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)

    def drain(wait_ms):
        while sub.poll(wait_ms):
            parts = sub.recv_multipart()
            assert len(parts) == 2, parts
            got.append((parts[0].decode(), decode(parts[1])))
            wait_ms = 0

    def sub_saw(tag):  # the SUB joins late too: probe until it hears
        drain(300)
        return any(t == tag for t, _ in got)

    try:
        sync(r, ad_bin, ["-s", bus_env.sock_dir], on_seen=sub_saw)
        jid, _, _ = run_job(bus_env, "test.ping")
        want = {f"salt/job/{jid}/new", f"salt/job/{jid}/ret/{MINION}"}
        deadline = time.monotonic() + 20
        while not want <= {t for t, _ in got} and time.monotonic() < deadline:
            drain(200)
        fanned = {t: d for t, d in got if t in want}
        assert set(fanned) == want, [t for t, _ in got]
        assert not [t for t, _ in got if not t.startswith(("salt/job/", "autodeploy/test/probe/"))]
        ret = fanned[f"salt/job/{jid}/ret/{MINION}"]
        assert (ret["jid"], ret["retcode"], ret["return"]) == (jid, 0, True)
        # the same data the reader printed from the bus
        for tag, data in fanned.items():
            assert r.wait_event(tag)["data"] == data
    finally:
        sub.close()
        ctx.term()
    assert r.stop() == 0


# ------------------------------------------------------------- reconnect
def test_reader_reconnects_after_master_restart(bus_env, readers, ad_bin, salt_venv):
    where = ["-s", bus_env.sock_dir]
    r = readers(*where, "-m", "autodeploy/test/*", "--count", "100000",
                "--timeout", "150", "--stats")
    r.wait_stderr(CONNECTED)
    sync(r, ad_bin, where)
    before = len(r.events)

    bus_env.restart_master()
    r.wait_stderr("reconnected to the master event bus", timeout=30)
    tag = sync(r, ad_bin, where)
    assert r.events.index(r.wait_event(tag)) >= before

    assert r.proc.poll() is None
    assert r.stop() == 0  # SIGTERM: clean stop, exit 0
    stats = json.loads(r.err_lines[-1])
    assert stats["reconnects"] >= 1
    assert stats["decode_errors"] == 0
    # 3006 prefixes each frame with its length, 3008 does not (FRAMING.md)
    assert stats["framing"] == ("length" if salt_major(salt_venv) < 3007 else "raw")


# ------------------------------------------------------------ ipc_mode tcp
def test_ipc_mode_tcp(salt_venv, readers, ad_bin):
    with short_env(salt_venv, master_opts={"ipc_mode": "tcp"}) as env:
        check_tcp_master(env, readers, ad_bin)


def check_tcp_master(env, readers, ad_bin):
    pub = env.master_opts["tcp_master_pub_port"]
    pull = env.master_opts["tcp_master_pull_port"]

    shown = subprocess.run([str(ad_bin / "autodeploy-events"), "--show-config", "-c",
                            str(env.master_config_path)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    shown = json.loads(shown.stdout)
    assert (shown["ipc_mode"], shown["tcp_master_pub_port"],
            shown["tcp_master_pull_port"]) == ("tcp", pub, pull)

    r = readers("--tcp", f"127.0.0.1:{pub}", "-m", "salt/job/*", "-m", "autodeploy/test/*")
    r.wait_stderr(f"{CONNECTED} at 127.0.0.1:{pub}")
    sync(r, ad_bin, ["-c", env.master_config_path])  # fires over TCP too
    jid, out, _ = run_job(env, "test.ping")
    assert out == {MINION: True}
    ret = r.wait_event(f"salt/job/{jid}/ret/{MINION}")["data"]
    assert (ret["jid"], ret["retcode"], ret["return"]) == (jid, 0, True)
    assert r.stop() == 0
