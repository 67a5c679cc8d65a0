"""The ``autodeploy`` runner (``salt-run autodeploy.*`` and salt-api) on a real master.

Three layers, so that everything Salt-side is proved before the C task system lands:

* **unit** (no daemons): how the runner builds ``config_json`` from the master options
  (utils/config.py: the engine entry, bus options, ``master_key_path``), who it names as
  the caller, how it maps its arguments, and how an error comes back as its fields,
  ``{"error", "code", "domain", "retcode": 1}``.
* **plumbing** (real master and salt-api, an *echo* ``ad_call``): a tiny C library,
  built here, that links the real libautodeploy for everything else and answers
  ``ad_call`` with what it was given, or, when asked (``reason=echo-refuse``), with a
  refusal in its own words (domain ``echo``). It proves what reaches C from ``salt-run``,
  ``salt-run -a auto`` and salt-api (rest_cherrypy, eauth ``auto``): the caller's name,
  the config, the key being readable where the runner runs, numbers from form posts;
  and how errors come back: non-zero ``salt-run`` exit status, a JSON body from
  salt-api. No text of the library is asserted here.
* **end to end** (real master, minion, FerretDB, engine, reactor, the real library): a
  task deployed with ``salt-run`` runs ``autodeploy.test.ok`` and ends ``succeeded``, is
  listed by ``tasks status=succeeded``; ``autodeploy.test.fail`` ends ``failed`` with the
  failed states first; bad arguments are refused in the library's words (asserted whole,
  with code and domain) and exit non-zero; the same create + view through salt-api; the
  simulator reads a CSV as ``autodeploy-simulate`` does.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from saltenv import _kill_tree, free_ports  # pylint: disable=import-error
from saltext.autodeploy.utils import config as adconfig
from waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
REACTOR_RUN = REPO / "reactor" / "autodeploy_task.sls"
REACTOR_KILL = REPO / "reactor" / "autodeploy_kill.sls"
STATES = REPO / "states"
API_USER = "ops"
# ops: every runner; viewer: only autodeploy.task and autodeploy.tasks (Salt matches
# these with re.match, so anchor them); nobody: logs in, may run nothing.
API_USERS = {
    API_USER: ["@runner"],
    "viewer": [{"@runner": [r"autodeploy\.tasks?$"]}],
    "nobody": ["test.ping"],
}


# ------------------------------------------------------------------ salt-api
class SaltApi:
    """A real ``salt-api`` (rest_cherrypy) on the env's master config dir."""

    def __init__(self, env, port):
        self.env = env
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = Path(env.master_opts["api_logfile"])
        self.log.parent.mkdir(parents=True, exist_ok=True)
        console = open(self.log.with_suffix(".console"), "ab")
        proc_env = dict(os.environ)
        proc_env["PATH"] = str(env.venv_bin) + os.pathsep + proc_env.get("PATH", "")
        proc_env.pop("PYTHONPATH", None)
        try:
            self.proc = subprocess.Popen(
                [str(env.venv_bin / "salt-api"), "-c", str(env.master_conf_dir), "-l", "info"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                cwd=str(env.root), env=proc_env, start_new_session=True,
            )
        finally:
            console.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"salt-api exited rc={self.proc.returncode}: {self.tail()}")
            try:
                status, _ = self.request("/")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("salt-api not answering: " + self.tail())
            time.sleep(0.2)

    def tail(self, n=30):
        text = ""
        for path in (self.log, self.log.with_suffix(".console")):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-n:])
        return text

    def close(self):
        _kill_tree(self.proc, 10)

    def request(self, path, body=None, token=None, form=False, headers=None):
        """(HTTP status, JSON body or text)."""
        headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if token:
            headers["X-Auth-Token"] = token
        req = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def login(self, user=API_USER):
        status, body = self.request("/login", {"username": user, "password": "x", "eauth": "auto"})
        assert status == 200, body
        return body["return"][0]["token"]

    def runner(self, token, fun, **kwarg):
        """POST / client=runner; the function's arguments go in ``kwarg``.

        (Top-level ``timeout`` and ``full_return`` would be taken by the runner
        client itself, not passed to the function.)
        """
        return self.request("/", [{"client": "runner", "fun": fun, "kwarg": kwarg}], token)


def make_env(salt_env, master_opts):
    """A SaltEnv whose master config also serves salt-api (eauth ``auto``, runner client)."""
    env = salt_env(master_opts=master_opts)
    env.update_master_opts({
        "external_auth": {"auto": API_USERS},
        "netapi_enable_clients": ["runner"],
        "rest_cherrypy": {"host": "127.0.0.1", "port": free_ports(1)[0], "disable_ssl": True},
        # under root_dir, where Salt would put them anyway
        "api_pidfile": str(env.root / "master" / "run" / "salt-api.pid"),
        "api_logfile": str(env.root / "master" / "logs" / "api.log"),
    })
    return env


@pytest.fixture
def salt_api():
    """Factory: ``salt_api(env) -> SaltApi`` (started; stopped at teardown)."""
    apis = []

    def start(env):
        api = SaltApi(env, env.master_opts["rest_cherrypy"]["port"])
        apis.append(api)
        return api

    yield start
    for api in apis:
        api.close()


