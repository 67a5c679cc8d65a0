"""
The ``autodeploy`` runner: create, list, inspect and steer deploy tasks.

Each function is one call into libautodeploy (``ad_call``, JSON in, JSON
out); the task system itself lives in C and in MongoDB, and a task step
runs as a Salt job through the reactor (docs/correlation.md). docs/runners.md
has every argument, the errors and the salt-api setup.

.. code-block:: bash

    salt-run autodeploy.deploy game-01 mods=autodeploy.gameserver \\
        pillar='{"autodeploy": {"service": {"id": "svc1", "platform": "qq", "server_no": 1}}}'
    salt-run autodeploy.tasks status=running
    salt-run autodeploy.task t261127134915024835_ad3f2a1c
    salt-run autodeploy.intervene t261127134915024835_ad3f2a1c cancel reason='wrong build'

Configuration comes from the master: the ``autodeploy`` entry of
``engines`` (``mongo_uri``, ``mongo_db``...; the same entry the engine
reads), the master's bus options (``sock_dir``, ``ipc_mode``,
``tcp_master_pub_port``, ``tcp_master_pull_port``) and the master key
``<cachedir>/.<user>_key`` that signs the task events, so the runner must
run where that key is readable: as the master's user (``salt-run`` as root
or as that user), or in the master through eauth (``salt-run -a ...``,
salt-api).

Who: ``created_by`` / ``actor`` is the caller Salt names, never an argument:
the eauth user through salt-api or ``salt-run -a``, the local user for a
plain ``salt-run`` (``sudo_<name>`` under sudo), ``Reactor`` from a reactor
SLS, the orchestration's caller from ``salt.runner`` in an orchestrate SLS,
``minion:<id>`` for a minion's ``publish.runner`` (``peer_run``).

Errors: a bad argument (or any refusal of the library) returns the
library's ``ad_error_t`` as it is, ``{"error": "<argument>: <reason>",
"code": "AD_E...", "domain": "<where>", "retcode": 1}`` (domain ``runner``
when the runner itself refused), instead of raising, and sets the job's
retcode. That is what makes
``salt-run`` exit non-zero (also with ``-a``) and gives salt-api a plain
JSON body; a raised ``SaltInvocationError`` would be printed as "Passed
invalid arguments: ... Usage: <docstring>" with exit status 0 (Salt treats
it as a ``TypeError``), and any other exception as a traceback.
"""

import json

from saltext.autodeploy.utils import libautodeploy
from saltext.autodeploy.utils import runner as _runner
from saltext.autodeploy.utils import status as _status
from saltext.autodeploy.utils.runner import as_bool as _bool
from saltext.autodeploy.utils.runner import as_int as _int
from saltext.autodeploy.utils.runner import given as _given
from saltext.autodeploy.utils.runner import name as _name
from saltext.autodeploy.utils.runner import structured as _structured
from saltext.autodeploy.utils.runner import text as _text

__virtualname__ = "autodeploy"


# Salt's loader exposes every public function of a module, imported ones
# included; only these are runner commands (anything else could, for one,
# hand the MongoDB URI in the configuration to anyone allowed autodeploy.*).
__load__ = [
    "deploy", "tasks", "task", "intervene",
    "hosts", "host", "retire", "drain", "reinit",
    "platforms", "platform", "services", "service", "why", "usage", "opened", "close", "cycle", "simulate",
    "status",
    "purchase", "orders", "order", "approve", "reject", "order_cancel",
]


def __virtual__():
    why = _runner.unavailable(__virtualname__)
    return (False, why) if why else __virtualname__


# ------------------------------------------------------------------ helpers
# Salt's dunders live here; everything else is in utils/runner.py.
def _caller(kwargs=None):
    return _runner.caller(
        globals().get("__opts__"), globals().get("__user__"), kwargs
    )


def _failed(exc):
    return _runner.failed(__context__, exc)  # pylint: disable=undefined-variable


def _args(fun, kwargs, allowed):
    """The error map for an unknown argument, or None."""
    try:
        _runner.check_kwargs(fun, kwargs, allowed)
    except libautodeploy.AutodeployError as exc:
        return _failed(exc)
    return None


def _call(command, args):
    """``ad_call`` with the master's config; the answer, or the error map."""
    return _runner.call(__opts__, __context__, command, args)  # pylint: disable=undefined-variable


