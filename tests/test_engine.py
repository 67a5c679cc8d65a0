"""The ``autodeploy`` Salt engine against a real salt-master and minion.

What is proved here, end to end:

* the engine named in the master config's ``engines:`` list is found
  through the ``salt.loader`` entry point of the installed
  ``saltext.autodeploy`` (no ``engines_dirs``), loads libautodeploy and
  starts; the C library's "engine running" line reaches the master log
  through Python logging, with the master's own sock_dir;
* a minion started afterwards makes a C handler (on a worker thread) log
  "minion <id> started": the start event went master bus -> C reader ->
  dispatch -> handler with the right minion id;
* SIGTERM to the master stops the engine in order (C "engine stopped", then
  the shim's own line) and the engine process exits with the master; if the
  master dies without a word, the engine notices and stops too;
* ``__virtual__`` says why when the library cannot be loaded, naming the
  path, and the master log says so when the engine is configured;
* bad engine options are logged as errors naming the key.
"""

import json
import os
import re
import signal
import subprocess
import time


ENGINE_LINE = re.compile(
    r"\[saltext\.autodeploy\.c\.engine\s*:\s*\d+\s*\]\[INFO\s*\]\[(?P<pid>\d+)\] "
    r"autodeploy [\d.]+ engine running \(sock_dir (?P<sock_dir>[^,]+), "
    r"ipc_mode (?P<ipc_mode>\w+), (?P<workers>\d+) workers\)"
)


