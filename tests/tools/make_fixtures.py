#!/usr/bin/env python3
"""Capture real Salt master event-bus streams as test fixtures.

For each Salt venv, start a real master + minion with tests/saltenv.py,
attach tests/tools/capture_bus.py to ``master_event_pub.ipc`` and record one
raw ``<case>.bin`` per case, plus a ``<case>.json`` sidecar holding what
Salt's own Python decoding gives for each frame (the expected output of the
C decoder).  Usage (from the repo root)::

    python3 tests/tools/make_fixtures.py                      # both venvs
    python3 tests/tools/make_fixtures.py --venv .deps/venv3008 --cases ping,unicode

With a plain python it re-runs itself under each venv's python (``--worker``),
because decoding the sidecars needs ``salt.payload``.  Output goes to
``tests/data/salt<major>/`` (``--out`` to override).

Sidecar (``<case>.json``)::

    {"case", "salt_version", "source", "framing", "bytes", "sha256",
     "frames": [{"index", "offset", "size", "length_prefix", "outer_keys",
                 "head", "body_type", "tag", "ext_types", "data"}, ...]}

``offset``/``size`` locate the frame in the .bin (size includes the 4-byte
length prefix when there is one; ``length_prefix`` is its value or null).
``tag``/``data`` are ``salt.utils.event.SaltEvent.unpack(body)``, i.e.
``salt.payload.loads(data, encoding="utf-8")``, made JSON-able as follows:

* str -> string; int/float/bool/None -> number/true/false/null
* bytes (msgpack bin, or an unknown ext type) -> {"$bin": "<base64>"}
* datetime (msgpack ext 78) -> "YYYY-MM-DDTHH:MM:SS.ffffff"
* salt.defaults._Constant (ext 79) -> {"$const": [name, value]}
* list/tuple -> array
* map whose keys are all str -> object (key order as on the wire);
  any other map -> {"$map": [[key, value], ...]} in wire order
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(HERE))

import capture_bus  # noqa: E402
import saltenv  # noqa: E402

ALL_CASES = [
    "start",
    "ping",
    "state_small",
    "state_large",
    "state_fail",
    "unicode",
    "datetime",
    "odd_keys",
    "constant",
    "big_frame",
    "pull_fire",
]
MINION = "m1"
MAX_FILE = 200 * 1024


# --------------------------------------------------------------- decoding
def to_jsonable(obj):
    from salt.defaults import _Constant  # pylint: disable=import-outside-toplevel

    if isinstance(obj, (bytes, bytearray)):
        return {"$bin": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, datetime.datetime):
        return obj.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(obj, _Constant):
        return {"$const": [to_jsonable(obj.name), to_jsonable(obj.value)]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: to_jsonable(v) for k, v in obj.items()}
        return {"$map": [[to_jsonable(k), to_jsonable(v)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"unexpected type {type(obj)!r}: {obj!r}")


def detect_framing(data):
    """'length_prefixed_be32' if the stream starts with a 4-byte BE length."""
    if len(data) < 5:
        return None
    if data[0] in (0x80 + 2, 0xDE, 0xDF) or 0x80 <= data[0] <= 0x8F:
        return "raw_msgpack"
    n = int.from_bytes(data[:4], "big")
    if 0 < n <= len(data) - 4 + (1 << 24) and 0x80 <= data[4] <= 0x8F:
        return "length_prefixed_be32"
    return "unknown"


def split_frames(data, framing=None):
    """Yield (offset, size, length_prefix, payload_bytes) for complete frames.

    Returns (frames, consumed) where consumed <= len(data) is the end of the
    last complete frame.
    """
    import salt.utils.msgpack  # pylint: disable=import-outside-toplevel

    framing = framing or detect_framing(data)
    frames = []
    pos = 0
    if framing == "length_prefixed_be32":
        while pos + 4 <= len(data):
            n = int.from_bytes(data[pos : pos + 4], "big")
            if pos + 4 + n > len(data):
                break
            frames.append((pos, 4 + n, n, data[pos + 4 : pos + 4 + n]))
            pos += 4 + n
    elif framing == "raw_msgpack":
        unpacker = salt.utils.msgpack.Unpacker(raw=True, max_buffer_size=0)
        unpacker.feed(data)
        while True:
            try:
                unpacker.unpack()  # skip would not validate
            except salt.utils.msgpack.exceptions.OutOfData:
                break
            end = unpacker.tell()
            frames.append((pos, end - pos, None, data[pos:end]))
            pos = end
    return frames, pos


def _ext_codes(raw):
    import salt.utils.msgpack  # pylint: disable=import-outside-toplevel

    codes = []

    def hook(code, payload):
        if code not in codes:
            codes.append(code)
        return payload

    salt.utils.msgpack.unpackb(raw, raw=True, ext_hook=hook, strict_map_key=False)
    return codes


def decode_frame(payload):
    """Decode one msgpack frame the way a Salt event subscriber does."""
    import salt.utils.event  # pylint: disable=import-outside-toplevel
    import salt.utils.msgpack  # pylint: disable=import-outside-toplevel

    outer = salt.utils.msgpack.unpackb(payload, raw=False)
    body = outer["body"]
    body_type = "bin" if isinstance(body, bytes) else "str"
    raw_body = body if isinstance(body, bytes) else body.encode("utf-8")
    tag, data = salt.utils.event.SaltEvent.unpack(raw_body)
    _, _, mdata = raw_body.partition(b"\n\n")
    return {
        "outer_keys": list(outer.keys()),
        "head": to_jsonable(outer.get("head")),
        "body_type": body_type,
        "tag": tag,
        "ext_types": _ext_codes(mdata),
        "data": to_jsonable(data),
    }


def tags_in(data):
    """Tags of the complete frames in ``data`` (cheap, for wait predicates)."""
    frames, _ = split_frames(data)
    out = []
    for _, _, _, payload in frames:
        try:
            import salt.utils.msgpack  # pylint: disable=import-outside-toplevel

            body = salt.utils.msgpack.unpackb(payload, raw=True)[b"body"]
            out.append(body.partition(b"\n\n")[0].decode("utf-8", "replace"))
        except Exception:  # pylint: disable=broad-except
            out.append(None)
    return out


def build_sidecar(case, data, source, salt_version):
    framing = detect_framing(data)
    frames, consumed = split_frames(data, framing)
    if consumed != len(data):
        raise RuntimeError(f"{case}: {len(data) - consumed} trailing bytes not a frame")
    out = []
    for i, (off, size, prefix, payload) in enumerate(frames):
        rec = {"index": i, "offset": off, "size": size, "length_prefix": prefix}
        rec.update(decode_frame(payload))
        out.append(rec)
    return {
        "case": case,
        "salt_version": salt_version,
        "source": source,
        "framing": framing,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "frames": out,
    }


# ------------------------------------------------------------------ states
SMALL_SLS = """\
{% set d = '@WORK@/small' %}
small_dir:
  file.directory:
    - name: {{ d }}
