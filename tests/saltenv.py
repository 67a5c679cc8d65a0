"""Run a real salt-master and N real salt-minions on loopback, under one dir.

Stdlib only (the Salt venv is only used through its ``bin/`` executables),
so this module can be imported from any Python >= 3.8.

Example::

    from saltenv import SaltEnv

    with SaltEnv(tmp_path, ".deps/venv3008/bin",
                 master_opts={"presence_events": True}) as env:
        env.start_master()
        env.start_minion("m1", grains={"role": "web"})
        env.wait_for_minion("m1")
        assert env.salt("m1", "test.ping") == {"m1": True}
        env.write_state("hello.sls", "hi:\\n  test.succeed_with_changes\\n")
        ret = env.salt("m1", "state.apply", "hello")
        print(env.sock_dir, env.master_config_path, env.master_log)

Layout under ``root`` (all created on demand)::

    master/conf/master          master config (written as JSON, which YAML reads)
    master/{pki,cache,run}/     pki_dir, cachedir, pidfile
    master/logs/master.log      Salt's log file; master.console.log = stdout+stderr
    srv/salt, srv/pillar        default file_roots / pillar_roots (base env)
    minions/<id>/conf/minion    one config dir per minion (``salt-call -c`` it)
    minions/<id>/{pki,cache,run,logs}/
    sock/master, sock/<id>      sock_dirs; moved under a short /tmp dir when
                                ``root`` is so deep that a socket path would
                                pass the 107-byte AF_UNIX limit

Daemons run in the foreground (never ``-d``), each as the leader of its own
process group, so ``stop_*``/``cleanup`` can SIGTERM then SIGKILL the whole
group plus any descendant that left it.  ``cleanup`` also runs at interpreter
exit for any SaltEnv not cleaned up.

Speed: master start -> minion answering ``test.ping`` takes a few seconds
(see ``FAST_MINION_OPTS``).  The defaults that make it slow are:

* ``acceptance_wait_time`` (10 s): the minion sleeps this long between auth
  attempts when its key is not (yet) accepted or the master is not up.
* ``random_reauth_delay`` (10 s): random sleep before re-auth after a master
  restart / key rotation.
* ``recon_default``/``recon_max``/``recon_randomize`` (1 s / 10 s / random):
  zeromq reconnect back-off, which matters after ``restart_master``.
* ``auth_timeout`` (5 s) / ``auth_tries``: how long one sign-in waits.
* ``enable_gpu_grains`` (True): runs ``lspci`` while loading grains.
* ``return_retry_timer``/``_max`` (5/10 s): delay before a job return is
  retried when the master did not answer.
* ``worker_threads`` (5): fewer MWorkers start faster on a small box.
* master ``loop_interval`` (60 s) only paces maintenance (job cache
  cleanup, key rotation); it does not affect startup, so it is left alone.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

__all__ = ["SaltEnv", "SaltEnvError", "CliResult", "free_ports"]

# Minion options that make sign-in and reconnect fast on loopback.
FAST_MINION_OPTS = {
    "acceptance_wait_time": 1,
    "acceptance_wait_time_max": 1,
    "random_reauth_delay": 0,
    "recon_default": 100,
    "recon_max": 1000,
    "recon_randomize": False,
    "auth_timeout": 5,
    "auth_tries": 10,
    "master_tries": -1,
    "enable_gpu_grains": False,
    "enable_fqdns_grains": False,
    "return_retry_timer": 1,
    "return_retry_timer_max": 2,
    "random_startup_delay": 0,
    "master_alive_interval": 0,
    "ping_interval": 0,
    "startup_states": "",
}

FAST_MASTER_OPTS = {
    "worker_threads": 2,
    "enable_gpu_grains": False,
    "enable_fqdns_grains": False,
    "con_cache": False,
}

UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the NUL

_LIVE = weakref.WeakSet()


@atexit.register
def _cleanup_all():
    for env in list(_LIVE):
        try:
            env.cleanup()
        except Exception:  # pragma: no cover - best effort at exit
            pass


class SaltEnvError(RuntimeError):
    pass


def free_ports(n, host="127.0.0.1"):
    """Return ``n`` distinct TCP ports that were free on ``host`` just now."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            port = s.getsockname()[1]
            socks.append(s)
            if port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def _deep_merge(dst, src):
    for key, val in src.items():
        if isinstance(val, dict) and isinstance(dst.get(key), dict):
            _deep_merge(dst[key], val)
        else:
            dst[key] = val
    return dst


