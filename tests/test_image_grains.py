"""The host image's minion config and grains module, on the Salt in ``$SALT_VENV``.

* ``packaging/grains/autodeploy_host.py`` loaded by the venv's own
  ``salt-call --local`` (through ``grains_dirs``, as the image does): the
  profile file in both forms, the environment overriding it, bad values left
  out with a warning, disk size and boot id;
* ``packaging/minion.d/autodeploy.conf``: every key is a Salt minion option
  (or one of ours), and every grain it lists in ``start_event_grains`` exists
  on this host once the drop-in is in ``minion.d/``;
* end to end: a real minion with the drop-in's settings sends
  ``salt/minion/<id>/start`` with those grains (and no legacy
  ``minion_start``), and the master's own minion data cache, the source
  registration trusts, holds the same values.

No libautodeploy needed. Roots are short ``/tmp/adgr-*`` dirs (Unix socket
path limit), removed after each test.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from saltenv import SaltEnv

REPO = Path(__file__).resolve().parent.parent
GRAINS_DIR = REPO / "packaging" / "grains"
DROPIN = REPO / "packaging" / "minion.d" / "autodeploy.conf"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
ENV_KEYS = ("AUTODEPLOY_PROFILE", "AUTODEPLOY_PROVIDER", "AUTODEPLOY_REGION",
            "AUTODEPLOY_INSTANCE_ID")
OUR_OPTIONS = {"autodeploy_profile_file", "autodeploy_disk_path"}


def disk_gb(path):
    st = os.statvfs(path)
    return int(round(st.f_blocks * st.f_frsize / float(1 << 30)))


@pytest.fixture
def root():
    d = Path(tempfile.mkdtemp(prefix="adgr-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_conf(root, **opts):
    """A --local minion config under ``root/conf`` loading the grains module."""
    conf = root / "conf"
    conf.mkdir(exist_ok=True)
    base = {
        "id": "img1",
        "root_dir": str(root / "r"),
        "file_client": "local",
        "grains_dirs": [str(GRAINS_DIR)],
        "enable_gpu_grains": False,
        "enable_fqdns_grains": False,
        "log_level": "warning",
        "autodeploy_profile_file": str(root / "profile"),
    }
    base.update(opts)
    (conf / "minion").write_text(json.dumps(base, indent=1) + "\n")
    return conf


def salt_call(venv, conf, *args, env=None):
    penv = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    penv.pop("PYTHONPATH", None)
    penv.update(env or {})
    argv = [str(venv / "bin" / "salt-call"), "-c", str(conf), "--local", *args, "--out=json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=penv)
    assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
    return json.loads(proc.stdout)["local"], proc.stderr


def ad_grains(venv, conf, env=None):
    grains, stderr = salt_call(venv, conf, "grains.items", env=env)
    return {k: v for k, v in grains.items() if k.startswith("autodeploy_")}, stderr


def test_profile_file_key_value(salt_venv, root):
    (root / "profile").write_text(
        "# written by cloud-init\n"
        "PROFILE=aliyun-cn-hangzhou-game\n"
        "export PROVIDER='aliyun'\n"
        'REGION="cn-hangzhou"\n'
        "\n"
        "INSTANCE_ID = i-bp1a2b3c4d5e\n"
    )
    got, _ = ad_grains(salt_venv, write_conf(root))
    assert got == {
        "autodeploy_profile": "aliyun-cn-hangzhou-game",
        "autodeploy_provider": "aliyun",
        "autodeploy_region": "cn-hangzhou",
        "autodeploy_instance_id": "i-bp1a2b3c4d5e",
        "autodeploy_disk_gb": disk_gb("/"),
        "autodeploy_boot_id": BOOT_ID.read_text().strip(),
    }
    assert isinstance(got["autodeploy_disk_gb"], int)


def test_profile_file_bare_line(salt_venv, root):
    (root / "profile").write_text("tencent:ap-guangzhou:game-8c16g\n")
    got, _ = ad_grains(salt_venv, write_conf(root))
    assert got["autodeploy_profile"] == "tencent:ap-guangzhou:game-8c16g"
    assert "autodeploy_provider" not in got and "autodeploy_region" not in got


def test_environment_overrides_file(salt_venv, root):
    (root / "profile").write_text("PROFILE=from-file\nREGION=file-region\n")
    env = {"AUTODEPLOY_PROFILE": "from-env", "AUTODEPLOY_PROVIDER": "aws",
           "AUTODEPLOY_INSTANCE_ID": "i-0123456789abcdef0"}
    got, _ = ad_grains(salt_venv, write_conf(root), env=env)
    assert got["autodeploy_profile"] == "from-env"
    assert got["autodeploy_provider"] == "aws"
    assert got["autodeploy_region"] == "file-region"  # not in env: the file's
    assert got["autodeploy_instance_id"] == "i-0123456789abcdef0"


def test_bad_values_left_out(salt_venv, root):
    (root / "profile").write_text(
        "PROFILE=aliyun cn-hangzhou; rm -rf /\n"
        "PROVIDER=" + "a" * 65 + "\n"
        "REGION=../../etc\n"
        "INSTANCE_ID=i-ok\n"
    )
    got, stderr = ad_grains(salt_venv, write_conf(root))
    assert "autodeploy_profile" not in got
    assert "autodeploy_provider" not in got
    assert "autodeploy_region" not in got
    assert got["autodeploy_instance_id"] == "i-ok"
    assert "autodeploy_profile from" in stderr and "is not valid" in stderr
    # an oversized file is ignored whole
    (root / "profile").write_text("PROFILE=ok\n#" + "x" * 5000 + "\n")
    got, stderr = ad_grains(salt_venv, write_conf(root))
    assert "autodeploy_profile" not in got
    assert "is over 4096 bytes" in stderr
    # grains of Salt's own still load
    grains, _ = salt_call(salt_venv, write_conf(root), "grains.item", "num_cpus")
    assert isinstance(grains["num_cpus"], int)


def test_no_profile_and_disk_path(salt_venv, root):
    got, _ = ad_grains(salt_venv, write_conf(root))  # no file, no env
    assert set(got) == {"autodeploy_disk_gb", "autodeploy_boot_id"}
    got, _ = ad_grains(salt_venv, write_conf(root, autodeploy_disk_path=str(root)))
    assert got["autodeploy_disk_gb"] == disk_gb(str(root))
    got, stderr = ad_grains(salt_venv, write_conf(root, autodeploy_disk_path=str(root / "nope")))
    assert "autodeploy_disk_gb" not in got
    assert "cannot stat filesystem" in stderr


def load_dropin(venv):
    """(drop-in as a dict, keys Salt does not know) by the venv's own YAML and option
    tables (``start_event_grains`` is only in DEFAULT_MINION_OPTS, not VALID_OPTS)."""
    code = (
        "import json, sys, yaml, salt.config\n"
        "d = yaml.safe_load(open(sys.argv[1]))\n"
        "known = set(salt.config.VALID_OPTS) | set(salt.config.DEFAULT_MINION_OPTS)\n"
        "print(json.dumps({'conf': d, 'unknown': sorted(k for k in d if k not in known)}))\n"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(DROPIN)],
                         capture_output=True, text=True, timeout=60, check=True)
    res = json.loads(out.stdout)
    return res["conf"], res["unknown"]


def test_dropin_options_and_start_event_grains(salt_venv, root):
    conf, unknown = load_dropin(salt_venv)
    assert set(unknown) <= OUR_OPTIONS, unknown
    assert conf["grains_dirs"] == ["/usr/lib/autodeploy/grains"]
    assert conf["enable_legacy_startup_events"] is False
    names = conf["start_event_grains"]
    assert len(names) == len(set(names)) and all(":" not in n for n in names)

    (root / "profile").write_text(
        "PROFILE=aliyun-cn-hangzhou\nPROVIDER=aliyun\nREGION=cn-hangzhou\nINSTANCE_ID=i-x1\n")
    cdir = write_conf(root)
    (cdir / "minion.d").mkdir()
    shutil.copy(DROPIN, cdir / "minion.d" / "autodeploy.conf")
    # the test host has no /usr/lib/autodeploy: a later drop-in points at the repo
    (cdir / "minion.d" / "zz-test.conf").write_text(json.dumps({
        "grains_dirs": [str(GRAINS_DIR)],
        "autodeploy_profile_file": str(root / "profile"),
    }) + "\n")
    grains, _ = salt_call(salt_venv, cdir, "grains.items")
    missing = [n for n in names if n not in grains]
    assert missing == [], missing
    assert grains["autodeploy_profile"] == "aliyun-cn-hangzhou"
    assert isinstance(grains["num_cpus"], int) and isinstance(grains["mem_total"], int)
    assert isinstance(grains["ip4_interfaces"], dict) and isinstance(grains["ipv4"], list)


LISTENER = r"""
import json, sys, time
import salt.config, salt.utils.event
conf, want, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
opts = salt.config.master_config(conf)
bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
print("listening", flush=True)
seen, end = [], time.time() + wait
while time.time() < end:
    ev = bus.get_event(full=True, wait=0.5)
    if ev:
        seen.append(ev)
        if ev["tag"] == want:
            end = min(end, time.time() + 2)  # a legacy minion_start would follow at once
