"""
autodeploy_services: what each deployed game server on this host uses.

Once per interval, one event for the whole host:

    salt/beacon/<minion id>/autodeploy_services/
    {"services": {"qq-s7": {"state": "up", "cpu": 0.48, "mem_mb": 301.2, "how": "cgroup"},
                  "qq-s8": {"state": "down", "reason": "pid 4242 (from .../run/game.pid) is not running"}},
     "count": 2, "left_out": 0}

* cpu: cores in use over the last interval (the first reading of a server has no cpu:
  a rate needs two readings); mem_mb: resident memory in MiB.
* A server whose processes are gone is reported ``down``, never as zero load.
* The deploy state (``autodeploy.gameserver``) records how to find each server in
  ``<services_dir>/<service id>.json``: ``{"id", "unit", "pid_file"}``.
  - ``unit``: the systemd unit's cgroup, when it has processes. cgroup v2:
    ``cpu.stat`` usage_usec and ``memory.stat`` anon (memory.current also counts the
    page cache, which the kernel gives back under pressure); v1: ``cpuacct.usage`` and
    ``memory.stat`` total_rss.
  - else ``pid_file``: that process and all its descendants (/proc, psutil where the
    kernel has no /proc/<pid>/task/<tid>/children), cpu from their user + system times
    (and those of reaped children), memory from their RSS.
* Bounded: at most ``max_services`` services per event (sorted by id); the rest are
  counted in ``left_out``.

This file is self-contained (minions need not have the extension installed): the state
tree serves it as ``salt://_beacons/autodeploy_services.py`` (``states/_beacons/`` links
here; the packages install the file itself) and host init syncs it with
``saltutil.sync_beacons``. Configuration (docs/usage.md):

    beacons:
      autodeploy_services:
        - interval: 60
        - services_dir: /etc/autodeploy/services.d
        - max_services: 500
"""
import json
import logging
import os
import time

try:
    import psutil

    HAS_PSUTIL = True
except ImportError:  # pragma: no cover - Salt depends on psutil
    HAS_PSUTIL = False

log = logging.getLogger(__name__)

__virtualname__ = "autodeploy_services"

DEFAULTS = {
    "services_dir": "/etc/autodeploy/services.d",
    "max_services": 500,
    "cgroup_root": "/sys/fs/cgroup",
}
MIB = 1024.0 * 1024.0

# service id -> (identity, cumulative cpu seconds, monotonic time) of the last reading:
# the cpu rate is the difference to it. Lost when the minion reloads its beacons, so
# the reading after a reload has no cpu (never a made-up one).
_LAST = {}


def __virtual__():
    return __virtualname__


def _config(config):
    conf = dict(DEFAULTS)
    if isinstance(config, dict):
        items = [config]
    else:
        items = config or []
    for item in items:
        if isinstance(item, dict):
            conf.update(item)
    return conf


def validate(config):
    """Check the beacon configuration: a list of one-key dicts."""
    if not isinstance(config, (list, dict)):
        return False, "autodeploy_services: configuration must be a list of settings"
    conf = _config(config)
    known = set(DEFAULTS) | {"interval", "disable_during_state_run", "beacon_module", "enabled"}
    for key in conf:
        if key not in known:
            return False, "autodeploy_services: unknown setting {!r} (known: {})".format(
                key, ", ".join(sorted(known)))
    for key in ("services_dir", "cgroup_root"):
        if not isinstance(conf[key], str) or not conf[key].startswith("/"):
            return False, "autodeploy_services: {} must be an absolute path".format(key)
    mx = conf["max_services"]
    if isinstance(mx, bool) or not isinstance(mx, int) or not 1 <= mx <= 2000:
        return False, "autodeploy_services: max_services must be an integer 1..2000"
    if not HAS_PSUTIL:
        return False, "autodeploy_services: psutil is not installed"
    return True, "valid"


def _read(path):
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def _stat_field(text, key):
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