def salt_run(env, fun, *args, cli_args=(), **kwargs):
    """``salt-run fun args k=v ... --out=json`` -> CliResult (``.json``, ``.returncode``).

    Non-string values are JSON (which Salt's YAML parsing reads back); any
    keyword, ``timeout`` included, goes to the function.
    """
    def text(value):
        return value if isinstance(value, str) else json.dumps(value)

    argv = [fun] + [text(a) for a in args] + [f"{k}={text(v)}" for k, v in kwargs.items()]
    return env.run_cli("salt-run", argv + ["--out=json"] + list(cli_args), timeout=180)


EAUTH_CLI = ("-a", "auto", "--username", API_USER, "--password", "x")


# ======================================================================= unit
@pytest.fixture
def runner_mod(monkeypatch, tmp_path):
    """The runner module with Salt's dunders set as the loader would."""
    from saltext.autodeploy.runners import autodeploy as mod  # pylint: disable=import-outside-toplevel

    opts = {
        "__role": "master",
        "id": "saltmaster_master",
        "pki_dir": str(tmp_path / "pki"),
        "cachedir": str(tmp_path / "cache"),
        "user": "salt",
        "sock_dir": "/run/salt/master",
        "ipc_mode": "ipc",
        "tcp_master_pub_port": 4512,
        "tcp_master_pull_port": 4513,
        "engines": [
            {"reactor": {}},
            {"autodeploy": {"mongo_uri": "mongodb://db:27017/", "mongo_db": "ad"}},
        ],
    }
    monkeypatch.setattr(mod, "__opts__", opts, raising=False)
    monkeypatch.setattr(mod, "__context__", {}, raising=False)
    monkeypatch.setattr(mod, "__user__", "alice", raising=False)
    calls = []

    def fake_call(config, command, args=None):
        # A stand-in for the library: what the runner sends, and how a C error
        # comes back. Its texts are its own (the library's are asserted in the
        # end-to-end tests below, against the real library).
        calls.append((config, command, args))
        if args.get("reason") == "fake-refusal":
            raise mod.libautodeploy.AutodeployError("ad_call", -17, "fake", "fake: refused as asked")
        return {"ok": command}

    monkeypatch.setattr(mod.libautodeploy, "call", fake_call)
    monkeypatch.setattr(mod.libautodeploy, "errname",
                        lambda code: {-1: "AD_EINVAL", -13: "AD_ECONFIG", -17: "AD_ESTATE"}.get(code, "AD_E?"))
    monkeypatch.setattr(mod, "calls", calls, raising=False)
    return mod


def test_unit_config_from_master_opts(runner_mod):
    mod = runner_mod
    config = adconfig.runner_config(mod.__opts__)
    expected = {
        "master_key_path": os.path.join(mod.__opts__["cachedir"], ".salt_key"),
        "sock_dir": "/run/salt/master",
        "ipc_mode": "ipc",
        "tcp_master_pub_port": 4512,
        "tcp_master_pull_port": 4513,
        "mongo_uri": "mongodb://db:27017/",
        "mongo_db": "ad",
    }
    assert {k: config.get(k) for k in expected} == expected
    # exactly what the engine is given: same store, same bus, same key
    engine = adconfig.engine_config(mod.__opts__, adconfig.engine_entry(mod.__opts__))
    assert config == engine
    # the user option unset: root, as Salt's get_master_key
    assert adconfig.master_key_path({"cachedir": "/c"}) == "/c/.root_key"
    # entry forms Salt accepts
    assert adconfig.engine_entry({"engines": ["autodeploy"]}) == {}
    assert adconfig.engine_entry({"engines": {"autodeploy": {"mongo_db": "x"}}}) == {"mongo_db": "x"}
    assert adconfig.engine_entry(
        {"engines": [{"deployer": {"engine_module": "autodeploy", "mongo_db": "y"}}]}
    ) == {"mongo_db": "y"}
    assert adconfig.engine_entry({"engines": [{"reactor": {}}]}) is None
    # the engine entry wins over the master's bus options
    opts = dict(mod.__opts__, engines=[{"autodeploy": {"sock_dir": "/elsewhere"}}])
    assert adconfig.runner_config(opts)["sock_dir"] == "/elsewhere"
    # the loader modules keep no copy of it (utils/ is the one home)
    from saltext.autodeploy.engines import autodeploy as engine_mod  # pylint: disable=import-outside-toplevel

    for module in (mod, engine_mod):
        assert not {"master_key_path", "build_config", "MASTER_OPTS_KEYS"} & set(vars(module))


def test_unit_no_engine_entry_is_an_error(runner_mod):
    mod = runner_mod
    mod.__opts__["engines"] = []
    ret = mod.tasks()
    assert ret["retcode"] == 1 and ret["code"] == "AD_ECONFIG" and ret["domain"] == "config"
    assert ret["error"].startswith("config: the master has no autodeploy engine entry")
    assert mod.__context__["retcode"] == 1
    assert not mod.calls


def test_unit_caller(runner_mod, monkeypatch):
    mod = runner_mod
    assert mod._caller({}) == "alice"
    monkeypatch.setattr(mod, "__user__", "UNKNOWN")
    assert mod._caller({"__pub_user": "bob"}) == "bob"
    assert mod._caller({}) == "salt"  # the master user, last
    monkeypatch.setattr(mod, "__user__", "sudo_carol")
    assert mod._caller({"__pub_user": "bob"}) == "sudo_carol"
    # peer_run: Salt runs the runner as the master user with opts["id"] = the minion's id
    keys = Path(mod.__opts__["pki_dir"]) / "minions"
    keys.mkdir(parents=True)
    (keys / "m1").write_text("key")
    monkeypatch.setattr(mod, "__user__", "root")
    assert mod._caller({}) == "root"  # the master's own id is no minion key
    mod.__opts__["id"] = "m1"
    assert mod._caller({}) == "minion:m1"
    mod.__opts__["id"] = "../minions/m1"
    assert mod._caller({}) == "root"