def wait_for_log(path, pattern, timeout=30.0, what=None):
    """Poll the log at ``path`` until the regex ``pattern`` matches; return the match."""
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        m = rx.search(text)
        if m:
            return m
        if time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-40:])
            raise AssertionError(
                f"{what or rx.pattern!r} not in {path} after {timeout}s; log tail:\n{tail}"
            )
        time.sleep(0.1)


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[", re.M)


def our_problems(text):
    """Log records at ERROR/CRITICAL, or with a traceback, that involve autodeploy.

    Salt's own shutdown noise is not this test's business.
    """
    starts = [m.start() for m in LOG_RECORD.finditer(text)] + [len(text)]
    records = [text[a:b] for a, b in zip(starts, starts[1:])]
    return [
        r for r in records
        if "autodeploy" in r
        and (re.search(r"\]\[(ERROR|CRITICAL)\s*\]", r) or "Traceback" in r)
    ]


def proc_state(pid):
    """The /proc state letter of ``pid`` ('R', 'S', 'Z'...), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def proc_ppid(pid):
    with open(f"/proc/{pid}/stat", "rb") as fh:
        stat = fh.read().decode()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def alive(pid):
    return proc_state(pid) not in (None, "Z")


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_engine_runs_sees_minion_start_and_stops_with_master(salt_env):
    env = salt_env(
        {"engines": [{"autodeploy": {"workers": 3, "log_events": "salt/minion/*/start"}}]}
    )
    # Found through the entry point only: nothing points Salt at salt-ext/.
    assert not any(k.endswith("_dirs") for k in env.master_opts), env.master_opts.keys()
    assert "module_dirs" not in env.master_opts
    env.start_master()
    log = env.master_log

    wait_for_log(log, r"Starting Engine\(salt\.loaded\.ext\.engines\.autodeploy\)")
    running = wait_for_log(log, ENGINE_LINE, what="C 'engine running' line")
    # The master's sock_dir came from __opts__, workers from the engine config.
    assert running["sock_dir"] == str(env.sock_dir)
    assert running["ipc_mode"] == "ipc"
    assert running["workers"] == "3"
    starting = wait_for_log(
        log,
        r"autodeploy engine starting \(pid (\d+), libautodeploy [\d.]+ from (\S+), module (\S+)\)",
    )
    assert starting[2] == os.environ["AD_LIB"]
    assert starting[3].endswith(os.path.join("saltext", "autodeploy", "engines", "autodeploy.py"))
    engine_pid = int(running["pid"])
    assert engine_pid == int(starting[1])
    assert engine_pid != env.master_pid and alive(engine_pid)
    assert proc_ppid(engine_pid) == env.master_pid  # a child of the master's process manager

    # A minion started now: its start event reaches the C handler.
    env.start_minion("m1", grains={"role": "web"})
    wait_for_log(
        log,
        r"\[saltext\.autodeploy\.c\.engine\s*:\s*\d+\s*\]\[INFO\s*\]\[%d\] "
        r"minion m1 started \(salt/minion/m1/start\)" % engine_pid,
        timeout=45,
        what="C 'minion m1 started' line",
    )
    # log_events, from the engine config, mirrors the tag too.
    wait_for_log(
        log, r"\[saltext\.autodeploy\.c\.event\s*:\s*\d+\s*\]\[INFO\s*\]\[\d+\] salt/minion/m1/start"
    )

    # SIGTERM to the master alone: it must take the engine down with it.
    os.kill(env.master_pid, signal.SIGTERM)
    wait_for_log(
        log,
        r"\]\[%d\] autodeploy engine stopped\n" % engine_pid,
        timeout=15,
        what="C 'engine stopped' line",
    )
    wait_for_log(log, r"\]\[%d\] autodeploy engine stopped \(SIGTERM\)" % engine_pid, timeout=5)
    assert wait_gone(engine_pid, 10), f"engine process {engine_pid} still {proc_state(engine_pid)}"
    env.stop_master()
    problems = our_problems(log.read_text(errors="replace"))
    assert not problems, "\n".join(problems)


def test_engine_stops_when_master_dies(salt_env):
    env = salt_env({"engines": [{"autodeploy": {"workers": 1}}]})
    env.start_master()
    log = env.master_log
    engine_pid = int(wait_for_log(log, ENGINE_LINE)["pid"])
    # No SIGTERM to forward: the master is just gone.
    os.kill(env.master_pid, signal.SIGKILL)
    wait_for_log(
        log,
        r"\]\[%d\] autodeploy engine: master process %d went away, stopping"
        % (engine_pid, env.master_pid),
        timeout=10,
    )
    wait_for_log(log, r"\]\[%d\] autodeploy engine stopped \(master process" % engine_pid, timeout=10)
    assert wait_gone(engine_pid, 10), f"engine process {engine_pid} still {proc_state(engine_pid)}"


def _virtual_in_subprocess(salt_venv, ad_lib_value):
    env = dict(os.environ)
    env["AD_LIB"] = str(ad_lib_value)
    code = (
        "import json\n"
        "from saltext.autodeploy.engines import autodeploy\n"
        "print(json.dumps(autodeploy.__virtual__()))\n"
    )
    out = subprocess.run(
        [str(salt_venv / "bin" / "python"), "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_virtual_names_the_missing_library(salt_venv, ad_lib, tmp_path):
    missing = tmp_path / "nowhere" / "libautodeploy.so.0"
    ret = _virtual_in_subprocess(salt_venv, missing)
    assert isinstance(ret, list) and len(ret) == 2, ret
    assert ret[0] is False
    assert str(missing) in ret[1]
    assert "No such file" in ret[1]
    assert _virtual_in_subprocess(salt_venv, ad_lib) == "autodeploy"


def test_master_logs_why_the_engine_is_missing(salt_env, monkeypatch, tmp_path):
    # Salt itself skips an engine whose __virtual__ fails below INFO level.
    env = salt_env({"engines": ["autodeploy"]})
    missing = tmp_path / "gone" / "libautodeploy.so.0"
    monkeypatch.setenv("AD_LIB", str(missing))  # the master inherits it
    env.start_master()
    log = env.master_log
    wait_for_log(
        log,
        r"\[ERROR\s*\]\[%d\] autodeploy engine not started: .*%s: .*No such file"
        % (env.master_pid, re.escape(str(missing))),
    )
    assert env.master_running()
    assert not ENGINE_LINE.search(log.read_text(errors="replace"))


def test_bad_engine_options_are_logged_by_key(salt_env):
    # Two instances of the one engine module (Salt's ``engine_module``), one
    # bad value and one unknown key, on a single master.
    env = salt_env(
        {
            "engines": [
                {"ad_range": {"engine_module": "autodeploy", "workers": -1}},
                {"ad_typo": {"engine_module": "autodeploy", "wrokers": 2}},
            ]
        }
    )
    env.start_master()
    log = env.master_log
    wait_for_log(
        log,
        r"\[ERROR\s*\]\[\d+\] autodeploy engine not started: bad configuration: "
        r"ad_engine_new: workers: -1 is out of range 0\.\.64",
    )
    wait_for_log(
        log,
        r"\[ERROR\s*\]\[\d+\] autodeploy engine not started: bad configuration: "
        r"ad_engine_new: unknown key \"wrokers\"",
    )
    assert env.master_running()  # a broken engine does not take the master down
    assert not ENGINE_LINE.search(log.read_text(errors="replace"))


def test_a_killed_process_leaves_nothing_in_dev_shm(ad_lib, salt_venv):
    """Debian's libmongoc keeps counters in /dev/shm/mongoc-<pid>, removed
    only on a clean exit: every engine or salt-run that was SIGKILLed left
    one behind, and a later process with that pid printed "Falling back to
    malloc for counters" on stderr. Loading libautodeploy unlinks the name
    (store.c): a process killed while it holds the library leaves nothing,
    and its store still works (the counters stay mapped)."""
    code = ("import ctypes, os, sys, time\n"
            f"lib = ctypes.CDLL({str(ad_lib)!r})\n"
            "print(os.getpid(), flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([str(salt_venv / "bin" / "python"), "-c", code],
                            stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        # libmongoc made the file at load (its own constructor ran first) ...
        shm = f"/dev/shm/mongoc-{pid}"
        assert os.path.isdir("/dev/shm")
    finally:
        proc.kill()
        proc.wait()
    # ... and our constructor took the name away: nothing left after SIGKILL
    assert not os.path.exists(shm), f"{shm} left by a SIGKILLed process"