# ------------------------------------------------------------------ runners
def deploy(
    tgt=None,
    mods=None,
    steps=None,
    pillar=None,
    tgt_type="glob",
    timeout=1800,
    retries=0,
    backoff=60,
    reason="",
    **kwargs,
):
    """
    Create a deploy task: run state(s) on the target, with a deadline and retries.

    The task starts at once unless the target already has a running task
    (then it waits, ``queued``). Each step is one ``state.apply`` job under
    a jid chosen by the task system; watch it with ``autodeploy.task``.

    tgt
        Minion id, glob, or a list of minion ids (required).
    mods
        The state(s) to apply, a name or a list (default
        ``autodeploy.gameserver``). Give ``mods`` or ``steps``, not both.
    steps
        Several steps run in order: a list of ``{name, mods, pillar}``
        (``pillar`` optional, merged over the task's ``pillar``), 1..20.
    pillar
        Pillar override for every step (a map). It travels in the publish
        and the job cache: no secrets (docs/correlation.md).
    tgt_type
        ``glob`` (default; ``list`` when ``tgt`` is a list), ``list``,
        ``pcre``, ``grain``, ``compound`` or ``nodegroup``.
    timeout
        Seconds a step may run before it is killed and counted failed
        (1..86400, default 1800).
    retries
        How many times a failed or timed-out step is tried again (default 0;
        ``max_attempts`` = retries + 1).
    backoff
        Seconds between attempts (default 60).
    reason
        Free text for the audit trail (shown in ``task`` and ``tasks``).

    Returns ``{"task": {...}}``, the stored task document.

    CLI Examples:

    .. code-block:: bash

        salt-run autodeploy.deploy game-01 mods=autodeploy.gameserver \\
            pillar='{"autodeploy": {"service": {"id": "svc1", "platform": "qq", "server_no": 1, "port": 30001}}}' \\
            reason='open server 1'
        salt-run autodeploy.deploy '[game-01, game-02]' mods='[autodeploy.gameserver]' timeout=600 retries=2 backoff=30
        salt-run autodeploy.deploy 'game-*' steps='[{name: stop, mods: game.stop}, {name: deploy, mods: autodeploy.gameserver}]'
    """
    try:
        _runner.check_kwargs(
            "deploy",
            kwargs,
            ("tgt", "mods", "steps", "pillar", "tgt_type", "timeout", "retries", "backoff", "reason"),
        )
        tgt = _name(tgt)
        tgt_type = _text(tgt_type) if tgt_type is not None else None
        if isinstance(tgt, list) and tgt_type in (None, "", "glob"):
            tgt_type = "list"
        retries = _int(retries)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise _runner.refused(f"retries: must be a whole number >= 0 (got {retries!r})")
        args = {
            "tgt": tgt,
            "tgt_type": tgt_type or "glob",
            "timeout": _int(timeout),
            "retry": {"max_attempts": retries + 1, "backoff_s": _int(backoff)},
            "created_by": _caller(kwargs),
            "reason": _text(reason),
        }
        if tgt is None:
            del args["tgt"]  # the library names it: "tgt: required ..."
        if mods is not None:
            args["mods"] = _structured(mods)
        if steps is not None:
            args["steps"] = _structured(steps)
        if pillar is not None:
            args["pillar"] = _structured(pillar)
    except libautodeploy.AutodeployError as exc:
        return _failed(exc)
    return _call("task.deploy", args)


def tasks(status=None, since=None, limit=50, **kwargs):
    """
    List tasks, newest first.

    status
        Only tasks in this state: ``queued``, ``running``, ``paused``,
        ``succeeded``, ``failed``, ``timed_out`` or ``cancelled``.
    since
        Only tasks created at or after this time: ISO-8601 text
        (``2026-11-27T10:00:00Z``) or unix seconds.
    limit
        At most this many (default 50).

    Returns ``{"tasks": [...]}``.

    CLI Examples:

    .. code-block:: bash

        salt-run autodeploy.tasks
        salt-run autodeploy.tasks status=failed since=2026-11-27T00:00:00Z limit=10
        salt-run autodeploy.tasks status=running --out=json
    """
    refused = _args("tasks", kwargs, ("status", "since", "limit"))
    if refused:
        return refused
    return _call("task.list", _given(status=(status, _text), since=(since, _int),
                                     limit=(limit, _int)))