def test_unit_deploy_arguments(runner_mod):
    mod = runner_mod
    ret = mod.deploy("game-01", mods="autodeploy.gameserver", pillar='{"a": {"b": 1}}',
                     timeout="600", retries=2, backoff="30", reason="open",
                     __pub_user="x", __pub_jid="1")
    assert ret == {"ok": "task.deploy"} and mod.__context__["retcode"] == 0
    config, command, args = mod.calls[-1]
    assert command == "task.deploy" and config["master_key_path"].endswith("/.salt_key")
    assert args == {
        "tgt": "game-01", "tgt_type": "glob", "mods": "autodeploy.gameserver",
        "pillar": {"a": {"b": 1}}, "timeout": 600, "retry": {"max_attempts": 3, "backoff_s": 30},
        "created_by": "alice", "reason": "open",
    }
    # a list target is a list target; YAML-numbered names are names again
    mod.deploy(["game-01", 7], steps=[{"name": "s", "mods": "x"}])
    args = mod.calls[-1][2]
    assert args["tgt"] == ["game-01", "7"] and args["tgt_type"] == "list"
    assert args["steps"] == [{"name": "s", "mods": "x"}] and "mods" not in args


def test_unit_usage(runner_mod):
    """autodeploy.usage is the command service.usage, for one service id."""
    mod = runner_mod
    assert mod.usage("qq-s1") == {"ok": "service.usage"}
    assert mod.calls[-1][1:] == ("service.usage", {"id": "qq-s1"})
    mod.usage(1001)  # a YAML-numbered id is a name again
    assert mod.calls[-1][2] == {"id": "1001"}
    n = len(mod.calls)
    ret = mod.usage("qq-s1", window=5)
    assert ret["retcode"] == 1 and ret["error"].startswith("window: unknown argument to autodeploy.usage")
    assert len(mod.calls) == n


def test_unit_refusals(runner_mod):
    mod = runner_mod
    # a library error comes back as its fields, not reworded: message, code, domain
    ret = mod.close("qq-s1", reason="fake-refusal")
    assert ret == {"error": "fake: refused as asked", "code": "AD_ESTATE", "domain": "fake",
                   "retcode": 1}
    assert mod.__context__["retcode"] == 1
    assert mod.calls[-1][1] == "service.close"  # one vocabulary: runner close, command service.close
    ret = mod.deploy("m1", retries=25, reason="fake-refusal")
    assert ret["error"] == "fake: refused as asked" and mod.calls[-1][2]["retry"]["max_attempts"] == 26
    # the runner's own refusals: domain "runner", and the library is not called
    n = len(mod.calls)
    ret = mod.deploy("m1", timout=5)
    assert ret["retcode"] == 1 and ret["error"].startswith("timout: unknown argument to autodeploy.deploy")
    assert ret["code"] == "AD_EINVAL" and ret["domain"] == "runner"
    ret = mod.deploy("m1", created_by="mallory")  # the audit name is not an argument
    assert ret["retcode"] == 1 and ret["error"].startswith("created_by: unknown argument")
    ret = mod.deploy("m1", retries=-1)
    assert ret["retcode"] == 1 and ret["error"].startswith("retries: must be a whole number >= 0")
    ret = mod.intervene("t1", "cancel", bogus=1)
    assert ret["retcode"] == 1 and ret["error"].startswith("bogus: unknown argument to autodeploy.intervene")
    assert len(mod.calls) == n
    # success resets the job's retcode (a cached runner client keeps __context__)
    assert mod.task("t1") == {"ok": "task.get"} and mod.__context__["retcode"] == 0
    assert mod.calls[-1][2] == {"id": "t1"}
    mod.task(20261127)
    assert mod.calls[-1][2] == {"id": "20261127"}
    mod.intervene("t1", "pause", reason="hold")
    assert mod.calls[-1][1:] == ("task.intervene", {"id": "t1", "action": "pause", "reason": "hold", "actor": "alice"})
    mod.tasks(status="failed", since="1764201600", limit="5")
    assert mod.calls[-1][1:] == ("task.list", {"status": "failed", "since": 1764201600, "limit": 5})


