"""ctypes glue for libautodeploy: the only Python module that touches the C library.

Everything the Salt side needs from C goes through here: finding and
loading the shared library, the prototypes of the calls used, turning an
``ad_error_t`` into an exception, forwarding the library's log lines to
Python :mod:`logging`, :class:`Engine`, a small owner of one
``ad_engine_t``, and :func:`call`, the JSON-in/JSON-out entry point
(``ad_call``) the runners use.

Where the library is looked for, first match wins:

1. ``$AD_LIB`` (a path). When set it is the only candidate: an explicit
   setting that is wrong must fail loudly, not quietly load another copy.
2. The package directory (``saltext/autodeploy/libautodeploy.so.0``, where a
   packaged build ships it).
3. The soname ``libautodeploy.so.0`` through the dynamic loader (the
   ``ldconfig`` cache, ``LD_LIBRARY_PATH``), i.e. an installed library.

Log lines from C arrive on whatever thread the library runs (reader and
worker threads included). ctypes takes the GIL for the callback, so they go
to the logger ``saltext.autodeploy.c.<domain>`` like any Python record and
end up in the master's log file.
"""

import atexit
import ctypes
import json
import logging
import os
import threading

log = logging.getLogger(__name__)

SONAME = "libautodeploy.so.0"
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_LOGGER = "saltext.autodeploy.c"

# ad_log_level_t (syslog order) -> logging level.
AD_LOG_ERROR, AD_LOG_WARNING, AD_LOG_INFO, AD_LOG_DEBUG = 3, 4, 6, 7
LEVELS = {
    AD_LOG_ERROR: logging.ERROR,
    AD_LOG_WARNING: logging.WARNING,
    AD_LOG_INFO: logging.INFO,
    AD_LOG_DEBUG: logging.DEBUG,
}


class LibraryNotFound(OSError):
    """libautodeploy could not be loaded; ``tried`` is [(path, dlopen error)]."""

    def __init__(self, tried):
        self.tried = list(tried)
        detail = "; ".join(
            f"{path}{' ($AD_LIB)' if path == os.environ.get('AD_LIB') else ''}: {error}"
            for path, error in self.tried
        )
        super().__init__(f"cannot load libautodeploy: tried {detail}")


# The AD_E* codes the Python side uses itself (autodeploy/common.h has the table).
AD_EINVAL, AD_EIO, AD_ECONFIG = -1, -3, -13


class AutodeployError(RuntimeError):
    """A libautodeploy call failed; carries the C ``ad_error_t`` fields.

    ``code`` is the AD_E* value, ``domain`` the part of the library that
    refused (``args``, ``simulate``, ``store``...; ``runner`` for a refusal
    of the Salt runner itself), ``message`` the reason, naming the argument.
    """

    def __init__(self, call, code, domain, message):
        self.call = call
        self.code = code
        self.domain = domain
        self.message = message
        super().__init__(f"{call}: {message} [{self.name}, domain {domain or '-'}]")

    @property
    def name(self):
        """``AD_EINVAL`` style name of :attr:`code` (``ad_errname``)."""
        try:
            return errname(self.code)
        except (OSError, AttributeError):  # no library to ask
            return str(self.code)


class ad_error_t(ctypes.Structure):  # pylint: disable=invalid-name
    """Mirror of ``ad_error_t`` in autodeploy/common.h."""

    _fields_ = [
        ("code", ctypes.c_int),
        ("domain", ctypes.c_char * 16),
        ("message", ctypes.c_char * 240),
    ]

    def raise_for(self, call):
        code = self.code or -1
        message = self.message.decode("utf-8", "replace")
        if not message:
            message = strerror(code)
        raise AutodeployError(call, code, self.domain.decode("utf-8", "replace"), message)


# void (*ad_log_fn)(ad_log_level_t, const char *domain, const char *message, void *user)
AD_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)

_PROTOTYPES = {
    # name: (restype, argtypes)
    "ad_version": (ctypes.c_char_p, []),
    "ad_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "ad_errname": (ctypes.c_char_p, [ctypes.c_int]),
    "ad_global_init": (ctypes.c_int, []),
    "ad_log_set_handler": (None, [AD_LOG_FN, ctypes.c_void_p, ctypes.c_int]),
    "ad_engine_new": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.POINTER(ad_error_t)]),
    "ad_engine_run": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ad_error_t)]),
    "ad_engine_stop": (None, [ctypes.c_void_p]),
    "ad_engine_destroy": (None, [ctypes.POINTER(ctypes.c_void_p)]),
    # char * the caller frees with ad_free: keep it a raw pointer.
    "ad_engine_stats_json": (ctypes.c_void_p, [ctypes.c_void_p]),
    "ad_free": (None, [ctypes.c_void_p]),
}

