"""
The ``autodeploy`` engine: libautodeploy reading the master's event bus.

Enable it in the master config; every key under it goes to the C engine
(see autodeploy/engine.h and docs/configuration.md for the full table):

.. code-block:: yaml

    engines:
      - autodeploy:
          workers: 2
          fanout_endpoint: tcp://127.0.0.1:4520
          log_events: "salt/job/*"

``sock_dir``, ``ipc_mode``, ``tcp_master_pub_port`` and
``tcp_master_pull_port`` default to the master's own settings, so the
engine finds the bus of the master that runs it; a key given under the
engine overrides them. Unknown keys and bad values are errors, logged with
the key's name.

The C engine runs on a background thread (ctypes releases the GIL); the
engine process's main thread waits on it with a timeout so that Python
signal handlers run. SIGTERM/SIGINT (the master stopping), SystemExit,
KeyboardInterrupt, or the master process going away all stop the C engine,
wait for it and free it. Its log lines go to ``saltext.autodeploy.c.*``
loggers, i.e. to the master log.
"""

import json
import logging
import os
import signal
import threading

from saltext.autodeploy.utils import libautodeploy
from saltext.autodeploy.utils.config import engine_config, engine_entry

log = logging.getLogger(__name__)

__virtualname__ = "autodeploy"

# How often the main thread wakes up to check on the master process.
JOIN_INTERVAL = 0.5
# How long a stop may take before the handle is leaked rather than freed.
STOP_TIMEOUT = 10.0


def __virtual__():
    try:
        libautodeploy.load()
    except libautodeploy.LibraryNotFound as exc:
        reason = f"the autodeploy engine needs libautodeploy: {exc}"
        # Salt skips an engine whose __virtual__ fails without a word above
        # debug level; say it where an operator looks when it is configured.
        if engine_entry(globals().get("__opts__")) is not None:
            log.error("autodeploy engine not started: %s", reason)
        return False, reason
    return __virtualname__


class _Signals:
    """Route SIGTERM/SIGINT to ``engine.stop`` while the engine runs.

    Salt's own handler for engine processes exits on the spot
    (``os._exit``), which would skip the C shutdown. The handler here only
    records the signal and wakes the C engine (async-signal-safe); the main
    thread then does the orderly stop. Repeated signals (the master's
    process manager and a process-group kill both send one) are harmless.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, engine):
        self.engine = engine
        self.received = None
        self.previous = {}

    def _handle(self, signum, frame):  # pylint: disable=unused-argument
        if self.received is None:
            self.received = signal.Signals(signum).name
        self.engine.stop()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        else:
            log.debug("autodeploy engine not on the main thread; signals left to Salt")
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _idle():
    """Block until the master stops this process (a signal, or the master gone)."""
    stopped = threading.Event()

    def _handle(signum, frame):  # pylint: disable=unused-argument
        stopped.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _Signals.SIGNALS:
            previous[sig] = signal.signal(sig, _handle)
    parent = os.getppid()
    try:
        while not stopped.wait(JOIN_INTERVAL) and os.getppid() == parent:
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start(**kwargs):
    """Run the engine until the master stops it (Salt calls this in the engine process)."""
    config = engine_config(__opts__, kwargs)  # pylint: disable=undefined-variable
    try:
        engine = libautodeploy.Engine(config)
    except libautodeploy.AutodeployError as exc:
        if exc.code != libautodeploy.AD_ECONFIG:
            # Not the configuration: a spool disk read-only or full, no
            # memory... Salt restarts the engine (~10 s), which is what
            # recovers once the cause is gone (tests/faults/test_spool_disk.py).
            log.error("autodeploy engine not started: %s; Salt starts it again", exc)
            raise
        # A bad configuration fails the same way every time: raising would
        # have Salt log a traceback and start the engine again every ~10 s.
        # Say it once, then stay idle until the master stops (docs/runbook.md).
        log.error(
            "autodeploy engine not started: bad configuration: %s; fix the autodeploy "
            "entry under engines in the master config and restart the master "
            "(the engine stays idle until then)",
            exc,
        )
        _idle()
        return
    log.info(
        "autodeploy engine starting (pid %d, libautodeploy %s from %s, module %s)",
        os.getpid(),
        libautodeploy.version(),
        libautodeploy.library_path(),
        __file__,
    )
    parent = os.getppid()
    reason = "engine returned"
    with _Signals(engine) as signals:
        try:
            engine.start_thread()
            while not engine.join(JOIN_INTERVAL):
                if signals.received:
                    reason = signals.received
                    break
                if os.getppid() != parent:
                    reason = f"master process {parent} went away"
                    log.warning("autodeploy engine: %s, stopping", reason)
                    break
            else:
                if signals.received:
                    reason = signals.received
        except (SystemExit, KeyboardInterrupt) as exc:
            reason = type(exc).__name__
            raise
        finally:
            engine.stop()
            stopped = engine.join(STOP_TIMEOUT)
            stats = None
            if stopped:
                try:
                    stats = engine.stats()
                except Exception:  # pylint: disable=broad-except
                    pass
            engine.destroy(timeout=0 if not stopped else STOP_TIMEOUT)
            if stopped:
                log.info("autodeploy engine stopped (%s); stats %s", reason, json.dumps(stats))
            else:
                log.error("autodeploy engine did not stop within %ss (%s)", STOP_TIMEOUT, reason)
    if engine.error is not None:
        log.error("autodeploy engine failed: %s", engine.error)
        raise engine.error