# ================================================================== plumbing
ECHO_C = r"""
/* An ad_call that answers with what it was given; everything else is the real
   libautodeploy (linked, found through this object's dependencies). It refuses
   only when asked (reason "echo-refuse"), in its own words: the library's
   texts are asserted against the library. Each call's command is appended to
   $AD_ECHO_LOG, so a test can show that a call did not reach it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int code; char domain[16]; char message[240]; } ad_error_t;

static char *refuse(ad_error_t *err, const char *message)
{
  if (err) {
    err->code = -17; /* AD_ESTATE: any code but the runner's own AD_EINVAL */
    snprintf(err->domain, sizeof err->domain, "echo");
    snprintf(err->message, sizeof err->message, "%s", message);
  }
  return NULL;
}

static void log_call(const char *command)
{
  const char *path = getenv("AD_ECHO_LOG");
  FILE *f = path ? fopen(path, "a") : NULL;
  if (f) {
    fprintf(f, "%s\n", command);
    fclose(f);
  }
}

/* Length of the master key file named by "master_key_path":"..." in config, or -1. */
static long key_len(const char *config)
{
  const char *p = strstr(config, "\"master_key_path\":\"");
  if (!p)
    return -2;
  p += strlen("\"master_key_path\":\"");
  const char *q = strchr(p, '"');
  char path[4096];
  if (!q || (size_t)(q - p) >= sizeof path)
    return -3;
  memcpy(path, p, q - p);
  path[q - p] = 0;
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fclose(f);
  return n;
}

char *ad_call(const char *config, const char *command, const char *args, ad_error_t *err)
{
  if (!config || !command || !args)
    return refuse(err, "echo: a NULL argument");
  log_call(command);
  if (strstr(args, "\"reason\":\"echo-refuse\""))
    return refuse(err, "echo: refused as asked");
  size_t n = strlen(config) + strlen(command) + strlen(args) + 128;
  char *out = malloc(n);
  if (out)
    snprintf(out, n, "{\"echo\":{\"command\":\"%s\",\"config\":%s,\"args\":%s,\"key_len\":%ld}}",
             command, config, args, key_len(config));
  return out;
}
"""