small_file:
  file.managed:
    - name: {{ d }}/hello.txt
    - contents: "hello from autodeploy\\n"
    - require:
      - file: small_dir
small_unicode_file:
  file.managed:
    - name: {{ d }}/unicode.txt
    - contents: "开服 测试 ✓\\n"
    - require:
      - file: small_dir
small_echo:
  cmd.run:
    - name: echo small-run; echo to-stderr 1>&2
small_changes:
  test.succeed_with_changes: []
small_nochanges:
  test.succeed_without_changes: []
small_nop:
  test.nop: []
small_configurable:
  test.configurable_test_state:
    - changes: True
    - result: True
    - comment: configurable comment
small_onchanges:
  cmd.run:
    - name: echo file-changed
    - onchanges:
      - file: small_file
small_absent:
  file.absent:
    - name: {{ d }}/not-there.txt
"""

FAIL_SLS = """\
fail_ok:
  test.succeed_with_changes: []
fail_test:
  test.fail_without_changes:
    - comment: deliberate failure
fail_cmd:
  cmd.run:
    - name: echo about-to-fail; exit 3
fail_dependent:
  test.succeed_with_changes:
    - require:
      - cmd: fail_cmd
"""

ADTEST_MODULE = '''\
"""Test module for autodeploy fixtures: returns datetime objects."""
import datetime


def now():
    return {
        "fixed": datetime.datetime(2024, 1, 2, 3, 4, 5, 678901),
        "midnight": datetime.datetime(2024, 2, 29, 0, 0, 0),
        "date": datetime.date(2024, 12, 31),
        "now": datetime.datetime.now(),
        "list": [datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)],
    }
'''


def large_sls(n=100):
    lines = []
    for i in range(n):
        if i % 10 == 9:
            lines.append(f"large_cmd_{i:03d}:\n  cmd.run:\n    - name: echo large-{i}\n")
        elif i % 10 == 4:
            lines.append(f"large_nochange_{i:03d}:\n  test.succeed_without_changes: []\n")
        else:
            lines.append(f"large_state_{i:03d}:\n  test.succeed_with_changes: []\n")
    return "".join(lines)


# ------------------------------------------------------------- the capture
class Recorder:
    def __init__(self, env, out_dir, salt_version, log=print):
        self.env = env
        self.out_dir = Path(out_dir)
        self.salt_version = salt_version
        self.log = log
        self.results = {}

    def capture(self, case, action, want, timeout=90, quiet=1.0, settle=0.5):
        """Capture while running ``action``; stop once ``want(tags)`` + quiet."""
        bin_path = self.out_dir / f"{case}.bin"
        cap = capture_bus.BusCapture(self.env.event_pub_address, str(bin_path)).start()
        try:
            time.sleep(settle)  # let the master register the subscriber
            t0 = time.monotonic()
            action()
            ok = cap.wait_for(lambda b: want(tags_in(b)), timeout=timeout)
            cap.wait_quiet(quiet, timeout=10)
        finally:
            data = cap.stop()
        tags = tags_in(data)
        if not ok:
            raise RuntimeError(f"{case}: expected events not seen; tags={tags}")
        self.write(case, data, "master_event_pub.ipc")
        self.log(f"  {case}: {len(data)} bytes, {len(tags)} frames, "
                 f"{time.monotonic() - t0:.1f}s: {tags}")
        return data

    def write(self, case, data, source):
        bin_path = self.out_dir / f"{case}.bin"
        bin_path.write_bytes(data)
        side = build_sidecar(case, data, source, self.salt_version)
        (self.out_dir / f"{case}.json").write_text(
            json.dumps(side, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        for p in (bin_path, self.out_dir / f"{case}.json"):
            if p.stat().st_size > MAX_FILE:
                raise RuntimeError(f"{p} is {p.stat().st_size} bytes (> {MAX_FILE})")
        self.results[case] = {
            "bin": bin_path.name,
            "json": f"{case}.json",
            "bytes": len(data),
            "frames": len(side["frames"]),
            "framing": side["framing"],
            "source": source,
            "tags": [f["tag"] for f in side["frames"]],
            "max_frame": max((f["size"] for f in side["frames"]), default=0),
        }


def _has(tags, pred):
    return any(t is not None and pred(t) for t in tags)


def _job_ret(minion):
    return lambda t: t.startswith("salt/job/") and t.endswith(f"/ret/{minion}")


def _master_opts(env):
    import salt.config  # pylint: disable=import-outside-toplevel

    return salt.config.master_config(str(env.master_config_path))


def fire_from_python(env, tag, data):
    """Fire through Salt's own API, like an engine/runner on the master."""
    import salt.utils.event  # pylint: disable=import-outside-toplevel

    opts = _master_opts(env)
    ev = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
    try:
        if not ev.fire_event(data, tag):
            raise RuntimeError(f"fire_event({tag}) returned False")
    finally:
        ev.destroy()