def task(id=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    Show one task and its job results.

    id
        The task id (``_id`` in ``deploy``'s answer).

    Returns ``{"task": {...}, "results": [...]}``: one result per minion,
    step and attempt, ``{minion, jid, step, attempt, retcode, states}``, the
    failed states first (``{id, result, comment, duration_ms, changes}``).

    CLI Examples:

    .. code-block:: bash

        salt-run autodeploy.task t261127134915024835_ad3f2a1c
        salt-run autodeploy.task t261127134915024835_ad3f2a1c --out=json
    """
    refused = _args("task", kwargs, ("id",))
    if refused:
        return refused
    args = _given(id=(id, _name))
    return _call("task.get", args)


def intervene(id=None, action=None, reason="", **kwargs):  # pylint: disable=redefined-builtin
    """
    Cancel, pause, resume or retry a task.

    id
        The task id.
    action
        ``cancel`` (kill the running step; the task ends ``cancelled``),
        ``pause`` (no new step starts; the running one finishes),
        ``resume`` (a paused task goes on) or ``retry`` (a ``failed``,
        ``timed_out`` or ``cancelled`` task runs its step again).
    reason
        Free text for the task's history.

    The request is a signed event the engine acts on; returns
    ``{"fired": true, "tag": ...}``. Watch the outcome with
    ``autodeploy.task``.

    CLI Examples:

    .. code-block:: bash

        salt-run autodeploy.intervene t261127134915024835_ad3f2a1c cancel reason='wrong build'
        salt-run autodeploy.intervene t261127134915024835_ad3f2a1c retry
    """
    refused = _args("intervene", kwargs, ("id", "action", "reason"))
    if refused:
        return refused
    return _call("task.intervene", {"reason": _text(reason), "actor": _caller(kwargs),
                                    **_given(id=(id, _name), action=(action, _text))})


# ------------------------------------------------------------- host registry
def hosts(state=None, profile=None, limit=1000, **kwargs):
    """
    List registered hosts (the CMDB's ``hosts`` collection), by key.

    state
        Only hosts in this state: ``registering``, ``initializing``, ``ready``,
        ``init_failed``, ``unreachable``, ``draining``, ``retired`` or
        ``quarantined``.
    profile
        Only hosts of this provider profile.
    limit
        At most this many (default 1000).

    Returns ``{"hosts": [...], "count": N}`` (documents without their history;
    docs/cmdb.md has the schema).

    CLI Examples:

    .. code-block:: bash

        salt-run autodeploy.hosts
        salt-run autodeploy.hosts state=ready profile=aliyun:cn-hangzhou:game-8c16g
    """
    refused = _args("hosts", kwargs, ("state", "profile", "limit"))
    if refused:
        return refused
    return _call("host.list", _given(state=(state, _text), profile=(profile, _text),
                                     limit=(limit, _int)))


def host(key=None, **kwargs):
    """
    Show one host with its history: by host key (``<profile>:<private ip>``)
    or by minion id (the live record first, then a quarantine, then retired ones).

    CLI Examples:

    .. code-block:: bash

        salt-run autodeploy.host aliyun:cn-hangzhou:game-8c16g:10.0.3.17
        salt-run autodeploy.host game-0017
    """
    refused = _args("host", kwargs, ("key",))
    if refused:
        return refused
    return _call("host.get", _given(key=(key, _name)))


def _host_args(key, reason, kwargs):
    args = {"reason": _text(reason), "actor": _caller(kwargs)}
    if key is not None:
        args["key"] = _name(key)
    return args


def retire(key=None, reason="", **kwargs):
    """
    Retire a host: it is never placed on again and stays in the CMDB as
    ``retired`` (its history kept). A quarantined minion's record can be
    retired the same way. A minion that later starts on a retired host is
    noted, not re-registered; a *new* minion at the same address takes the
    key over.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.retire aliyun:cn-hangzhou:game-8c16g:10.0.3.17 reason='returned to the cloud'
    """
    refused = _args("retire", kwargs, ("key", "reason"))
    if refused:
        return refused
    return _call("host.retire", _host_args(key, reason, kwargs))


def drain(key=None, reason="", undo=False, **kwargs):
    """
    Drain a ready host (no new services are placed on it), or ``undo=True``
    to make a draining host ready again.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.drain game-0017 reason='disk errors'
        salt-run autodeploy.drain game-0017 undo=True
    """
    refused = _args("drain", kwargs, ("key", "reason", "undo"))
    if refused:
        return refused
    return _call("host.drain", {**_host_args(key, reason, kwargs), "undo": _bool(undo)})


def reinit(key=None, reason="", **kwargs):
    """
    Run host init (``states/autodeploy/host``) again as a task, on a ready,
    init_failed or registering host. Init never re-runs by itself on a ready
    host, whatever the minion does; this is the way to ask.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.reinit game-0017
    """
    refused = _args("reinit", kwargs, ("key", "reason"))
    if refused:
        return refused
    return _call("host.reinit", _host_args(key, reason, kwargs))


# ------------------------------------------------------- platforms and services
def platforms(code=None, **kwargs):
    """
    List platforms (channels), or one with ``code``.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.platforms
    """
    refused = _args("platforms", kwargs, ("code",))
    if refused:
        return refused
    return _call("platform.list", _given(code=(code, _name)))


def platform(code=None, state=None, pillar=None, profiles=None, regions=None, footprint=None,
             reserve=None, enabled=None, first_server_no=None, port_base=None, **kwargs):
    """
    Create or change a platform (docs/placement.md has every field).

    code
        ``[A-Za-z0-9_-]``, at most 32.
    state
        The deploy state (default ``autodeploy.gameserver``).
    pillar
        Pillar template for the deploy; ``{service}``, ``{server_no}``, ``{platform}``,
        ``{host}``, ``{private_ip}``, ``{minion}`` in strings are filled in, and
        ``autodeploy:service`` always carries them.
    profiles, regions
        Hosts allowed (exact names; empty: any).
    footprint
        ``{"cpu": cores, "mem_mb": MiB}`` of one server before any is measured.
    reserve
        Reserve policy: ``window_days``, ``half_life_days``, ``burst_hours``,
        ``horizon_hours``, ``safety``, ``min``, ``max``.
    enabled
        ``False`` leaves the platform out of the cycle.
    first_server_no
        The next server number to hand out.
    port_base
        A server's port is ``port_base + server_no`` (default 10000; keep it below the
        ephemeral range host init sets, 15000-65000), unless the
        pillar template sets ``autodeploy:service:port``.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.platform qq state=autodeploy.gameserver \
            profiles='["aliyun:cn-hangzhou:game-8c16g"]' footprint='{"cpu": 2, "mem_mb": 4096}' \
            reserve='{"min": 2, "max": 20}'
    """
    refused = _args("platform", kwargs, ("code", "state", "pillar", "profiles", "regions",
                                         "footprint", "reserve", "enabled", "first_server_no",
                                         "port_base"))
    if refused:
        return refused
    args = {"actor": _caller(kwargs)}
    for key, value in (("code", _name(code)), ("state", state), ("pillar", _structured(pillar)),
                       ("profiles", _structured(profiles)), ("regions", _structured(regions)),
                       ("footprint", _structured(footprint)), ("reserve", _structured(reserve)),
                       ("first_server_no", _int(first_server_no)), ("port_base", _int(port_base))):
        if value is not None:
            args[key] = value
    if enabled is not None:
        args["enabled"] = _bool(enabled)
    return _call("platform.set", args)


def services(platform=None, state=None, limit=1000, **kwargs):  # pylint: disable=redefined-outer-name
    """
    List services (game servers): ``pending``, ``deploying``, ``deployed`` (in reserve),
    ``opened``, ``retired``, ``waiting_resources``, ``failed``.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.services platform=qq state=waiting_resources
    """
    refused = _args("services", kwargs, ("platform", "state", "limit"))
    if refused:
        return refused
    return _call("service.list", _given(platform=(platform, _name), state=(state, _text),
                                        limit=(limit, _int)))


def service(id=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    Show one service with its history and its last placement decision.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.service qq-s1001
    """
    refused = _args("service", kwargs, ("id",))
    if refused:
        return refused
    return _call("service.get", _given(id=(id, _name)))


def why(id=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    Why a service is where it is (or still waiting): the last placement decision,
    with the candidate hosts and their scores and the rejected hosts by reason.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.why qq-s1001
    """
    refused = _args("why", kwargs, ("id",))
    if refused:
        return refused
    res = _call("service.get", _given(id=(id, _name)))
    if "error" in res:
        return res
    svc = res["service"]
    return {"service": svc["_id"], "state": svc.get("state"), "host": svc.get("host"),
            "reason": svc.get("reason"), "footprint": svc.get("footprint"),
            "decision": svc.get("decision")}


def usage(id=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    Measure an opened service's usage now (the p95 of its cpu and memory over the
    first ``measure_after_hours`` after opening) from the placement's source: the
    ``autodeploy_services`` beacon's samples, or the metrics backend's per-service
    query (``placement.usage_source``, docs/usage.md); store it and show it with
    its source. The engine does the same every ``usage_refresh_s``.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.usage qq-s1001
    """
    refused = _args("usage", kwargs, ("id",))
    if refused:
        return refused
    return _call("service.usage", _given(id=(id, _name)))


def opened(id=None, at=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    Mark a deployed service opened to players (the engine acts on a signed
    ``autodeploy/service/<id>/opened`` event). Openings feed the reserve.

    at
        When it opened: unix seconds or ISO-8601 (default now).

    Minions call it through ``peer_run`` (``salt-call publish.runner autodeploy.opened
    qq-s1001``); other systems through salt-run or the salt-api webhook
    (reactor/autodeploy_opened_hook.sls).

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.opened qq-s1001
    """
    refused = _args("opened", kwargs, ("id", "at"))
    if refused:
        return refused
    return _call("service.opened", {"actor": _caller(kwargs),
                                    **_given(id=(id, _name), at=(at, _int))})


def close(id=None, reason="", **kwargs):  # pylint: disable=redefined-builtin
    """
    Retire a service (merged or closed server); it leaves the reserve and its host.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.close qq-s1001 reason='merged into qq-s1000'
    """
    refused = _args("close", kwargs, ("id", "reason"))
    if refused:
        return refused
    return _call("service.close", {"actor": _caller(kwargs), "reason": _text(reason),
                                   **_given(id=(id, _name))})


def cycle(dry_run=False, platform=None, **kwargs):  # pylint: disable=redefined-outer-name
    """
    Run one reserve/placement cycle now (the engine runs one every ``cycle_interval``).
    ``dry_run=True`` computes and reports without creating, placing or deploying.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.cycle dry_run=True
    """
    refused = _args("cycle", kwargs, ("dry_run", "platform"))
    if refused:
        return refused
    return _call("cycle.run", {"dry_run": _bool(dry_run), **_given(platform=(platform, _name))})


def simulate(input=None, path=None, csv=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    Replay a history of openings against a reserve and placement policy and a host
    fleet (docs/placement.md): hours services waited, reserve levels over time, hosts
    used and hosts to buy. Nothing is written.

    input
        The simulation input (JSON object or text), or
    path
        a JSON file on the master with it;
    csv
        optional CSV file on the master of ``platform,time`` openings added to the
        input's; read by the library's own parser, as ``autodeploy-simulate
        --openings-csv`` reads it (a header line, blank lines and ``#`` lines
        skipped).

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.simulate path=/srv/autodeploy/sim/qq-2026.json
        salt-run autodeploy.simulate path=/srv/autodeploy/sim/fleet.json csv=/srv/autodeploy/sim/openings.csv
    """
    refused = _args("simulate", kwargs, ("input", "path", "csv"))
    if refused:
        return refused
    args = {}
    try:
        if path is not None:
            try:
                args["input"] = json.loads(_read("path", path))
            except ValueError as exc:
                raise _runner.refused(f"path: {path}: not JSON: {exc}") from None
        elif input is not None:
            args["input"] = _structured(input)
        if csv is not None:
            args["csv"] = _read("csv", csv)
            args["csv_name"] = f"csv {csv}"
    except libautodeploy.AutodeployError as exc:
        return _failed(exc)
    return _call("simulate", args)


# ------------------------------------------------------------------ purchase
def purchase(dry_run=True, wait_s=30, **kwargs):
    """
    Plan today's host orders from the services waiting for resources: one
    order per profile, packed, capped, with its reasoning (docs/purchase.md).
    The engine runs this once a day at ``purchase.time``; run it by hand to
    see the plan.

    dry_run
        ``True`` (the default): print the plan and write nothing.
        ``False``: write the orders (a profile already ordered today is
        reported ``already planned``; the order id ``<profile>-<YYYYMMDD>``
        makes a rerun order nothing twice). The engine then asks for
        approval, places the order and emails the partner.

    wait_s
        How long a run that writes waits for the cycle lease (a cycle or
        another engine's run holds it for seconds); default 30. Past it the
        error names the holder.

    CLI Examples:

    .. code-block:: bash

        salt-run autodeploy.purchase
        salt-run autodeploy.purchase dry_run=False
    """
    refused = _args("purchase", kwargs, ("dry_run", "wait_s"))
    if refused:
        return refused
    return _call("purchase.run", {"dry_run": _bool(dry_run), "wait_s": _int(wait_s)})


def orders(state=None, limit=100, **kwargs):
    """
    List host orders, newest first.

    state
        Only orders in this state: ``planned``, ``awaiting_approval``,
        ``approved``, ``ordered``, ``partner_notified``, ``fulfilled``,
        ``closed``, ``rejected``, ``expired``, ``failed`` or ``cancelled``.
    limit
        At most this many (1 to 10000, default 100).

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.orders state=awaiting_approval
    """
    refused = _args("orders", kwargs, ("state", "limit"))
    if refused:
        return refused
    return _call("order.list", {"limit": _int(limit), **_given(state=(state, _text))})


def order(id=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    One host order: its state, count, plan and reasoning (services,
    packed count, lower bound, caps), arrived hosts and history.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.order aliyun-hz-c7-20261205
    """
    refused = _args("order", kwargs, ("id",))
    if refused:
        return refused
    return _call("order.get", _given(id=(id, _name)))


def approve(id=None, **kwargs):  # pylint: disable=redefined-builtin
    """
    Approve a host order that awaits approval. The request is a control
    event signed with the master key; the engine verifies it and moves the
    order (an unsigned event, e.g. from a minion, is refused and counted).
    Returns ``{"fired": true, "tag": ...}``; watch the outcome with
    ``autodeploy.order``.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.approve aliyun-hz-c7-20261205
    """
    refused = _args("approve", kwargs, ("id",))
    if refused:
        return refused
    return _call("order.approve", {"actor": _caller(kwargs), **_given(id=(id, _name))})


def reject(id=None, reason="", **kwargs):  # pylint: disable=redefined-builtin
    """
    Reject a host order that awaits approval (signed, as ``approve``).

    reason
        Required: why, for the order's history and the notices.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.reject aliyun-hz-c7-20261205 reason='merge planned tonight'
    """
    refused = _args("reject", kwargs, ("id", "reason"))
    if refused:
        return refused
    return _call("order.reject", {"reason": _text(reason), "actor": _caller(kwargs),
                                  **_given(id=(id, _name))})


def order_cancel(id=None, reason="", **kwargs):  # pylint: disable=redefined-builtin
    """
    Cancel a host order that is not placed yet (``planned``,
    ``awaiting_approval`` or ``approved``). A placed order is the partner's
    to cancel with the cloud.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.order_cancel aliyun-hz-c7-20261205 reason='bought by hand'
    """
    refused = _args("order_cancel", kwargs, ("id", "reason"))
    if refused:
        return refused
    return _call("order.cancel", {"reason": _text(reason), "actor": _caller(kwargs),
                                  **_given(id=(id, _name))})


def _read(arg, path):
    """The text of a file on the master named by argument ``arg``."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, ValueError) as exc:
        raise _runner.refused(f"{arg}: {exc}", libautodeploy.AD_EIO) from None


def status(master=None, **kwargs):
    """
    The engine's health, in one answer (docs/status.md): whether the engine is
    up (its heartbeat in MongoDB, written every ``status_interval`` seconds),
    the bus (connected, framing, events/s, matched, dropped, queue depth), the
    spool (records, bytes, oldest), returns stored, tasks by state, services by
    state per platform with the reserve target, waiting services, orders by
    state, the last cycle and its result, the cycle lease holder, and each
    notifier channel's queue and last error.

    When the engine is down (no heartbeat for 3 intervals, stopped, or never
    seen) ``engine.state`` is ``down``, ``engine.message`` says since when,
    and the answer carries ``retcode: 1`` (``salt-run`` exits non-zero), so a
    monitor can run it as it is.

    master
        Another master's engine (its id), for a master sharing the database.

    Every outputter works: ``--out=json`` and ``--out=yaml`` get the sections
    as maps; ``--out=table`` gets each section as a table.

    CLI Example:

    .. code-block:: bash

        salt-run autodeploy.status
        salt-run autodeploy.status --out=table
    """
    refused = _args("status", kwargs, ("master",))
    if refused:
        return refused
    args = _given(master=(master, _name))
    ret = _call("status", args)
    if isinstance(ret, dict) and "error" not in ret:
        down = ret["engine"]["state"] != "up"
        if __opts__.get("output") == "table":  # pylint: disable=undefined-variable
            ret = _status.as_tables(ret)
        if down:
            # salt-run's exit status comes from the answer's own retcode
            __context__["retcode"] = ret["retcode"] = 1  # pylint: disable=undefined-variable
    return ret