@pytest.fixture(scope="session")
def echo_lib(tmp_path_factory, ad_lib):
    """``libadecho.so``: ECHO_C linked against the library under test."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        if os.environ.get("CI") == "true":
            pytest.fail("no C compiler for the echo library (CI=true: failing, not skipping)")
        pytest.skip("no C compiler for the echo library")
    real = Path(ad_lib).resolve()
    out = tmp_path_factory.mktemp("echo") / "libadecho.so"
    src = out.with_suffix(".c")
    src.write_text(ECHO_C)
    subprocess.run(
        # --no-as-needed: nothing here calls the real library, but the loader must
        # still find its symbols through this object's dependencies.
        [cc, "-shared", "-fPIC", "-O0", "-o", str(out), str(src), "-Wl,--no-as-needed",
         str(real), f"-Wl,-rpath,{real.parent}"],
        check=True, capture_output=True,
    )
    return out


def start_echo_master(salt_env, echo_lib, monkeypatch, minions=()):
    monkeypatch.setenv("AD_LIB", str(echo_lib))
    # every call the echo answers, one command a line (the master and its
    # runner processes inherit the environment)
    monkeypatch.setenv("AD_ECHO_LOG", str(Path(echo_lib).parent / f"calls-{os.getpid()}-{time.monotonic_ns()}.log"))
    env = make_env(salt_env, {
        "engines": [{"autodeploy": {"log_events": "autodeploy/task/*"}}],
        # a minion allowed to intervene through Salt's peer ACL (docs/tasks.md)
        "peer_run": {"m1": [r"autodeploy\.intervene$"]},
    })
    env.start_master()
    for mid in minions:
        env.start_minion(mid)
    for mid in minions:
        env.wait_for_minion(mid)
    return env


def echo_of(res):
    assert res.returncode == 0, res
    assert isinstance(res.json, dict) and "echo" in res.json, res
    return res.json["echo"]


def test_plumbing_salt_run(salt_env, echo_lib, monkeypatch):
    env = start_echo_master(salt_env, echo_lib, monkeypatch, minions=("m1",))
    cachedir = env.master_opts["cachedir"]

    echo = echo_of(salt_run(env, "autodeploy.deploy", "m1", mods="autodeploy.test.ok",
                            pillar={"autodeploy": {"x": 1}}, timeout=600, retries=1,
                            reason="ci"))
    assert echo["command"] == "task.deploy"
    assert echo["args"] == {
        "tgt": "m1", "tgt_type": "glob", "mods": "autodeploy.test.ok",
        "pillar": {"autodeploy": {"x": 1}}, "timeout": 600,
        "retry": {"max_attempts": 2, "backoff_s": 60}, "created_by": "root", "reason": "ci",
    }
    config = echo["config"]
    # the engine entry, the master's bus options, and the key LocalClient uses
    assert config["log_events"] == "autodeploy/task/*"
    assert config["sock_dir"] == env.master_opts["sock_dir"]
    assert config["ipc_mode"] == "ipc"
    assert config["master_key_path"] == os.path.join(cachedir, ".root_key")
    assert echo["key_len"] > 16  # readable where the runner ran

    # through eauth the runner runs in the master and names the eauth user
    echo = echo_of(salt_run(env, "autodeploy.intervene", "t1", "cancel", reason="stop",
                            cli_args=EAUTH_CLI))
    assert echo["args"] == {"id": "t1", "action": "cancel", "reason": "stop", "actor": API_USER}
    assert echo["key_len"] > 16

    echo = echo_of(salt_run(env, "autodeploy.tasks", status="succeeded", since="2026-11-27T00:00:00Z"))
    assert echo["command"] == "task.list"
    assert echo["args"] == {"status": "succeeded", "since": "2026-11-27T00:00:00Z", "limit": 50}

    # a refusal of the library comes back as its fields, exit status 1, with and
    # without eauth (the echo's words; the library's are asserted end to end)
    echo_refusal = {"error": "echo: refused as asked", "code": "AD_ESTATE", "domain": "echo",
                    "retcode": 1}
    for args, cli in [
        (("autodeploy.intervene", "t1", "cancel"), ()),
        (("autodeploy.intervene", "t1", "cancel"), EAUTH_CLI),
        (("autodeploy.close", "qq-s1"), ()),
    ]:
        res = salt_run(env, *args, cli_args=cli, reason="echo-refuse")
        assert res.returncode == 1, res
        assert res.json == echo_refusal, res
    # the runner's own refusal never reaches the library
    calls = Path(os.environ["AD_ECHO_LOG"])
    before = calls.read_text()
    res = salt_run(env, "autodeploy.deploy", "m1", timout=5)
    assert res.returncode == 1, res
    assert res.json["error"].startswith("timout: unknown argument to autodeploy.deploy"), res
    assert res.json["code"] == "AD_EINVAL" and res.json["domain"] == "runner", res
    assert calls.read_text() == before

    # a minion through peer_run: Salt runs the runner as the master's user, the
    # runner names the minion
    ret = env.salt_call("m1", "publish.runner", "autodeploy.intervene",
                        arg=["t1", "cancel", "bad build"])
    assert ret["echo"]["args"] == {"id": "t1", "action": "cancel", "reason": "bad build",
                                   "actor": "minion:m1"}, ret
    assert calls.read_text().splitlines()[-1] == "task.intervene"
    # not in its peer_run ACL: Salt refuses (and says so in the master log), the
    # runner never runs, the library is not called
    before = calls.read_text()
    ret = env.salt_call("m1", "publish.runner", "autodeploy.deploy", arg=["m1"])
    assert ret == {}, ret
    assert wait_for(lambda: "Minion id m1 is not who it says it is" in env.master_log.read_text(),
                    timeout=30), "no peer_run refusal in the master log"
    assert calls.read_text() == before

    # the default (nested) output shows the message and its code and domain too
    res = env.run_cli("salt-run", ["autodeploy.deploy", "m1", "reason=echo-refuse"])
    assert res.returncode == 1, res
    assert "echo: refused as asked" in res.stdout and "AD_ESTATE" in res.stdout, res
    assert "domain:" in res.stdout and "echo" in res.stdout, res


def test_plumbing_salt_api(salt_env, salt_api, echo_lib, monkeypatch):
    env = start_echo_master(salt_env, echo_lib, monkeypatch)
    api = salt_api(env)

    status, body = api.request("/login", {"username": API_USER, "password": "x", "eauth": "auto"})
    assert status == 200 and body["return"][0]["perms"] == ["@runner"]
    token = body["return"][0]["token"]

    # a built-in runner first: the runner client itself
    status, body = api.runner(token, "test.arg", k="v")
    assert status == 200 and body == {"return": [{"args": [], "kwargs": {"k": "v"}}]}

    status, body = api.runner(token, "autodeploy.deploy", tgt="m1", mods="autodeploy.test.ok",
                              pillar={"autodeploy": {"x": 1}}, timeout=600)
    assert status == 200, body
    echo = body["return"][0]["echo"]
    assert echo["args"]["created_by"] == API_USER
    assert echo["args"]["timeout"] == 600 and echo["args"]["pillar"] == {"autodeploy": {"x": 1}}
    assert echo["key_len"] > 16  # the runner ran in the master

    status, body = api.runner(token, "autodeploy.task", id="t1")
    assert status == 200 and body["return"][0]["echo"]["args"] == {"id": "t1"}

    # a form post: values arrive as text and are still understood; a top-level
    # `timeout` is the runner client's own (how long to wait), so the function's
    # timeout goes in `arg` as "timeout=600" (or in `kwarg` with JSON)
    status, body = api.request("/", [
        ("client", "runner"), ("fun", "autodeploy.deploy"), ("tgt", "m1"),
        ("backoff", "30"), ("pillar", '{"a": 1}'), ("arg", "timeout=600"), ("arg", "retries=2"),
    ], token, form=True)
    assert status == 200, body
    args = body["return"][0]["echo"]["args"]
    assert args["timeout"] == 600 and args["pillar"] == {"a": 1}
    assert args["retry"] == {"max_attempts": 3, "backoff_s": 30}
    status, body = api.request("/", {"client": "runner", "fun": "autodeploy.deploy", "tgt": "m1",
                                     "timeout": "600"}, token, form=True)
    assert status == 200 and body["return"][0]["echo"]["args"]["timeout"] == 1800

    # refusals: HTTP 200, the error's fields in the body (the echo's words here)
    status, body = api.runner(token, "autodeploy.intervene", id="t1", action="cancel",
                              reason="echo-refuse")
    assert status == 200
    assert body["return"][0] == {"error": "echo: refused as asked", "code": "AD_ESTATE",
                                 "domain": "echo", "retcode": 1}, body
    status, body = api.runner(token, "autodeploy.deploy", tgt="m1", timout=5)
    assert status == 200 and body["return"][0]["domain"] == "runner", body
    assert body["return"][0]["error"].startswith("timout: unknown argument"), body

    # a read-only role: task/tasks yes, deploy/intervene 401
    viewer = api.login("viewer")
    status, body = api.runner(viewer, "autodeploy.tasks", status="running")
    assert status == 200 and body["return"][0]["echo"]["command"] == "task.list", body
    status, body = api.runner(viewer, "autodeploy.task", id="t1")
    assert status == 200 and body["return"][0]["echo"]["command"] == "task.get", body
    for fun in ("autodeploy.deploy", "autodeploy.intervene"):
        status, _ = api.runner(viewer, fun, tgt="m1")
        assert status == 401, fun

    # no token, or a user without runner rights: 401 from rest_cherrypy
    status, _ = api.request("/", [{"client": "runner", "fun": "autodeploy.tasks"}])
    assert status == 401
    status, _ = api.runner(api.login("nobody"), "autodeploy.tasks")
    assert status == 401

    # credentials inline on /run (no session): the eauth user is still the caller
    status, body = api.request("/run", [{
        "client": "runner", "fun": "autodeploy.deploy", "kwarg": {"tgt": "m1"},
        "username": API_USER, "password": "x", "eauth": "auto",
    }])
    assert status == 200 and body["return"][0]["echo"]["args"]["created_by"] == API_USER


# ================================================================ end to end
def start_task_master(salt_env, ferretdb, tmp_path, minions=("m1",), registry=None,
                      grains=None, placement=None, extra=None):
    opts = {
        "engines": [{"autodeploy": {
            **({"registry": registry} if registry else {}),
            **({"placement": placement} if placement else {}),
            "mongo_uri": ferretdb.uri,
            "spool_dir": str(tmp_path / "spool"),
            "batch_ms": 20,
            "store_retry_ms": 200,
            "stats_interval": 0,
        }}],
        "reactor": [
            {"autodeploy/task/*/run": [str(REACTOR_RUN)]},
            {"autodeploy/task/*/kill": [str(REACTOR_KILL)]},
        ],
        "file_roots": {"base": [str(tmp_path / "srv-unused"), str(STATES)]},
        **(extra or {}),
    }
    env = make_env(salt_env, opts)
    env.start_master()
    for mid in minions:
        env.start_minion(mid, grains=(grains or {}).get(mid))
    for mid in minions:
        env.wait_for_minion(mid)
    return env


def task_of(res):
    assert res.returncode == 0, res
    assert isinstance(res.json, dict) and "task" in res.json, res
    return res.json["task"]


def wait_state(get, states, timeout=120.0):
    """Poll ``get() -> {"task", "results"}`` until the task's state is in ``states``."""
    last = {}

    def done():
        last.update(get())
        return last.get("task", {}).get("state") in states

    assert wait_for(done, timeout=timeout), f"task not in {states} after {timeout}s: {last}"
    return last