def capture_pull_side(rec, env):
    """What a firing client writes to master_event_pull.ipc (fake server)."""
    import salt.utils.event  # pylint: disable=import-outside-toplevel

    tmp = Path(tempfile.mkdtemp(prefix="adpull-", dir="/tmp"))
    path = tmp / "master_event_pull.ipc"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    got = bytearray()

    def serve():
        srv.settimeout(10)
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        conn.settimeout(3)
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                got.extend(chunk)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        opts = _master_opts(env)
        opts["sock_dir"] = str(tmp)
        ev = salt.utils.event.get_master_event(opts, str(tmp), listen=False)
        try:
            ev.fire_event({"msg": "pull side", "n": 1}, "autodeploy/test/pull")
            ev.fire_event({"msg": "开服 测试 ✓", "b": b"\x00\xff"}, "autodeploy/test/pull2")
        finally:
            ev.destroy()
        th.join(10)
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    rec.write("pull_fire", bytes(got), "master_event_pull.ipc (client side, fake server)")
    rec.log(f"  pull_fire: {len(got)} bytes: {rec.results['pull_fire']['tags']}")


def run_worker(venv, out_dir, cases, keep_root=False, log_level="info"):
    import salt.version  # pylint: disable=import-outside-toplevel

    version = salt.version.__version__
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"adfix-{version}-"))
    work = root / "work"
    work.mkdir()
    print(f"[{version}] root={root} out={out_dir}", flush=True)
    timings = {}
    env = saltenv.SaltEnv(root, Path(venv) / "bin", log_level=log_level)
    try:
        env.write_state("small.sls", SMALL_SLS.replace("@WORK@", str(work)))
        env.write_state("large.sls", large_sls(100))
        env.write_state("failing.sls", FAIL_SLS)
        env.write_state("_modules/adtest.py", ADTEST_MODULE)
        t0 = time.monotonic()
        env.start_master()
        timings["master_ready_s"] = round(time.monotonic() - t0, 2)
        rec = Recorder(env, out_dir, version)
        ret = _job_ret(MINION)

        if "start" in cases:
            rec.capture(
                "start",
                lambda: env.start_minion(MINION),
                lambda tags: _has(tags, lambda t: t == f"salt/minion/{MINION}/start"),
                quiet=1.5,
            )
        else:
            env.start_minion(MINION)
        timings["minion_start_to_ping_s"] = round(env.wait_for_minion(MINION), 2)
        timings["master_start_to_ping_s"] = round(time.monotonic() - t0, 2)
        synced = env.salt(MINION, "saltutil.sync_modules")
        print(f"  synced: {synced}", flush=True)

        if "ping" in cases:
            rec.capture("ping", lambda: env.salt(MINION, "test.ping"),
                        lambda tags: _has(tags, ret))

        def state(sls, expect_rc):
            def act():
                res = env.salt_raw(MINION, "state.apply", sls, timeout=60)
                if res.json is None:
                    raise RuntimeError(f"state.apply {sls}: {res!r}")
                act.res = res
            return act

        if "state_small" in cases:
            rec.capture("state_small", state("small", 0), lambda tags: _has(tags, ret))
        if "state_large" in cases:
            rec.capture("state_large", state("large", 0), lambda tags: _has(tags, ret))
        if "state_fail" in cases:
            rec.capture("state_fail", state("failing", 2), lambda tags: _has(tags, ret))

        if "unicode" in cases:
            def uni():
                env.salt_call(MINION, "event.fire_master", '{"msg": "开服 测试 ✓"}',
                              "autodeploy/test/unicode")
                env.salt_call(MINION, "event.fire_master",
                              '{"msg": "标签也是 UTF-8", "emoji": "🚀"}',
                              "autodeploy/test/unicode/开服")
            rec.capture("unicode", uni, lambda tags: _has(
                tags, lambda t: t == "autodeploy/test/unicode/开服"))

        if "datetime" in cases:
            def dt():
                fire_from_python(env, "autodeploy/test/datetime", {
                    "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
                    "zero_us": datetime.datetime(2020, 1, 1, 0, 0, 0),
                    "date": datetime.date(2021, 3, 4),
                    "now": datetime.datetime.now(),
                    "nested": {"list": [datetime.datetime(1970, 1, 1, 0, 0, 0, 1)]},
                })
                env.salt_raw(MINION, "adtest.now")
            rec.capture("datetime", dt, lambda tags: _has(tags, ret) and _has(
                tags, lambda t: t == "autodeploy/test/datetime"))

        if "odd_keys" in cases:
            def odd():
                fire_from_python(env, "autodeploy/test/odd_keys", {
                    1: "a",
                    b"x": b"\x00\xff",
                    -5: "negative int key",
                    2.5: "float key",
                    None: "nil key",
                    "str": "plain",
                    "nested": {
                        "bin": b"\x01\x02\xfe",
                        "empty_bin": b"",
                        "list": [b"\xff", 1.5, None, True, False, -1, 2**63 - 1,
                                 -(2**63), 2**64 - 1, "", [], {}],
                        b"\xff\xfe": "non-utf8 bin key",
                        7: {b"deep": [b"\x00"]},
                    },
                    "tuple": (1, "two", b"3"),
                    "set": {"only-one"},
                })
            rec.capture("odd_keys", odd, lambda tags: _has(
                tags, lambda t: t == "autodeploy/test/odd_keys"))

        if "constant" in cases:
            def const():
                from salt.defaults import NOT_SET, _Constant  # pylint: disable=import-outside-toplevel
                fire_from_python(env, "autodeploy/test/constant", {
                    "not_set": NOT_SET,
                    "custom": _Constant("AUTODEPLOY", 42),
                    "nested": [_Constant("NESTED", {"k": "v"})],
                })
            rec.capture("constant", const, lambda tags: _has(
                tags, lambda t: t == "autodeploy/test/constant"))

        if "big_frame" in cases:
            # one ~100 KB event: bin32/str16/array16 headers, and a frame far
            # larger than one recv() / PIPE_BUF
            def big():
                fire_from_python(env, "autodeploy/test/big_frame", {
                    "lines": [f"line {i:05d} " + "x" * 80 for i in range(1100)],
                    "blob": bytes(range(256)) * 16,
                    "text": "开服 测试 ✓ " * 200,
                })
            rec.capture("big_frame", big, lambda tags: _has(
                tags, lambda t: t == "autodeploy/test/big_frame"))

        if "pull_fire" in cases:
            capture_pull_side(rec, env)

        manifest_path = out_dir / "MANIFEST.json"
        manifest = {}
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
        manifest.update({
            "salt_version": version,
            "generator": "tests/tools/make_fixtures.py",
            "json_conventions": {
                "bytes": {"$bin": "base64"},
                "datetime (ext 78)": "YYYY-MM-DDTHH:MM:SS.ffffff",
                "_Constant (ext 79)": {"$const": ["name", "value"]},
                "map with any non-str key": {"$map": [["key", "value"]]},
            },
            "timings": timings,
        })
        manifest.setdefault("cases", {}).update(rec.results)
        manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        print(f"[{version}] timings {timings}", flush=True)
    finally:
        env.cleanup()
        if not keep_root:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="capture Salt event-bus fixtures")
    ap.add_argument("--venv", action="append",
                    help="venv dir (repeatable); default: .deps/venv3006 and .deps/venv3008")
    ap.add_argument("--out", help="output dir (only with one --venv)")
    ap.add_argument("--cases", default=",".join(ALL_CASES))
    ap.add_argument("--keep-root", action="store_true")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}")

    if args.worker:
        return run_worker(args.venv[0], args.out, cases, args.keep_root, args.log_level)

    venvs = args.venv or [str(REPO / ".deps/venv3006"), str(REPO / ".deps/venv3008")]
    if args.out and len(venvs) != 1:
        ap.error("--out needs exactly one --venv")
    rc = 0
    for venv in venvs:
        py = Path(venv).resolve() / "bin" / "python"
        ver = subprocess.run(
            [str(py), "-c", "import salt.version;print(salt.version.__version__)"],
            check=True, capture_output=True, text=True).stdout.strip()
        out = args.out or str(TESTS / "data" / f"salt{ver.split('.')[0]}")
        cmd = [str(py), __file__, "--worker", "--venv", str(Path(venv).resolve()),
               "--out", out, "--cases", ",".join(cases), "--log-level", args.log_level]
        if args.keep_root:
            cmd.append("--keep-root")
        rc |= subprocess.call(cmd)
    return rc


if __name__ == "__main__":
    sys.exit(main())