# Symbols declared when present: a library without them still loads (the
# engine needs none of them); the callers check with has_symbol() / has_call().
_OPTIONAL_PROTOTYPES = {
    # char *ad_call(const char *config_json, const char *command,
    #               const char *args_json, ad_error_t *err)
    # A malloc'd JSON text (free with ad_free), or NULL with err filled.
    "ad_call": (
        ctypes.c_void_p,
        [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ad_error_t)],
    ),
}

_lock = threading.Lock()
_lib = None
_lib_path = None
_initialized = False
_handler_installed = False


def candidates():
    """The paths (or soname) :func:`load` tries, in order."""
    env = os.environ.get("AD_LIB")
    if env:
        return [env]
    found = [
        os.path.join(PACKAGE_DIR, name)
        for name in (SONAME, "libautodeploy.so")
        if os.path.exists(os.path.join(PACKAGE_DIR, name))
    ]
    return found + [SONAME]


def _declare(lib):
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)  # AttributeError: library too old / not ours
        fn.restype = restype
        fn.argtypes = argtypes
    for name, (restype, argtypes) in _OPTIONAL_PROTOTYPES.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes


def load():
    """Load the library once per process; return the ``ctypes.CDLL``.

    Raises :class:`LibraryNotFound` naming every path tried and its dlopen
    error (or the missing symbol).
    """
    global _lib, _lib_path  # pylint: disable=global-statement
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for path in candidates():
            try:
                lib = ctypes.CDLL(path)
                _declare(lib)
            except OSError as exc:
                tried.append((path, str(exc)))
                continue
            except AttributeError as exc:
                tried.append((path, f"not a usable libautodeploy: {exc}"))
                continue
            _lib, _lib_path = lib, path
            return lib
        raise LibraryNotFound(tried)


def library_path():
    """Path (or soname) the library was loaded from; None before :func:`load`."""
    return _lib_path


def version():
    return load().ad_version().decode()


def has_symbol(name):
    """True if the loaded library exports ``name`` (raises :class:`LibraryNotFound`)."""
    return hasattr(load(), name)


def has_call():
    """True if the loaded library has ``ad_call`` (what the runners need)."""
    return has_symbol("ad_call")


def strerror(code):
    return load().ad_strerror(code).decode()


def errname(code):
    return load().ad_errname(code).decode()


# ----------------------------------------------------------------- logging
_loggers = {}


def _forward(level, domain, message, user):  # pylint: disable=unused-argument
    # Runs on C threads; an exception here would only be printed by ctypes,
    # so never let one out.
    try:
        name = domain.decode("utf-8", "replace") if domain else "lib"
        logger = _loggers.get(name)
        if logger is None:
            logger = _loggers.setdefault(name, logging.getLogger(f"{C_LOGGER}.{name}"))
        pylevel = LEVELS.get(level)
        if pylevel is None:
            pylevel = logging.ERROR if level < AD_LOG_WARNING else (
                logging.WARNING if level < AD_LOG_INFO else logging.DEBUG)
        if logger.isEnabledFor(pylevel):
            logger.log(pylevel, "%s", (message or b"").decode("utf-8", "replace"))
    except Exception:  # pylint: disable=broad-except
        pass


# The C side keeps only the function pointer: this module-level reference
# is what keeps the trampoline alive for as long as the process runs.
_LOG_CALLBACK = AD_LOG_FN(_forward)


def install_log_handler():
    """Route the library's log lines to ``saltext.autodeploy.c.<domain>``.

    The C max level follows the Python logger: DEBUG lines are not even
    formatted in C unless that logger has DEBUG enabled.
    """
    global _handler_installed  # pylint: disable=global-statement
    lib = load()
    max_level = (
        AD_LOG_DEBUG if logging.getLogger(C_LOGGER).isEnabledFor(logging.DEBUG) else AD_LOG_INFO
    )
    lib.ad_log_set_handler(_LOG_CALLBACK, None, max_level)
    _handler_installed = True


def remove_log_handler():
    global _handler_installed  # pylint: disable=global-statement
    if _handler_installed and _lib is not None:
        _lib.ad_log_set_handler(AD_LOG_FN(), None, AD_LOG_INFO)  # NULL: discard
        _handler_installed = False


# A C thread still running at interpreter teardown must not call into a
# dying interpreter.
atexit.register(remove_log_handler)


def global_init():
    """``ad_global_init`` once per process, before any library thread starts."""
    global _initialized  # pylint: disable=global-statement
    lib = load()
    with _lock:
        if not _initialized:
            lib.ad_global_init()
            _initialized = True
    return lib