# (salt-run arguments, keyword arguments, CLI options, error, code, domain): refusals
# of the real library, as the runner returns them
LIBRARY_REFUSALS = [
    (("autodeploy.deploy",), {"mods": "autodeploy.test.ok"}, (),
     "tgt: required (a minion id, glob or list)", "AD_EINVAL", "args"),
    (("autodeploy.deploy", "m1"), {"timeout": -5}, (),
     "timeout: must be 1..86400 seconds", "AD_EINVAL", "args"),
    (("autodeploy.deploy", "m1"), {"retries": 25}, (),
     "retry: max_attempts must be 1..20 and backoff_s 0..86400", "AD_EINVAL", "args"),
    (("autodeploy.tasks",), {"status": "weird"}, (),
     "status: must be queued, running, paused, succeeded, failed, timed_out or cancelled",
     "AD_EINVAL", "args"),
    (("autodeploy.task", "t-no-such-task"), {}, (),
     "id: no task t-no-such-task", "AD_ENOTFOUND", "tasks"),
]


def test_deploy_with_salt_run(salt_env, ferretdb, tmp_path):
    env = start_task_master(salt_env, ferretdb, tmp_path)

    # a passing state: the task runs and succeeds
    task = task_of(salt_run(env, "autodeploy.deploy", "m1", mods="autodeploy.test.ok",
                            timeout=300, reason="ci ok"))
    tid = task["_id"]
    assert task["created_by"] == "root" and task["reason"] == "ci ok"
    assert task["target"] == {"tgt": "m1", "tgt_type": "glob"}
    assert task["state"] in ("queued", "running")
    got = wait_state(lambda: salt_run(env, "autodeploy.task", tid).json or {}, {"succeeded"})
    assert got["task"]["history"][-1]["to"] == "succeeded"
    assert [h["to"] for h in got["task"]["history"]][:1] == ["queued"]
    assert got["results"] and got["results"][0]["minion"] == "m1"
    assert got["results"][0]["retcode"] == 0 and got["results"][0]["jid"]

    listed = salt_run(env, "autodeploy.tasks", status="succeeded")
    assert listed.returncode == 0, listed
    assert tid in [t["_id"] for t in listed.json["tasks"]]
    assert all(t["state"] == "succeeded" for t in listed.json["tasks"])

    # a failing state: the task fails, failed states first
    task = task_of(salt_run(env, "autodeploy.deploy", "m1", mods="autodeploy.test.fail",
                            timeout=300))
    got = wait_state(lambda: salt_run(env, "autodeploy.task", task["_id"]).json or {},
                     {"failed"})
    result = got["results"][0]
    assert result["retcode"] == 2
    assert result["states"] and result["states"][0]["result"] is False
    flags = [s["result"] for s in result["states"]]
    assert flags == sorted(flags, key=lambda r: r is not False)  # no failure after a pass
    failed = salt_run(env, "autodeploy.tasks", status="failed")
    assert task["_id"] in [t["_id"] for t in failed.json["tasks"]]

    # bad arguments: refused by the library in its own words, passed through whole
    # with its code and domain, exit status 1 (with eauth too)
    for args, kwargs, cli, error, code, domain in LIBRARY_REFUSALS + [
        (("autodeploy.intervene", tid, "explode"), {}, (),
         "action: must be cancel, pause, resume or retry", "AD_EINVAL", "args"),
        (("autodeploy.deploy", "m1"), {"timeout": -5}, EAUTH_CLI,
         "timeout: must be 1..86400 seconds", "AD_EINVAL", "args"),
    ]:
        res = salt_run(env, *args, cli_args=cli, **kwargs)
        assert res.returncode == 1, res
        assert res.json == {"error": error, "code": code, "domain": domain, "retcode": 1}, res


