"""The .debs from `make packages`, installed into a clean Debian 12 root.

A root from ``debootstrap --variant=minbase bookworm`` (set up like
tests/fresh/check-fresh.sh: the machine's apt sources, apt.conf.d, CA
certificates; /proc, /sys, /dev, /run and /tmp mounted, all unmounted and
every process inside killed at the end) gets the four packages with
``apt-get install ./*.deb``. Then:

- test_installed_files: the files are where docs/packages.md says (the
  beacon in the state tree a regular file, not the repository's symlink), the
  library loads by its soname from the system Python, the tools run,
  ``pkg-config autodeploy`` answers;
- test_engine_on_real_master: Salt (pip, ``salt==3008.4``, in a venv that
  sees the system's dist-packages) runs a master with the engine from the
  installed python3-saltext-autodeploy + libautodeploy0 (no AD_LIB, no
  LD_LIBRARY_PATH), a minion and FerretDB, all inside the root: the engine
  reads the job's events (its ``log_events`` line in the master log) and
  stores the test.ping return in FerretDB; with the installed state tree as
  its ``file_roots``, the minion syncs the ``autodeploy_services`` beacon
  (``saltutil.sync_beacons``, as host init does).

Needs root (debootstrap, chroot, mounts): skipped otherwise, except under
CI=true, where it fails. The packages come from $AD_PACKAGES (default
build/packages); when they are missing, `make packages-deb` builds them.
~2-4 min, most of it debootstrap, apt and pip.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from saltenv import FAST_MASTER_OPTS, FAST_MINION_OPTS, free_ports

REPO = Path(__file__).resolve().parents[1]
PKG_DIR = Path(os.environ.get("AD_PACKAGES", REPO / "build" / "packages"))
FERRETDB = Path(os.environ.get("FERRETDB", REPO / ".deps" / "bin" / "ferretdb"))
SALT_VERSION = "3008.4"
PACKAGES = ("libautodeploy0", "libautodeploy-dev", "autodeploy-tools", "python3-saltext-autodeploy")
BEACON_STATE = "usr/share/autodeploy/states/_beacons/autodeploy_services.py"
BEACON_EXT = "usr/lib/python3/dist-packages/saltext/autodeploy/beacons/autodeploy_services.py"
IN_CHROOT_ENV = [
    "env", "-i", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "DEBIAN_FRONTEND=noninteractive",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
    "PIP_DISABLE_PIP_VERSION_CHECK=1",
]


def cannot_run(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"test_packages cannot run under CI: {reason}")
    pytest.skip(reason)


def sh(*args, timeout=600, check=True, **kw):
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} -> {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def mirror():
    for src in Path("/etc/apt/sources.list.d").glob("*.sources"):
        for line in src.read_text().splitlines():
            if line.startswith("URIs:") and line.split()[1].rstrip("/").endswith("debian"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


class Root:
    """A debootstrapped root with check-fresh's mounts and teardown."""

    def __init__(self, path):
        self.path = Path(path)
        self.log = []

    def run(self, command, timeout=600, check=True):
        """Run a shell command inside the root, with a clean environment."""
        return sh("chroot", str(self.path), *IN_CHROOT_ENV, "bash", "-c", command,
                  timeout=timeout, check=check)

    def popen(self, command, log_name):
        log = open(self.path / "tmp" / log_name, "ab")  # pylint: disable=consider-using-with
        return subprocess.Popen(
            ["chroot", str(self.path), *IN_CHROOT_ENV, "bash", "-c", f"exec {command}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def mounts(self):
        out = sh("findmnt", "-n", "-l", "-o", "TARGET", check=False).stdout.splitlines()
        prefix = f"{self.path}/"
        return sorted({m for m in out if m.startswith(prefix)}, reverse=True)

    def kill_inside(self):
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                root = os.readlink(proc / "root")
            except OSError:
                continue
            if root == str(self.path) or root.startswith(f"{self.path}/"):
                try:
                    os.kill(int(proc.name), 9)
                except OSError:
                    pass

    def teardown(self):
        for _ in range(5):
            if not self.mounts():
                break
            self.kill_inside()
            for m in self.mounts():
                if sh("umount", m, check=False).returncode:
                    sh("umount", "-l", m, check=False)
            time.sleep(1)
        left = self.mounts()
        assert not left, f"mounts left under {self.path} (root kept): {left}"
        if not os.environ.get("KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)

    def setup(self):
        if self.mounts():
            self.teardown()
        shutil.rmtree(self.path, ignore_errors=True)
        t0 = time.monotonic()
        sh("debootstrap", "--variant=minbase", "--include=ca-certificates",
           "bookworm", str(self.path), mirror(), timeout=900)
        self.log.append(f"debootstrap {time.monotonic() - t0:.0f}s")
        # The machine's network setup, as check-fresh.sh copies it.
        etc = self.path / "etc"
        for f in Path("/etc/apt/sources.list.d").iterdir():
            shutil.copy2(f, etc / "apt" / "sources.list.d" / f.name)
        if Path("/etc/apt/sources.list").is_file() and Path("/etc/apt/sources.list").stat().st_size:
            shutil.copy2("/etc/apt/sources.list", etc / "apt" / "sources.list")
        else:
            (etc / "apt" / "sources.list").unlink(missing_ok=True)
        shutil.copytree("/etc/apt/apt.conf.d", etc / "apt" / "apt.conf.d", dirs_exist_ok=True)
        if Path("/usr/local/share/ca-certificates").is_dir():
            shutil.copytree("/usr/local/share/ca-certificates",
                            self.path / "usr/local/share/ca-certificates", dirs_exist_ok=True)
        for f in ("/etc/resolv.conf", "/etc/pip.conf"):
            if Path(f).is_file():
                shutil.copy2(f, etc / Path(f).name)
        sh("chroot", str(self.path), "update-ca-certificates")
        p = str(self.path)
        sh("mount", "-t", "proc", "proc", f"{p}/proc")
        sh("mount", "-t", "sysfs", "sys", f"{p}/sys")
        sh("mount", "--rbind", "/dev", f"{p}/dev")
        sh("mount", "--make-rslave", f"{p}/dev")
        sh("mount", "-t", "tmpfs", "tmpfs", f"{p}/run")
        sh("mount", "-t", "tmpfs", "tmpfs", f"{p}/tmp")


def package_files():
    debs = {}
    for name in PACKAGES:
        found = sorted(PKG_DIR.glob(f"{name}_*.deb"))
        if found:
            debs[name] = found[-1]
    return debs


@pytest.fixture(scope="module")
def root():
    if os.geteuid() != 0:
        cannot_run("needs root (debootstrap, chroot, mounts)")
    if not shutil.which("debootstrap"):
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", "debootstrap",
           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    debs = package_files()
    if len(debs) < len(PACKAGES):
        sh("make", "-C", str(REPO), "packages-deb", timeout=1800)
        debs = package_files()
    assert len(debs) == len(PACKAGES), f"missing packages in {PKG_DIR}: {debs}"

    r = Root(f"/var/tmp/autodeploy-pkgtest-{os.getpid()}")
    try:
        r.setup()
        dest = r.path / "tmp" / "debs"
        dest.mkdir()
        for deb in debs.values():
            shutil.copy2(deb, dest / deb.name)
        t0 = time.monotonic()
        r.run("apt-get update -qq && apt-get install -y -qq --no-install-recommends "
              "/tmp/debs/*.deb pkgconf python3-venv >/tmp/apt.log 2>&1 || { tail -30 /tmp/apt.log; exit 1; }",
              timeout=900)
        r.log.append(f"apt install {time.monotonic() - t0:.0f}s")
        yield r
    finally:
        print("test_packages:", ", ".join(r.log))
        r.teardown()


def test_installed_files(root):
    p = root.path
    multiarch = root.run("ls -d /usr/lib/*/libautodeploy.so.0").stdout.strip().split("/")[3]
    expected = [
        f"usr/lib/{multiarch}/libautodeploy.so.0",
        f"usr/lib/{multiarch}/libautodeploy.so",
        f"usr/lib/{multiarch}/libautodeploy.a",
        f"usr/lib/{multiarch}/pkgconfig/autodeploy.pc",
        "usr/include/autodeploy.h",
        "usr/include/autodeploy/engine.h",
        "usr/bin/autodeploy-events",
        "usr/bin/autodeploy-simulate",
        "usr/bin/autodeploy-metrics",
        "usr/share/man/man1/autodeploy-events.1.gz",
        "usr/share/man/man1/autodeploy-simulate.1.gz",
        "usr/share/man/man1/autodeploy-metrics.1.gz",
        "usr/lib/python3/dist-packages/saltext/autodeploy/engines/autodeploy.py",
        "usr/share/autodeploy/states/autodeploy/gameserver/init.sls",
        "usr/share/autodeploy/states/autodeploy/host/init.sls",
        BEACON_STATE,
        "usr/share/autodeploy/reactor/autodeploy_task.sls",
        "usr/share/autodeploy/master.d/autodeploy.conf",
        "usr/share/autodeploy/minion.d/autodeploy.conf",
        "usr/lib/autodeploy/grains/autodeploy_host.py",
    ]
    missing = [f for f in expected if not (p / f).exists()]
    # dh_compress gzips docs over 4 kB
    doc = "usr/share/doc/python3-saltext-autodeploy/packages.md"
    if not (p / doc).exists() and not (p / f"{doc}.gz").exists():
        missing.append(doc)
    assert not missing, f"not installed: {missing}"
    # salt://_beacons/autodeploy_services.py: a symlink in the repository, the file itself
    # once installed, the same bytes as the extension's beacon.
    assert not (p / BEACON_STATE).is_symlink() and (p / BEACON_STATE).is_file()
    assert (p / BEACON_STATE).read_bytes() == (p / BEACON_EXT).read_bytes() == \
        (REPO / "salt-ext/src/saltext/autodeploy/beacons/autodeploy_services.py").read_bytes()
    # The minion drop-in points grains_dirs at where the grains module is.
    assert "/usr/lib/autodeploy/grains" in (p / "usr/share/autodeploy/minion.d/autodeploy.conf").read_text()

    assert "libautodeploy.so.0" in root.run("ldconfig -p").stdout
    out = root.run("autodeploy-events --help").stdout
    assert "usage: autodeploy-events" in out
    assert "usage: autodeploy-simulate" in root.run("autodeploy-simulate --help 2>&1", check=False).stdout
    # No RPATH left from the build tree: the library comes by its soname.
    assert "/build" not in root.run("ldd /usr/bin/autodeploy-events").stdout

    probe = ("import json, saltext.autodeploy as m; from saltext.autodeploy.utils import libautodeploy as l; "
             "l.load(); print(json.dumps({'pkg': m.__file__, 'lib': l.library_path(), 'version': l.version()}))")
    info = json.loads(root.run(f'python3 -c "{probe}"').stdout)
    assert info["pkg"].startswith("/usr/lib/python3/dist-packages/saltext/autodeploy/")
    assert info["lib"] == "libautodeploy.so.0"  # through the dynamic loader, not a copy
    assert info["version"]

    flags = root.run("pkg-config --cflags --libs autodeploy").stdout
    assert "-lautodeploy" in flags


def test_engine_on_real_master(root):
    if not FERRETDB.exists():
        cannot_run(f"{FERRETDB} missing: run `make deps`")
    try:
        import pymongo  # pylint: disable=import-outside-toplevel
    except ImportError:
        cannot_run("pymongo is not installed in the Python running pytest")
    t0 = time.monotonic()
    # Salt 3008 needs timelib, which PyPI has only as an sdist (a C build):
    # wheels this machine's pip already built are offered first, and only
    # without them does the root get a compiler.
    wheels = root.path / "tmp" / "wheels"
    wheels.mkdir()
    for whl in Path(os.path.expanduser("~/.cache/pip/wheels")).rglob("*.whl"):
        if not whl.name.startswith("saltext"):
            shutil.copy2(whl, wheels / whl.name)
    if not any(wheels.glob("timelib-*.whl")):
        root.run("apt-get install -y -qq --no-install-recommends gcc libc6-dev python3-dev >/dev/null")
    root.run(f"python3 -m venv --system-site-packages /opt/salt && "
             f"/opt/salt/bin/pip install -q --find-links /tmp/wheels 'salt=={SALT_VERSION}' >/tmp/pip.log 2>&1 "
             f"|| {{ tail -30 /tmp/pip.log; exit 1; }}", timeout=900)
    root.log.append(f"pip install salt {time.monotonic() - t0:.0f}s")
    # The venv sees the packaged extension, not a copy of its own.
    where = root.run("/opt/salt/bin/python -c 'import saltext.autodeploy as m; print(m.__file__)'").stdout
    assert where.startswith("/usr/lib/python3/dist-packages/"), where

    shutil.copy2(FERRETDB, root.path / "usr/local/bin/ferretdb")
    publish_port, ret_port, mongo_port = free_ports(3)
    (root.path / "var/lib/ferretdb").mkdir(parents=True, exist_ok=True)
    root.popen(f"ferretdb -listen-addr 127.0.0.1:{mongo_port} -sqlite-url file:/var/lib/ferretdb/ "
               "-log-level warn", "ferretdb.log")

    master = dict(FAST_MASTER_OPTS)
    master.update({
        "interface": "127.0.0.1", "publish_port": publish_port, "ret_port": ret_port,
        "user": "root", "auto_accept": True, "log_level_logfile": "info",
        "file_roots": {"base": ["/usr/share/autodeploy/states"]},  # as docs/packages.md says
        "engines": [{"autodeploy": {
            "mongo_uri": f"mongodb://127.0.0.1:{mongo_port}/",
            "spool_dir": "/var/cache/salt/master/autodeploy",
            "log_events": "salt/job/*", "batch_ms": 20, "store_retry_ms": 200,
        }}],
    })
    minion = dict(FAST_MINION_OPTS)
    minion.update({"id": "pkg-m1", "master": "127.0.0.1", "master_port": ret_port,
                   "publish_port": publish_port, "user": "root"})
    conf = root.path / "etc/salt"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "master").write_text(json.dumps(master))  # JSON is YAML
    (conf / "minion").write_text(json.dumps(minion))
    root.popen("/opt/salt/bin/salt-master -c /etc/salt -l warning", "master.console.log")
    root.popen("/opt/salt/bin/salt-minion -c /etc/salt -l warning", "minion.console.log")

    master_log = root.path / "var/log/salt/master"
    pinged, deadline = None, time.monotonic() + 120
    while time.monotonic() < deadline:
        res = root.run("/opt/salt/bin/salt -c /etc/salt pkg-m1 test.ping --out=json -t 10", check=False)
        if '"pkg-m1": true' in res.stdout:
            pinged = res.stdout
            break
        time.sleep(1)
    tail = master_log.read_text()[-3000:] if master_log.exists() else "(no master log)"
    assert pinged, f"minion never answered test.ping; master log:\n{tail}"

    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{mongo_port}/", serverSelectionTimeoutMS=5000)
    coll = client["autodeploy"]["returns"]
    doc, deadline = None, time.monotonic() + 30
    while doc is None and time.monotonic() < deadline:
        doc = coll.find_one({"minion": "pkg-m1", "fun": "test.ping"})
        time.sleep(0.2)
    log_text = master_log.read_text() if master_log.exists() else ""
    assert doc is not None, f"test.ping return not stored; master log:\n{log_text[-3000:]}"
    assert doc["return"] is True and doc["retcode"] == 0
    assert doc["_id"] == f"{doc['jid']}/pkg-m1"
    # The engine read the job's events itself (log_events: salt/job/*).
    assert f"salt/job/{doc['jid']}/ret/pkg-m1" in log_text, log_text[-3000:]

    # The installed state tree serves the beacon as host init syncs it.
    res = root.run("/opt/salt/bin/salt -c /etc/salt pkg-m1 saltutil.sync_beacons --out=json -t 60",
                   check=False)
    assert json.loads(res.stdout or "{}").get("pkg-m1") == ["beacons.autodeploy_services"], \
        f"{res.stdout}\n{res.stderr}"