# ------------------------------------------------------------------ engine
class Engine:
    """One ``ad_engine_t``: new -> run (blocking) / stop -> destroy.

    ``config`` is a dict (or JSON text) with the keys of the C table in
    autodeploy/engine.h; the library rejects unknown keys and bad values
    with a message naming the key, raised here as :class:`AutodeployError`.

    :meth:`run` blocks the calling thread (the GIL is released while in C);
    :meth:`start_thread` runs it on a daemon thread instead. :meth:`stop`
    is thread-safe and safe from a Python signal handler.
    """

    def __init__(self, config):
        lib = global_init()
        install_log_handler()
        text = config if isinstance(config, str) else json.dumps(config, default=str)
        err = ad_error_t()
        handle = lib.ad_engine_new(text.encode("utf-8"), ctypes.byref(err))
        if not handle:
            err.raise_for("ad_engine_new")
        self._lib = lib
        self._handle = ctypes.c_void_p(handle)
        self._thread = None
        self._done = threading.Event()
        self._done.set()  # not running
        self.error = None  # AutodeployError from a run on start_thread()

    @property
    def closed(self):
        return self._handle is None

    def run(self):
        """Run until :meth:`stop`; raises :class:`AutodeployError` if it cannot start."""
        if self._handle is None:
            raise RuntimeError("engine already destroyed")
        err = ad_error_t()
        self._done.clear()
        try:
            rc = self._lib.ad_engine_run(self._handle, ctypes.byref(err))
        finally:
            self._done.set()
        if rc != 0:
            err.raise_for("ad_engine_run")

    def _thread_main(self):
        try:
            self.run()
        except AutodeployError as exc:
            self.error = exc

    def start_thread(self, name="autodeploy-engine"):
        """Run on a daemon thread; see :meth:`join` and :attr:`error`."""
        if self._thread is not None:
            raise RuntimeError("engine thread already started")
        self._done.clear()
        self._thread = threading.Thread(target=self._thread_main, name=name, daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout=None):
        """Wait for the run thread; True once it has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self):
        if self._handle is not None:
            self._lib.ad_engine_stop(self._handle)

    def stats(self):
        """The C counters (``ad_engine_stats_json``) as a dict."""
        if self._handle is None:
            raise RuntimeError("engine already destroyed")
        ptr = self._lib.ad_engine_stats_json(self._handle)
        if not ptr:
            raise AutodeployError("ad_engine_stats_json", -2, "engine", "no memory")
        try:
            text = ctypes.string_at(ptr)
        finally:
            self._lib.ad_free(ptr)
        return json.loads(text)

    def destroy(self, timeout=10.0):
        """Stop, wait for :meth:`run` to return, then free the engine.

        ``ad_engine_destroy`` must not race a running ``ad_engine_run``, so
        if run does not return within ``timeout`` the handle is leaked
        (and logged) rather than freed under it.
        """
        if self._handle is None:
            return
        self.stop()
        if not self._done.wait(timeout):
            log.error("libautodeploy engine did not stop within %ss; not freeing it", timeout)
            return
        if self._thread is not None:
            self._thread.join(timeout)
        self._lib.ad_engine_destroy(ctypes.byref(self._handle))
        self._handle = None

    close = destroy

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False


# -------------------------------------------------------------------- call
def _json_default(value):
    # Salt's CLI parses arguments as YAML, so a date/datetime can turn up.
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _to_json(value, what):
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise AutodeployError("ad_call", -1, "args", f"{what}: {exc}") from None


def call(config, command, args=None):
    """``ad_call(config_json, command, args_json)``: one runner command.

    ``config`` and ``args`` are dicts (or JSON text); the answer is the
    decoded JSON object. A NULL answer raises :class:`AutodeployError` with
    the C ``ad_error_t``: ``.message`` names the argument and the reason
    (``"timeout: must be 1..86400 seconds"``), ``.code`` is the AD_E* value
    (``errname(code)`` its name), ``.domain`` the C domain.

    The call blocks in C with the GIL released (it talks to MongoDB and
    fires on the master bus). ``ad_global_init`` and the log forwarding are
    set up on the first call in the process.
    """
    lib = global_init()
    if not hasattr(lib, "ad_call"):
        raise AutodeployError(
            "ad_call", -1, "lib",
            f"the libautodeploy at {library_path()} has no ad_call (too old for the runners)",
        )
    if not _handler_installed:
        install_log_handler()
    config_text = _to_json(config if config is not None else {}, "config")
    args_text = _to_json(args if args is not None else {}, "args")
    err = ad_error_t()
    ptr = lib.ad_call(
        config_text.encode("utf-8"),
        str(command).encode("utf-8"),
        args_text.encode("utf-8"),
        ctypes.byref(err),
    )
    if not ptr:
        err.raise_for("ad_call")
    try:
        text = ctypes.string_at(ptr)
    finally:
        lib.ad_free(ptr)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AutodeployError(
            "ad_call", -8, "json", f"{command}: the library answered with invalid JSON: {exc}"
        ) from None