def test_deploy_with_salt_api(salt_env, salt_api, ferretdb, tmp_path):
    env = start_task_master(salt_env, ferretdb, tmp_path)
    api = salt_api(env)
    token = api.login()

    status, body = api.runner(token, "autodeploy.deploy", tgt="m1", mods="autodeploy.test.ok",
                              timeout=300, reason="from the api")
    assert status == 200, body
    task = body["return"][0]["task"]
    assert task["created_by"] == API_USER and task["reason"] == "from the api"

    def get():
        status, body = api.runner(token, "autodeploy.task", id=task["_id"])
        assert status == 200, body
        return body["return"][0]

    got = wait_state(get, {"succeeded"})
    assert got["results"][0]["minion"] == "m1" and got["results"][0]["retcode"] == 0

    status, body = api.runner(token, "autodeploy.tasks", status="succeeded")
    assert status == 200 and task["_id"] in [t["_id"] for t in body["return"][0]["tasks"]]

    # refusals: HTTP 200, the library's error whole in the body
    for fun, kwarg, error in [
        ("autodeploy.deploy", {"tgt": "m1", "timeout": -5}, "timeout: must be 1..86400 seconds"),
        ("autodeploy.deploy", {"mods": "autodeploy.test.ok"},
         "tgt: required (a minion id, glob or list)"),
        ("autodeploy.intervene", {"id": task["_id"], "action": "explode"},
         "action: must be cancel, pause, resume or retry"),
    ]:
        status, body = api.runner(token, fun, **kwarg)
        assert status == 200
        assert body["return"][0] == {"error": error, "code": "AD_EINVAL", "domain": "args",
                                     "retcode": 1}, body


def test_hosts_with_salt_api(salt_env, salt_api, ferretdb, tmp_path):
    """The CMDB read over HTTP: hosts, host, retire through a real salt-api. The
    minion's address comes from a static grain here (tests/test_registry.py runs
    minions with real addresses in network namespaces)."""
    profile = "aliyun:cn-hangzhou:game-4c8g"
    env = start_task_master(
        salt_env, ferretdb, tmp_path,
        registry={"profiles": ["aliyun:*"], "init_state": "", "reconcile_interval": 1},
        grains={"m1": {"autodeploy_profile": profile, "ipv4": ["127.0.0.1", "10.77.0.5"]}})
    api = salt_api(env)
    token = api.login()
    key = f"{profile}:10.77.0.5"

    def listed():
        status, body = api.runner(token, "autodeploy.hosts", state="ready")
        assert status == 200, body
        return body["return"][0]["hosts"]

    hosts = wait_for(listed, timeout=60)
    assert [h["_id"] for h in hosts] == [key] and hosts[0]["minion"] == "m1"
    status, body = api.runner(token, "autodeploy.host", key="m1")
    assert status == 200 and body["return"][0]["host"]["_id"] == key
    assert body["return"][0]["host"]["history"][0]["to"] == "registering"
    status, body = api.runner(token, "autodeploy.hosts", state="nope")
    assert body["return"][0]["retcode"] == 1 and body["return"][0]["error"].startswith("state:")
    status, body = api.runner(token, "autodeploy.retire", key=key, reason="api test")
    host = body["return"][0]["host"]
    assert host["state"] == "retired" and host["history"][-1]["actor"] == API_USER
    assert "api test" in host["reason"]


HOOK_TOKEN = "demo-hook-token-0123456789abcdef"


def test_opened_through_the_salt_api_webhook(salt_env, salt_api, ferretdb, tmp_path):
    """POST /hook/autodeploy/opened (salt-api webhook) -> reactor (token checked) ->
    autodeploy.opened runner -> signed event -> the engine marks the service opened.
    A wrong token changes nothing."""
    profile = "aliyun:cn-hangzhou:game-4c8g"
    hook = REPO / "reactor" / "autodeploy_opened_hook.sls"
    env = start_task_master(
        salt_env, ferretdb, tmp_path,
        registry={"profiles": ["aliyun:*"], "init_state": "", "reconcile_interval": 1},
        placement={"cycle_interval": 86400},
        grains={"m1": {"autodeploy_profile": profile, "ipv4": ["127.0.0.1", "10.77.0.5"]}},
        extra={"autodeploy_hook_token": HOOK_TOKEN,
               "reactor": [{"autodeploy/task/*/run": [str(REACTOR_RUN)]},
                           {"salt/netapi/hook/autodeploy/opened": [str(hook)]}]})
    api = salt_api(env)
    token = api.login()
    assert wait_for(lambda: api.runner(token, "autodeploy.hosts", state="ready")[1]["return"][0]["hosts"], timeout=60)
    status, body = api.runner(token, "autodeploy.platform", code="qq", state="autodeploy.test.ok",
                              reserve={"min": 1, "max": 1})
    assert status == 200 and body["return"][0]["platform"]["_id"] == "qq", body
    status, body = api.runner(token, "autodeploy.cycle")
    assert body["return"][0]["platforms"][0]["created"] == ["qq-s1"], body

    def state():
        return api.runner(token, "autodeploy.service", id="qq-s1")[1]["return"][0]["service"]["state"]

    assert wait_for(lambda: state() == "deployed", timeout=90)
    status, _ = api.request("/hook/autodeploy/opened", {"service": "qq-s1"}, token=token,
                            headers={"X-Autodeploy-Token": "wrong-token-wrong-token"})
    assert status == 200
    # the refusal's own evidence first, then that nothing changed
    assert wait_for(lambda: "bad or missing X-Autodeploy-Token" in env.master_log.read_text(),
                    timeout=60), "the reactor did not refuse the wrong token"
    assert state() == "deployed"
    status, _ = api.request("/hook/autodeploy/opened", {"service": "qq-s1"}, token=token,
                            headers={"X-Autodeploy-Token": HOOK_TOKEN})
    assert status == 200
    assert wait_for(lambda: state() == "opened", timeout=60)
    why = api.runner(token, "autodeploy.why", id="qq-s1")[1]["return"][0]
    assert why["host"] == f"{profile}:10.77.0.5" and why["decision"]["host"] == why["host"], why


