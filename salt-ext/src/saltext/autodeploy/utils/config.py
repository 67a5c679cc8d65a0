"""The configuration libautodeploy is given, computed from the master's options: here only.

Both loader modules use it: the engine (:func:`engine_config`, the
``ad_engine_t`` configuration) and the runners (:func:`runner_config`,
``ad_call``'s ``config_json``), so that a runner reaches the same MongoDB,
the same bus and the same master key as the engine.
"""

import os

from saltext.autodeploy.utils import libautodeploy

# Master options the C engine understands, passed through unless the
# engine's own config sets them.
MASTER_OPTS_KEYS = (
    "sock_dir",
    "ipc_mode",
    "tcp_master_pub_port",
    "tcp_master_pull_port",
    # host registration reads the master's own files and TCP view
    "pki_dir",
    "cachedir",
    "publish_port",
)

ENGINE_NAME = "autodeploy"


def master_key_path(opts):
    """``<cachedir>/.<user>_key``: the key the master makes for its LocalClient.

    The same rule as ``salt.utils.master.get_master_key`` and
    ``salt.daemons.masterapi.access_keys`` (3006 and 3008): the master's
    ``user`` option, ``root`` when unset. The engine signs task events with
    it, and a runner must be able to read it (docs/correlation.md).
    """
    user = (opts or {}).get("user") or "root"
    return os.path.join(opts["cachedir"], f".{user}_key")


def engine_entry(opts):
    """The ``autodeploy`` engine's entry in ``opts["engines"]`` (a dict), or None.

    ``engines`` is a list of ``{name: {options}}`` maps or bare names (or, in
    old configs, one map); an entry counts when its name, or its
    ``engine_module``, is ``autodeploy``. ``engine_module`` itself is
    dropped, as Salt drops it before starting the engine.
    """
    engines = (opts or {}).get("engines") or []
    if isinstance(engines, dict):
        engines = [{k: v} for k, v in engines.items()]
    for entry in engines:
        if isinstance(entry, dict):
            for name, conf in entry.items():
                conf = conf if isinstance(conf, dict) else {}
                if (conf.get("engine_module") or name) == ENGINE_NAME:
                    return {k: v for k, v in conf.items() if k != "engine_module"}
        elif entry == ENGINE_NAME:
            return {}
    return None


def engine_config(opts, engine_opts):
    """The C engine's configuration: master options, then the engine's own."""
    opts = opts or {}
    config = {}
    for key in MASTER_OPTS_KEYS:
        value = opts.get(key)
        if value is not None and value != "":
            config[key] = value
    cachedir = opts.get("cachedir")
    if cachedir:
        config["master_key_path"] = master_key_path(opts)
        config["spool_dir"] = os.path.join(cachedir, "autodeploy")
        # task steps count only returns the master authenticated and wrote
        # to its job cache (a minion can forge return events: jobcache.h)
        local_cache = (
            opts.get("job_cache", True)
            and not opts.get("ext_job_cache")
            and opts.get("master_job_cache", "local_cache") == "local_cache"
        )
        config["job_cache_dir"] = os.path.join(cachedir, "jobs") if local_cache else ""
        config["hash_type"] = opts.get("hash_type") or "sha256"
    # the engine's status document is keyed by it; the status runner reads
    # the one of its own master (docs/status.md)
    if opts.get("id"):
        config["master_id"] = opts["id"]
    config.update(engine_opts or {})
    return config


def runner_config(opts):
    """``ad_call``'s ``config_json``: exactly what the engine is given.

    Raises :class:`~saltext.autodeploy.utils.libautodeploy.AutodeployError`
    (``AD_ECONFIG``, domain ``config``) when the master has no engine entry.
    """
    entry = engine_entry(opts)
    if entry is None:
        raise libautodeploy.AutodeployError(
            "config", libautodeploy.AD_ECONFIG, "config",
            "config: the master has no autodeploy engine entry (engines: - autodeploy: "
            "{mongo_uri: ...}); the runner reads its settings from it",
        )
    return engine_config(opts, entry)