print(json.dumps(seen, default=str), flush=True)
"""


def test_start_event_and_master_cache(salt_venv, root):
    conf, _ = load_dropin(salt_venv)
    (root / "profile").write_text(
        "PROFILE=aliyun-cn-hangzhou\nPROVIDER=aliyun\nREGION=cn-hangzhou\nINSTANCE_ID=i-e2e\n")
    extra = {k: v for k, v in conf.items() if k != "master"}
    # loopback speed: keep SaltEnv's fast sign-in; the grains settings are the drop-in's
    for key in ("acceptance_wait_time", "acceptance_wait_time_max", "random_reauth_delay",
                "recon_default", "recon_max", "recon_randomize", "auth_timeout",
                "master_alive_interval", "ping_interval"):
        extra.pop(key, None)
    extra.update(grains_dirs=[str(GRAINS_DIR)], autodeploy_profile_file=str(root / "profile"))
    with SaltEnv(root / "salt", salt_venv / "bin") as env:
        env.start_master()
        lst = subprocess.Popen(
            [str(salt_venv / "bin" / "python"), "-c", LISTENER, str(env.master_config_path),
             "salt/minion/img1/start", "90"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert lst.stdout.readline().strip() == "listening"
            time.sleep(1)  # the master registers a new subscriber a moment later
            env.start_minion("img1", extra=extra)
            env.wait_for_minion("img1", timeout=90)
            out, err = lst.communicate(timeout=120)
        finally:
            if lst.poll() is None:
                lst.kill()
                lst.wait()
        seen = json.loads(out.strip().splitlines()[-1])
        tags = [e["tag"] for e in seen]
        assert "salt/minion/img1/start" in tags, (tags, err[-1000:])
        assert "minion_start" not in tags  # enable_legacy_startup_events: False
        start = next(e["data"] for e in seen if e["tag"] == "salt/minion/img1/start")
        assert start["id"] == "img1" and start["cmd"] == "_minion_event"
        grains = start["grains"]
        assert set(grains) == set(conf["start_event_grains"]), set(conf["start_event_grains"]) ^ set(grains)
        assert grains["autodeploy_profile"] == "aliyun-cn-hangzhou"
        assert grains["autodeploy_instance_id"] == "i-e2e"
        assert grains["autodeploy_disk_gb"] == disk_gb("/")
        # the master's own data cache (written from the authenticated _pillar
        # request, before the start event) holds the same values
        cached = env.salt_run("cache.grains", tgt="img1")["img1"]
        for key in ("autodeploy_profile", "autodeploy_region", "autodeploy_instance_id",
                    "autodeploy_disk_gb", "autodeploy_boot_id", "ipv4", "num_cpus"):
            assert cached[key] == grains[key], key