def _cgroup(root, unit):
    """(identity, cpu seconds, rss bytes) of a systemd unit's cgroup, or None when the
    unit has no cgroup or no process in it."""
    if not unit or "/" in unit or unit.startswith("."):
        return None
    v2 = os.path.join(root, "system.slice", unit)
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        if not os.path.isdir(v2) or not _read(os.path.join(v2, "cgroup.procs")).strip():
            return None
        usec = _stat_field(_read(os.path.join(v2, "cpu.stat")), "usage_usec")
        anon = _stat_field(_read(os.path.join(v2, "memory.stat")), "anon")
        if usec is None or anon is None:
            return None
        return ("cgroup2:" + v2, usec / 1e6, anon)
    for cpu_ctl in ("cpuacct", "cpu,cpuacct"):
        cdir = os.path.join(root, cpu_ctl, "system.slice", unit)
        if os.path.isdir(cdir):
            break
    else:
        return None
    mdir = os.path.join(root, "memory", "system.slice", unit)
    if not _read(os.path.join(cdir, "cgroup.procs")).strip() or not os.path.isdir(mdir):
        return None
    ns = int(_read(os.path.join(cdir, "cpuacct.usage")).strip())
    rss = _stat_field(_read(os.path.join(mdir, "memory.stat")), "total_rss")
    if rss is None:
        return None
    return ("cgroup1:" + cdir, ns / 1e9, rss)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _proc_stat(pid):
    """(start time, cpu seconds incl. reaped children, rss bytes) from /proc/<pid>/stat,
    or None when the process is gone or a zombie."""
    try:
        raw = _read("/proc/{}/stat".format(pid))
    except OSError:
        return None
    f = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) ": f[0] is the state
    if f[0] in ("Z", "X"):
        return None
    utime, stime, cutime, cstime = (int(x) for x in f[11:15])
    return int(f[19]), (utime + stime + cutime + cstime) / _TICK, int(f[21]) * _PAGE


def _children(pid):
    """Direct children of pid from /proc/<pid>/task/*/children (Linux >= 3.5); None
    when the kernel does not have it."""
    try:
        tids = os.listdir("/proc/{}/task".format(pid))
    except OSError:
        return []
    kids = []
    for tid in tids:
        try:
            kids.extend(int(x) for x in _read("/proc/{}/task/{}/children".format(pid, tid)).split())
        except FileNotFoundError:
            return None
        except OSError:
            continue
    return kids


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        if kids is None:  # no children files: psutil walks the whole process table
            try:
                return [p.pid for p in psutil.Process(pid).children(recursive=True)]
            except psutil.Error:
                return []
        out.extend(kids)
        todo.extend(kids)
    return out


def _process_tree(pid_file):
    """(identity, cpu seconds, rss bytes) of the process in pid_file and all its
    descendants; raises LookupError with the reason when it is not running. Reads
    /proc directly (a few small files per process): psutil's children() reads every
    process on the host, 50 times per call with 50 servers."""
    try:
        pid = int(_read(pid_file).split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise LookupError("no pid in {} ({})".format(pid_file, exc.__class__.__name__))
    main = _proc_stat(pid)
    if main is None:
        raise LookupError("pid {} (from {}) is not running".format(pid, pid_file))
    cpu, rss = main[1], main[2]
    for kid in _descendants(pid):
        st = _proc_stat(kid)
        if st is not None:  # a child that ended meanwhile: its time moves to its parent
            cpu += st[1]
            rss += st[2]
    return "pid:{}:{}".format(pid, main[0]), cpu, rss


def _measure(rec, conf, now):
    sid = rec["id"]
    try:
        found = _cgroup(conf["cgroup_root"], rec.get("unit"))
        how = "cgroup"
    except (OSError, ValueError):
        found = None
    if found is None:
        if not rec.get("pid_file"):
            _LAST.pop(sid, None)
            return {"state": "down", "reason": "unit {} has no process and no pid_file is recorded"
                    .format(rec.get("unit"))}
        try:
            found = _process_tree(rec["pid_file"])
            how = "pid_file"
        except LookupError as exc:
            _LAST.pop(sid, None)
            return {"state": "down", "reason": str(exc)[:200]}
    ident, cpu_s, rss = found
    out = {"state": "up", "mem_mb": round(rss / MIB, 3), "how": how}
    last = _LAST.get(sid)
    if last and last[0] == ident and now > last[2] and cpu_s >= last[1]:
        out["cpu"] = round((cpu_s - last[1]) / (now - last[2]), 4)
    _LAST[sid] = (ident, cpu_s, now)
    return out


def _records(services_dir):
    recs = []
    try:
        names = sorted(n for n in os.listdir(services_dir) if n.endswith(".json"))
    except OSError:
        return recs
    for name in names:
        try:
            rec = json.loads(_read(os.path.join(services_dir, name)))
        except (OSError, ValueError) as exc:
            log.warning("autodeploy_services: %s/%s: %s", services_dir, name, exc)
            continue
        if isinstance(rec, dict) and isinstance(rec.get("id"), str) and rec["id"]:
            recs.append(rec)
    return recs


def beacon(config):
    """One event with every recorded service on this host."""
    conf = _config(config)
    recs = _records(conf["services_dir"])
    now = time.monotonic()
    services = {}
    for rec in recs[: conf["max_services"]]:
        services[rec["id"]] = _measure(rec, conf, now)
    for gone in set(_LAST) - set(services):
        _LAST.pop(gone, None)  # undeployed: forget it
    return [{"services": services, "count": len(services),
             "left_out": max(0, len(recs) - conf["max_services"])}]
