"""Fixtures shared by the Python tests (real Salt masters and minions on loopback).

Settings come from the environment, as ``make check-py`` / ``check-compat``
pass them; the defaults suit a checkout where ``make deps lib tools`` ran:

* ``SALT_VENV``: venv with Salt (default ``.deps/venv3008``; ``.deps/venv3006``
  for the LTS). The ``saltext.autodeploy`` package must be installed in it
  (``pip install --no-deps -e salt-ext``, done by ``make deps``).
* ``AD_LIB``: the library under test (default ``build/libautodeploy.so``).
* ``AD_BIN``: the tools dir (default ``build/bin``).

Fixtures: ``salt_venv``, ``ad_lib``, ``ad_bin`` (Paths) and ``salt_env``, a
factory: ``salt_env(master_opts=None, **SaltEnv kwargs) -> SaltEnv``,
already entered, rooted under the test's ``tmp_path``, and cleaned up
(every daemon killed) when the test ends, pass or fail.

Socket paths: Salt prepends ``root_dir`` to ``sock_dir`` whatever its
value, so SaltEnv's fallback (a short ``/tmp`` sock dir when ``root`` is
deep) ends up as ``<root>/tmp/saltenv-*/...`` and, under pytest's deep
``tmp_path``, the master dies with "AF_UNIX path too long". So each root
is a short ``/tmp/adsalt-*`` dir and ``tmp_path/salt<N>`` a symlink to it
(SaltEnv resolves the symlink). The short dir is removed after a passing
test and kept (logs and all) after a failing one.

Daemons inherit this process's environment (SaltEnv copies ``os.environ``
when it spawns), so ``salt_env`` exports ``AD_LIB`` and prepends the
library's dir to ``LD_LIBRARY_PATH``: the master's engine process loads
exactly the library under test.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from saltenv import SaltEnv  # noqa: E402  pylint: disable=wrong-import-position

# Grains the minion puts in its salt/minion/<id>/start event (Salt's
# ``start_event_grains``; empty by default, so the event carries none).
# Custom grains passed to ``start_minion(grains=...)`` under these names
# travel too.
START_EVENT_GRAINS = [
    "id",
    "host",
    "fqdn",
    "os",
    "os_family",
    "osfinger",
    "osrelease",
    "kernel",
    "kernelrelease",
    "cpuarch",
    "num_cpus",
    "mem_total",
    "ipv4",
    "saltversion",
    "role",
    "roles",
    "env",
    "environment",
    "app",
    "autodeploy",
]


def _path_from_env(name, default):
    value = os.environ.get(name)
    path = Path(value) if value else default
    return path if path.is_absolute() else (Path.cwd() / path)


@pytest.fixture(scope="session")
def salt_venv():
    """The Salt venv (``$SALT_VENV``, default ``.deps/venv3008``)."""
    venv = _path_from_env("SALT_VENV", REPO / ".deps" / "venv3008")
    if not (venv / "bin" / "salt-master").exists():
        pytest.fail(f"no Salt venv at {venv} (run `make deps` or set SALT_VENV)")
    return venv


@pytest.fixture(scope="session")
def ad_lib():
    """The libautodeploy under test (``$AD_LIB``, default ``build/libautodeploy.so``)."""
    lib = _path_from_env("AD_LIB", REPO / "build" / "libautodeploy.so")
    if not lib.exists():
        pytest.fail(f"no libautodeploy at {lib} (run `make lib` or set AD_LIB)")
    return lib


@pytest.fixture(scope="session")
def ad_bin():
    """The tools dir (``$AD_BIN``, default ``build/bin``); not checked here."""
    return _path_from_env("AD_BIN", REPO / "build" / "bin")


@pytest.fixture
def salt_env(request, tmp_path, salt_venv, ad_lib, monkeypatch):
    """Factory: ``salt_env(master_opts=None, **kwargs) -> SaltEnv`` (entered).

    ``kwargs`` go to :class:`SaltEnv` (``log_level``, ``minion_defaults``,
    ...). Every minion's start event carries ``START_EVENT_GRAINS`` unless
    ``minion_defaults`` sets ``start_event_grains`` itself. Each call gets
    its own root (``tmp_path/salt0``, ``salt1``...); all are cleaned up at
    teardown, last first.
    """
    monkeypatch.setenv("AD_LIB", str(ad_lib))
    ld_path = os.environ.get("LD_LIBRARY_PATH")
    monkeypatch.setenv(
        "LD_LIBRARY_PATH", str(ad_lib.parent) + (os.pathsep + ld_path if ld_path else "")
    )
    envs = []
    roots = []

    def make(master_opts=None, **kwargs):
        minion_defaults = dict(kwargs.pop("minion_defaults", None) or {})
        minion_defaults.setdefault("start_event_grains", list(START_EVENT_GRAINS))
        short_root = Path(tempfile.mkdtemp(prefix="adsalt-", dir="/tmp"))
        roots.append(short_root)
        link = tmp_path / f"salt{len(envs)}"
        link.symlink_to(short_root, target_is_directory=True)
        env = SaltEnv(
            link,
            salt_venv / "bin",
            master_opts=master_opts,
            minion_defaults=minion_defaults,
            **kwargs,
        )
        envs.append(env)
        return env.__enter__()

    try:
        yield make
    finally:
        errors = []
        for env in reversed(envs):
            try:
                env.__exit__(None, None, None)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(exc)
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.passed:
            for root in roots:
                shutil.rmtree(root, ignore_errors=True)
        if errors:
            raise errors[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # pylint: disable=unused-argument
    """Keep each phase's report on the item (``item.rep_call``...) for fixtures."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def ferretdb():
    """A FerretDB (SQLite) on a free loopback port; ``.stop()``/``.start()``
    simulate an outage with the data kept."""
    from ferretdb import FerretDB  # pylint: disable=import-outside-toplevel

    db = FerretDB().start()
    try:
        yield db
    finally:
        db.cleanup()