def _write_config(path, opts):
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is a subset of the YAML Salt reads; no PyYAML needed here.
    path.write_text(json.dumps(opts, indent=2, sort_keys=True, default=str) + "\n")


def _proc_table():
    """{pid: (ppid, pgid)} for every live process, from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        # rest[0]=state rest[1]=ppid rest[2]=pgrp
        if rest and rest[0] == "Z":
            continue  # zombies are harmless and unkillable
        try:
            table[int(name)] = (int(rest[1]), int(rest[2]))
        except (IndexError, ValueError):
            continue
    return table


def _tree_pids(root_pid, pgid=None):
    """PIDs of root_pid, all its descendants, and all members of pgid."""
    table = _proc_table()
    pids = set()
    if pgid is not None:
        pids.update(p for p, (_, g) in table.items() if g == pgid)
    if root_pid in table:
        pids.add(root_pid)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in table.items():
            if ppid in pids and pid not in pids:
                pids.add(pid)
                changed = True
    pids.discard(os.getpid())
    return pids


def _kill_tree(proc, term_timeout=10.0):
    """SIGTERM the process group and every descendant, wait, then SIGKILL.

    Daemons are started with ``start_new_session=True`` so pgid == pid; a
    descendant that moved to its own session is still found through the
    parent links snapshotted before the first signal.  Reaps ``proc``.
    """
    if proc is None:
        return
    pgid = proc.pid
    known = _tree_pids(proc.pid, pgid)

    def alive():
        table = _proc_table()
        now = {p for p in known if p in table}
        now |= {p for p, (_, g) in table.items() if g == pgid}
        now.discard(os.getpid())
        return now

    def signal_all(sig):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in alive():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + term_timeout
    while time.monotonic() < deadline:
        proc.poll()
        known |= _tree_pids(proc.pid, pgid) if proc.returncode is None else set()
        if proc.returncode is not None and not alive():
            break
        time.sleep(0.1)
    for _ in range(100):
        proc.poll()
        if proc.returncode is not None and not alive():
            break
        signal_all(signal.SIGKILL)
        time.sleep(0.1)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def _json_docs(text):
    """All JSON documents in ``text`` (concatenated, whitespace-separated).

    Returns [] if anything in ``text`` is not JSON (e.g. a plain-text error).
    """
    dec = json.JSONDecoder()
    docs, pos, text = [], 0, text.strip()
    while pos < len(text):
        try:
            obj, end = dec.raw_decode(text, pos)
        except ValueError:
            return []
        docs.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs


class CliResult:
    """Result of one CLI run: argv, returncode, stdout, stderr, json (or None)."""

    def __init__(self, argv, returncode, stdout, stderr):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.docs = _json_docs(stdout)
        self.json = None
        if len(self.docs) == 1:
            self.json = self.docs[0]
        elif self.docs and all(isinstance(d, dict) for d in self.docs):
            # ``salt --out=json`` (no --static) prints one object per minion
            self.json = {}
            for d in self.docs:
                self.json.update(d)

    def __repr__(self):
        return (
            f"CliResult(rc={self.returncode}, argv={self.argv!r}, "
            f"stdout={self.stdout[:300]!r}, stderr={self.stderr[-300:]!r})"
        )


class _Daemon:
    def __init__(self, name, proc, console_log):
        self.name = name
        self.proc = proc
        self.console_log = console_log


class SaltEnv:
    """One salt-master plus minions under ``root``; see module docstring.

    :param root: directory to hold everything (created if missing).
    :param venv_bin: the ``bin`` dir of a venv with Salt (3006 or 3008).
    :param master_opts: extra master config, deep-merged last (``engines``,
        ``reactor``, ``presence_events``, ``ipc_mode``, ``file_roots``...).
    :param log_level: log level for daemon log files and console.
    :param minion_defaults: extra config merged into every minion config.
    """

    def __init__(
        self,
        root,
        venv_bin,
        master_opts=None,
        log_level="info",
        minion_defaults=None,
        host="127.0.0.1",
    ):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        vb = Path(venv_bin).resolve()
        if not (vb / "salt-master").exists() and (vb / "bin" / "salt-master").exists():
            vb = vb / "bin"  # accept the venv dir itself too
        if not (vb / "salt-master").exists():
            raise SaltEnvError(f"no salt-master in {vb}")
        self.venv_bin = vb
        self.host = host
        self.log_level = log_level
        self.minion_defaults = dict(minion_defaults or {})
        self._extra_master_opts = dict(master_opts or {})
        self._short_tmp = None
        self._master = None
        self._minions = {}  # id -> _Daemon
        self._minion_cfg = {}  # id -> dict
        self.startup_times = {}

        (ports) = free_ports(7, host)
        self.ports = {
            "publish_port": ports[0],
            "ret_port": ports[1],
            "tcp_master_pub_port": ports[2],
            "tcp_master_pull_port": ports[3],
            "tcp_master_publish_pull": ports[4],
            "tcp_master_workers": ports[5],
            "cluster_pool_port": ports[6],
        }
        self.srv_dir = self.root / "srv"
        self.master_dir = self.root / "master"
        self.master_conf_dir = self.master_dir / "conf"
        self._sock_base = self._pick_sock_base()
        self.master_opts = self._build_master_opts()
        for d in self.master_opts["file_roots"].get("base", []):
            Path(d).mkdir(parents=True, exist_ok=True)
        for d in self.master_opts["pillar_roots"].get("base", []):
            Path(d).mkdir(parents=True, exist_ok=True)
        _write_config(self.master_config_path, self.master_opts)
        _LIVE.add(self)

    # ------------------------------------------------------------------ paths
    def _pick_sock_base(self):
        base = self.root / "sock"
        # longest socket name: minion_event_<10 hex>_pull.ipc (33 chars) under
        # sock/<minion id>; allow ids up to 40 chars.
        if len(str(base)) + 1 + 40 + 1 + 33 > UNIX_PATH_MAX:
            # Salt prefixes every path outside root_dir with root_dir, so a
            # short sock dir elsewhere would not be used: the root itself
            # must be short (tests/conftest.py uses a short /tmp root).
            raise ValueError(
                f"SaltEnv root {self.root} is too deep for Unix socket paths "
                f"({UNIX_PATH_MAX} bytes); use a shorter root such as /tmp/x"
            )
        return base

    @property
    def master_config_path(self):
        return self.master_conf_dir / "master"

    @property
    def sock_dir(self):
        return Path(self.master_opts["sock_dir"])

    @property
    def master_log(self):
        return Path(self.master_opts["log_file"])

    @property
    def master_console_log(self):
        return self.master_dir / "logs" / "master.console.log"

    @property
    def file_roots(self):
        return Path(self.master_opts["file_roots"]["base"][0])

    @property
    def pillar_roots(self):
        return Path(self.master_opts["pillar_roots"]["base"][0])

    @property
    def event_pub_address(self):
        """Unix path of master_event_pub.ipc, or (host, port) if ipc_mode tcp."""
        if self.master_opts.get("ipc_mode") == "tcp":
            return ("127.0.0.1", int(self.master_opts["tcp_master_pub_port"]))
        return str(self.sock_dir / "master_event_pub.ipc")

    @property
    def event_pull_address(self):
        if self.master_opts.get("ipc_mode") == "tcp":
            return ("127.0.0.1", int(self.master_opts["tcp_master_pull_port"]))
        return str(self.sock_dir / "master_event_pull.ipc")

    def minion_conf_dir(self, minion_id):
        return self.root / "minions" / minion_id / "conf"

    def minion_config_path(self, minion_id):
        return self.minion_conf_dir(minion_id) / "minion"

    def minion_log(self, minion_id):
        return self.root / "minions" / minion_id / "logs" / "minion.log"

    def minion_console_log(self, minion_id):
        return self.root / "minions" / minion_id / "logs" / "minion.console.log"

    @property
    def minions(self):
        return sorted(self._minions)

    @property
    def master_pid(self):
        return self._master.proc.pid if self._master else None

    def minion_pid(self, minion_id):
        d = self._minions.get(minion_id)
        return d.proc.pid if d else None

    # ----------------------------------------------------------------- config
    def _build_master_opts(self):
        m = self.master_dir
        opts = {
            "id": "saltenv-master",
            "root_dir": str(self.root),
            "conf_file": str(self.master_config_path),
            "user": "root",
            "interface": self.host,
            "ipc_mode": "ipc",
            "pki_dir": str(m / "pki"),
            "cachedir": str(m / "cache"),
            "sock_dir": str(self._sock_base / "master"),
            "pidfile": str(m / "run" / "salt-master.pid"),
            "log_file": str(m / "logs" / "master.log"),
            "key_logfile": str(m / "logs" / "key.log"),
            "log_level": self.log_level,
            "log_level_logfile": self.log_level,
            "file_roots": {"base": [str(self.srv_dir / "salt")]},
            "pillar_roots": {"base": [str(self.srv_dir / "pillar")]},
            "auto_accept": True,
            "open_mode": False,
            "presence_events": False,
            "keep_jobs_seconds": 3600,
        }
        opts.update(self.ports)
        opts.update(FAST_MASTER_OPTS)
        _deep_merge(opts, json.loads(json.dumps(self._extra_master_opts, default=str)))
        return opts

    def update_master_opts(self, extra):
        """Merge ``extra`` into the master config file (takes effect on restart)."""
        self._extra_master_opts = _deep_merge(self._extra_master_opts, dict(extra))
        self.master_opts = self._build_master_opts()
        _write_config(self.master_config_path, self.master_opts)

    def _build_minion_opts(self, minion_id, grains=None, extra=None):
        d = self.root / "minions" / minion_id
        ports = free_ports(2, self.host)
        opts = {
            "id": minion_id,
            "root_dir": str(self.root),
            "conf_file": str(self.minion_config_path(minion_id)),
            "user": "root",
            "master": self.host,
            "master_port": self.ports["ret_port"],
            "publish_port": self.ports["publish_port"],
            "tcp_pub_port": ports[0],
            "tcp_pull_port": ports[1],
            "ipc_mode": self.master_opts.get("ipc_mode", "ipc"),
            "transport": self.master_opts.get("transport", "zeromq"),
            "pki_dir": str(d / "pki"),
            "cachedir": str(d / "cache"),
            "sock_dir": str(self._sock_base / minion_id),
            "pidfile": str(d / "run" / "salt-minion.pid"),
            "log_file": str(d / "logs" / "minion.log"),
            "log_level": self.log_level,
            "log_level_logfile": self.log_level,
            "file_client": "remote",
        }
        opts.update(FAST_MINION_OPTS)
        _deep_merge(opts, json.loads(json.dumps(self.minion_defaults, default=str)))
        if grains:
            opts["grains"] = dict(grains)
        if extra:
            _deep_merge(opts, json.loads(json.dumps(extra, default=str)))
        opts["id"] = minion_id
        return opts

    # --------------------------------------------------------------- daemons
    def _spawn(self, name, argv, console_log, extra_env=None):
        console_log.parent.mkdir(parents=True, exist_ok=True)
        out = open(console_log, "ab")
        env = dict(os.environ)
        env.update(extra_env or {})
        env["PATH"] = str(self.venv_bin) + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONPATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.root),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            out.close()
        return _Daemon(name, proc, console_log)

    def _daemon_argv(self, prog, conf_dir, log_file):
        return [
            str(self.venv_bin / prog),
            "-c",
            str(conf_dir),
            "-l",
            self.log_level,
            "--log-file",
            str(log_file),
            "--log-file-level",
            self.log_level,
        ]

    def _tail(self, path, n=40):
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    @staticmethod
    def _port_open(host, port):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _event_bus_ready(self):
        addr = self.event_pub_address
        try:
            if isinstance(addr, tuple):
                s = socket.create_connection(addr, timeout=0.5)
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(0.5)
                s.connect(addr)
            s.close()
            return True
        except OSError:
            return False

    def start_master(self, timeout=60, env=None):
        """Start salt-master; return once its ports and event bus accept connections.

        :param env: more environment variables for the master's processes
            (the engine's too), e.g. libfaketime's ``LD_PRELOAD``.
        """
        if self._master and self._master.proc.poll() is None:
            raise SaltEnvError("master already running")
        for key in ("pki_dir", "cachedir", "sock_dir"):
            Path(self.master_opts[key]).mkdir(parents=True, exist_ok=True)
        Path(self.master_opts["pidfile"]).parent.mkdir(parents=True, exist_ok=True)
        self.master_log.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.unlink(self.master_opts["pidfile"])
        except FileNotFoundError:
            pass
        t0 = time.monotonic()
        self._master = self._spawn(
            "master",
            self._daemon_argv("salt-master", self.master_conf_dir, self.master_log),
            self.master_console_log,
            env,
        )
        deadline = t0 + timeout
        while True:
            if self._master.proc.poll() is not None:
                raise SaltEnvError(
                    f"salt-master exited rc={self._master.proc.returncode}\n"
                    + self._tail(self.master_console_log)
                    + "\n--- log ---\n"
                    + self._tail(self.master_log)
                )
            if (
                self._event_bus_ready()
                and self._port_open(self.host, self.ports["ret_port"])
                and self._port_open(self.host, self.ports["publish_port"])
            ):
                break
            if time.monotonic() > deadline:
                raise SaltEnvError(
                    "salt-master not ready in time\n" + self._tail(self.master_log)
                )
            time.sleep(0.1)
        self.startup_times["master"] = time.monotonic() - t0
        return self._master.proc.pid

    def stop_master(self, timeout=10):
        if self._master is not None:
            _kill_tree(self._master.proc, timeout)
            self._master = None
        try:
            os.unlink(self.master_opts["pidfile"])
        except FileNotFoundError:
            pass

    def restart_master(self, timeout=60):
        self.stop_master()
        return self.start_master(timeout=timeout)

    def master_running(self):
        return self._master is not None and self._master.proc.poll() is None

    def start_minion(self, minion_id, grains=None, extra=None, wait=False, timeout=60,
                     netns=None):
        """Write the minion config and start salt-minion (optionally wait for ping).

        ``netns``: run it inside that network namespace (tests/netns.py), so it
        connects from its own address; kept for restarts.
        """
        if netns is not None:
            self._minion_netns = getattr(self, "_minion_netns", {})
            self._minion_netns[minion_id] = netns
        if minion_id in self._minions and self._minions[minion_id].proc.poll() is None:
            raise SaltEnvError(f"minion {minion_id} already running")
        if minion_id in self._minion_cfg and grains is None and extra is None:
            opts = self._minion_cfg[minion_id]  # restart with the same config
        else:
            opts = self._build_minion_opts(minion_id, grains, extra)
        self._minion_cfg[minion_id] = opts
        for key in ("pki_dir", "cachedir", "sock_dir"):
            Path(opts[key]).mkdir(parents=True, exist_ok=True)
        Path(opts["pidfile"]).parent.mkdir(parents=True, exist_ok=True)
        Path(opts["log_file"]).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.unlink(opts["pidfile"])
        except FileNotFoundError:
            pass
        _write_config(self.minion_config_path(minion_id), opts)
        self._minion_t0 = getattr(self, "_minion_t0", {})
        self._minion_t0[minion_id] = time.monotonic()
        argv = self._daemon_argv(
            "salt-minion", self.minion_conf_dir(minion_id), self.minion_log(minion_id)
        )
        ns = getattr(self, "_minion_netns", {}).get(minion_id)
        if ns:
            argv = ["ip", "netns", "exec", ns] + argv
        self._minions[minion_id] = self._spawn(
            f"minion:{minion_id}",
            argv,
            self.minion_console_log(minion_id),
        )
        if wait:
            self.wait_for_minion(minion_id, timeout=timeout)
        return self._minions[minion_id].proc.pid

    def stop_minion(self, minion_id, timeout=3):
        """SIGTERM the minion's group; SIGKILL after ``timeout`` s.

        salt-minion often takes ~5 s to act on SIGTERM (its main loop is
        blocked in a poll), hence the short default: tests rarely need a
        graceful minion exit; pass a larger timeout when they do.
        """
        d = self._minions.pop(minion_id, None)
        if d is not None:
            _kill_tree(d.proc, timeout)
        opts = self._minion_cfg.get(minion_id)
        if opts:
            try:
                os.unlink(opts["pidfile"])
            except FileNotFoundError:
                pass

    def minion_running(self, minion_id):
        d = self._minions.get(minion_id)
        return d is not None and d.proc.poll() is None

    def wait_for_minion(self, minion_id, timeout=60, interval=0.25):
        """Poll ``salt <id> test.ping`` until True; return seconds since start_minion."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            d = self._minions.get(minion_id)
            if d is not None and d.proc.poll() is not None:
                raise SaltEnvError(
                    f"salt-minion {minion_id} exited rc={d.proc.returncode}\n"
                    + self._tail(d.console_log)
                    + "\n--- log ---\n"
                    + self._tail(self.minion_log(minion_id))
                )
            # Cheap pre-check: don't publish before the key is accepted.
            key = Path(self.master_opts["pki_dir"]) / "minions" / minion_id
            if key.exists() or self.master_opts.get("open_mode"):
                last = self.run_cli(
                    "salt",
                    [minion_id, "test.ping", "--timeout=3", "--out=json"],
                    timeout=30,
                )
                if isinstance(last.json, dict) and last.json.get(minion_id) is True:
                    t0 = getattr(self, "_minion_t0", {}).get(minion_id)
                    elapsed = time.monotonic() - t0 if t0 else None
                    self.startup_times[minion_id] = elapsed
                    return elapsed
            time.sleep(interval)
        raise SaltEnvError(
            f"minion {minion_id} not ping-able after {timeout}s; last={last!r}\n"
            + self._tail(self.minion_log(minion_id))
        )

    # ------------------------------------------------------------------- CLI
    def run_cli(self, prog, args, conf_dir=None, timeout=120, input=None):
        """Run ``<venv>/bin/<prog> -c <conf_dir> args...``; return a CliResult."""
        conf = conf_dir or self.master_conf_dir
        argv = [str(self.venv_bin / prog), "-c", str(conf)] + [str(a) for a in args]
        env = dict(os.environ)
        env["PATH"] = str(self.venv_bin) + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONPATH", None)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(self.root),
            env=env,
            start_new_session=True,
            text=True,
        )
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc, 2)
            out, err = proc.communicate()
            raise SaltEnvError(f"timeout after {timeout}s: {argv}\n{err[-2000:]}")
        finally:
            if proc.poll() is not None:
                # a CLI may leave children (e.g. salt-call's); never leak them
                if _tree_pids(proc.pid, proc.pid):
                    _kill_tree(proc, 2)
        return CliResult(argv, proc.returncode, out, err)

    @staticmethod
    def _fun_args(args, kwargs):
        out = []
        for a in args:
            out.append(a if isinstance(a, str) else json.dumps(a))
        for k, v in (kwargs or {}).items():
            out.append(f"{k}={v if isinstance(v, str) else json.dumps(v)}")
        return out

    def salt_raw(self, tgt, fun, *args, tgt_type=None, timeout=30, cli_args=(), **kwargs):
        argv = [tgt, fun] + self._fun_args(args, kwargs)
        # No --static: on 3008 it switches the CLI to batch mode, which first
        # publishes a test.ping "gather" job and then the real one.
        argv += ["--out=json", f"--timeout={timeout}"]
        if tgt_type and tgt_type != "glob":
            argv.append("--" + tgt_type.replace("_", "-"))
        argv += list(cli_args)
        return self.run_cli("salt", argv, timeout=timeout + 60)

    def salt(self, tgt, fun, *args, tgt_type=None, timeout=30, cli_args=(), **kwargs):
        """``salt tgt fun args k=v --out=json``; returns {minion: return}.

        Non-string args/kwargs are JSON-encoded (Salt parses them as YAML).
        ``tgt_type`` is the CLI flag name: list, grain, pcre, compound...
        Raises SaltEnvError if the output is not JSON.  Use ``salt_raw`` for
        the return code (non-zero when a minion fails).
        """
        res = self.salt_raw(tgt, fun, *args, tgt_type=tgt_type, timeout=timeout,
                            cli_args=cli_args, **kwargs)
        if res.json is None:
            raise SaltEnvError(f"salt output is not JSON: {res!r}")
        return res.json

    def salt_call(self, minion_id, fun, *args, local=False, timeout=120, cli_args=(), raw=False, **kwargs):
        """``salt-call -c <minion conf> fun ... --out=json``; returns ret['local']."""
        argv = [fun] + self._fun_args(args, kwargs) + ["--out=json"]
        if local:
            argv.append("--local")
        else:
            self._wait_minion_keys(minion_id)
        argv += list(cli_args)
        res = self.run_cli("salt-call", argv, conf_dir=self.minion_conf_dir(minion_id),
                           timeout=timeout)
        if raw:
            return res
        if not isinstance(res.json, dict) or "local" not in res.json:
            raise SaltEnvError(f"salt-call output is not JSON: {res!r}")
        return res.json["local"]

    def _wait_minion_keys(self, minion_id, timeout=60):
        """A salt-call that shares a starting daemon's pki dir must not race it
        to make the key pair: the loser's key is not the one the master
        accepted, and its sign-in hangs ("Decryption failed")."""
        d = self._minions.get(minion_id)
        if d is None:
            return
        pki = self.root / "minions" / minion_id / "pki"
        deadline = time.monotonic() + timeout
        while not ((pki / "minion.pem").exists() and (pki / "minion.pub").exists()):
            if d.proc.poll() is not None:
                raise SaltEnvError(f"salt-minion {minion_id} exited rc={d.proc.returncode}")
            if time.monotonic() > deadline:
                raise SaltEnvError(f"salt-minion {minion_id} made no key pair in {timeout}s")
            time.sleep(0.1)

    def salt_run(self, fun, *args, timeout=120, cli_args=(), raw=False, **kwargs):
        """``salt-run -c <master conf> fun ... --out=json``; returns parsed JSON."""
        argv = [fun] + self._fun_args(args, kwargs) + ["--out=json"] + list(cli_args)
        res = self.run_cli("salt-run", argv, timeout=timeout)
        if raw:
            return res
        if res.json is None:
            raise SaltEnvError(f"salt-run output is not JSON: {res!r}")
        return res.json

    def salt_key(self, *args, timeout=60):
        return self.run_cli("salt-key", list(args) + ["--out=json"], timeout=timeout)

    # ------------------------------------------------------------ file roots
    def write_state(self, relpath, text):
        p = self.file_roots / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def write_pillar(self, relpath, text):
        p = self.pillar_roots / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    # --------------------------------------------------------------- cleanup
    def cleanup(self, remove_root=False):
        """Kill every daemon started here (process groups + strays)."""
        for mid in list(self._minions):
            self.stop_minion(mid)
        self.stop_master(timeout=10)
        if self._short_tmp is not None:
            shutil.rmtree(self._short_tmp, ignore_errors=True)
            self._short_tmp = None
        if remove_root:
            shutil.rmtree(self.root, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def __del__(self):  # pragma: no cover - safety net
        try:
            if self._master is not None or self._minions:
                self.cleanup()
        except Exception:
            pass


def _main(argv=None):
    """Smoke run: python saltenv.py VENV_BIN [ROOT] -> prints timings."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: saltenv.py VENV_BIN [ROOT]", file=sys.stderr)
        return 2
    root = argv[1] if len(argv) > 1 else tempfile.mkdtemp(prefix="saltenv-root-")
    with SaltEnv(root, argv[0]) as env:
        t0 = time.monotonic()
        env.start_master()
        t_master = time.monotonic() - t0
        env.start_minion("m1")
        t_ping = env.wait_for_minion("m1")
        total = time.monotonic() - t0
        print(json.dumps({
            "root": str(env.root), "sock_dir": str(env.sock_dir),
            "master_ready_s": round(t_master, 2),
            "minion_start_to_ping_s": round(t_ping, 2),
            "master_start_to_ping_s": round(total, 2),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