def test_only_the_commands_are_runner_functions(salt_venv, ad_lib, tmp_path):
    """Salt's loader exposes every public function of a module; internals such as
    the configuration helpers would hand out the MongoDB URI to anyone allowed autodeploy.*."""
    code = (
        "import salt.config, salt.loader, sys\n"
        "opts = salt.config.master_config('/dev/null')\n"
        "d = sys.argv[1]\n"
        "opts.update(cachedir=d, pki_dir=d, sock_dir=d,\n"
        "            engines=[{'autodeploy': {'mongo_uri': 'mongodb://u:secret@h/'}}])\n"
        "print(' '.join(sorted(k for k in salt.loader.runner(opts) if k.startswith('autodeploy.'))))\n"
    )
    out = subprocess.run([str(salt_venv / "bin" / "python"), "-c", code, str(tmp_path)],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, AD_LIB=str(ad_lib)), check=True)
    assert out.stdout.split() == [
        "autodeploy.approve", "autodeploy.close", "autodeploy.cycle", "autodeploy.deploy",
        "autodeploy.drain", "autodeploy.host", "autodeploy.hosts", "autodeploy.intervene",
        "autodeploy.opened", "autodeploy.order", "autodeploy.order_cancel", "autodeploy.orders",
        "autodeploy.platform", "autodeploy.platforms", "autodeploy.purchase",
        "autodeploy.reinit", "autodeploy.reject", "autodeploy.retire", "autodeploy.service",
        "autodeploy.services", "autodeploy.simulate", "autodeploy.status", "autodeploy.task",
        "autodeploy.tasks", "autodeploy.usage", "autodeploy.why"]


# ================================================================= simulate
SIM_DATA = REPO / "tests" / "data" / "simulate"


def _rounded(value):
    """The report with floats to 6 significant digits: autodeploy-simulate prints
    them so (JSON_REAL_PRECISION(6)), ad_call with jansson's full precision."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_simulate_csv_with_a_header_row_as_autodeploy_simulate_reads_it(salt_env, ad_bin, tmp_path):
    """One CSV parser, the library's: a CSV whose first line is a header gives the
    same report through ``salt-run autodeploy.simulate`` (the runner reads the file,
    the library parses it) as through ``autodeploy-simulate --openings-csv``; a bad
    line is refused by both with the same words."""
    fleet = json.loads((SIM_DATA / "input.json").read_text())
    del fleet["openings"]
    fleet_path = tmp_path / "fleet.json"
    fleet_path.write_text(json.dumps(fleet))
    csv_path = SIM_DATA / "openings.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "platform,timestamp"  # the header row under test
    rows = len([line for line in lines[1:] if line.strip()])

    tool = subprocess.run([str(ad_bin / "autodeploy-simulate"), "--openings-csv", str(csv_path),
                           str(fleet_path)], capture_output=True, text=True, timeout=120)
    assert tool.returncode == 0, tool.stderr
    want = json.loads(tool.stdout)
    assert want["openings"] == rows  # every row counted, the header not

    env = make_env(salt_env, {"engines": [{"autodeploy": {"log_events": "autodeploy/*"}}]})
    env.start_master()
    res = salt_run(env, "autodeploy.simulate", path=str(fleet_path), csv=str(csv_path))
    assert res.returncode == 0, res
    assert _rounded(res.json) == _rounded(want)

    bad = tmp_path / "bad.csv"
    bad.write_text("platform,timestamp\ng10,2024-05-01T01:00:00Z\ng10,soon\n")
    reason = "line 3: cannot parse 'soon' as ISO-8601 or epoch seconds"
    tool = subprocess.run([str(ad_bin / "autodeploy-simulate"), "--openings-csv", str(bad),
                           str(fleet_path)], capture_output=True, text=True, timeout=120)
    assert tool.returncode == 65 and tool.stderr.strip().endswith(f"{bad} {reason}"), tool.stderr
    res = salt_run(env, "autodeploy.simulate", path=str(fleet_path), csv=str(bad))
    assert res.returncode == 1, res
    assert res.json == {"error": f"csv {bad} {reason}", "code": "AD_ECONFIG", "domain": "simulate",
                        "retcode": 1}
