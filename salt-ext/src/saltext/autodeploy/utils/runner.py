"""What every ``autodeploy`` runner does around its one ``ad_call``.

The runner module (``runners/autodeploy.py``) only maps its arguments to
a command's JSON; this module holds the rest, so that it is written once:

* who is calling (:func:`caller`), the name the library records as
  ``created_by`` / ``actor``;
* values as Salt hands them over (YAML from the CLI, text from salt-api form
  posts) made into JSON values (:func:`as_int`, :func:`as_bool`,
  :func:`structured`, :func:`name`, :func:`text`); judging them is the
  library's job;
* unknown arguments refused (:func:`check_kwargs`);
* whether the library is there to call (:func:`unavailable`, for ``__virtual__``);
* the call itself and its refusal (:func:`call`): a library error is
  returned as data, the C ``ad_error_t`` unchanged,
  ``{"error": message, "code": "AD_E...", "domain": ..., "retcode": 1}``,
  with the job's retcode set (docs/runners.md says why a map and not an
  exception).
"""

import json
import logging
import os
import re

from saltext.autodeploy.utils import config, libautodeploy

log = logging.getLogger(__name__)

# What Salt gives __user__ when it does not know the caller.
UNKNOWN_USERS = ("", "UNKNOWN")
_INT_TEXT = re.compile(r"^\s*-?\d+\s*$")
# The domain of a refusal made here, before the library is called.
DOMAIN = "runner"


# ------------------------------------------------------------------- caller
def peer_minion(opts):
    """The minion id when the runner was called by a minion through ``peer_run``, else None.

    ``publish.runner`` on a minion makes the master run ``salt.runner.Runner``
    with the master's options and ``id`` set to the (authenticated) minion's
    id, and ``__user__`` set to the master's own process user. The master's
    own ``id`` (``<host>_master`` by default) is not an accepted minion key,
    a peer's is.
    """
    opts = opts or {}
    mid = opts.get("id")
    pki_dir = opts.get("pki_dir")
    if not isinstance(mid, str) or not mid or not pki_dir or opts.get("__role") != "master":
        return None
    if os.path.basename(mid) != mid or mid in (".", ".."):
        return None
    return mid if os.path.isfile(os.path.join(pki_dir, "minions", mid)) else None


def caller(opts, user, kwargs=None):
    """Who is calling: ``minion:<id>`` for peer_run, Salt's ``__user__``, ``__pub_user``, the master user.

    Seen on 3006.29 and 3008.4: ``__user__`` is the eauth user through
    salt-api and ``salt-run -a``, the local user for ``salt-run``
    (``sudo_<name>`` under sudo), ``Reactor`` from a reactor SLS, and the
    master's process user for a minion's ``publish.runner`` (peer_run), hence
    the check for that first; runners get ``__pub_user`` in kwargs only from
    ``saltutil.runner`` (orchestrate's ``salt.runner``), where it equals
    ``__user__``.
    """
    opts = opts or {}
    mid = peer_minion(opts)
    if mid:
        return f"minion:{mid}"
    if isinstance(user, str) and user not in UNKNOWN_USERS:
        return user
    pub = (kwargs or {}).get("__pub_user")
    if isinstance(pub, str) and pub not in UNKNOWN_USERS:
        return pub
    return opts.get("user") or "root"


# ---------------------------------------------------------------- arguments
def refused(message, code=libautodeploy.AD_EINVAL):
    """A refusal of the runner itself, shaped as the library's."""
    return libautodeploy.AutodeployError(DOMAIN, code, DOMAIN, message)


def check_kwargs(fun, kwargs, allowed):
    """Raise for an argument ``fun`` does not take.

    Salt packs its own data into ``**kwargs`` as ``__pub_*``/``__...`` keys;
    anything else is a typo (Salt's own check is off for functions with
    ``**kwargs``, and salt-api drops unknown ones silently).
    """
    unknown = sorted(str(k) for k in kwargs if not str(k).startswith("__"))
    if unknown:
        raise refused(
            f"{unknown[0]}: unknown argument to autodeploy.{fun} "
            f"(it takes {', '.join(allowed)})"
        )


def as_bool(value):
    """A flag given as YAML (a bool) or as text (salt-api form posts)."""
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


def as_int(value):
    """Whole numbers given as text (salt-api form posts) become ints; the rest is C's to judge."""
    if isinstance(value, str) and _INT_TEXT.match(value):
        return int(value)
    return value


def given(**fields):
    """The arguments the caller gave, converted: ``name=(value, convert)``
    becomes ``{name: convert(value)}`` unless value is None (not given: the
    library applies its default and names a missing required one)."""
    return {name: convert(value) for name, (value, convert) in fields.items()
            if value is not None}


def structured(value):
    """A map or list given as JSON/YAML text (salt-api form posts) is parsed."""
    if not isinstance(value, str) or value.strip()[:1] not in ("{", "["):
        return value
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        import salt.utils.yaml  # pylint: disable=import-outside-toplevel

        return salt.utils.yaml.safe_load(value)
    except Exception:  # pylint: disable=broad-except
        return value


def name(value):
    """An id or target YAML turned into a number (``12345``) is text again."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return [name(v) for v in value]
    return value


def text(value):
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


# --------------------------------------------------------------------- call
def unavailable(module):
    """Why runner ``module`` cannot load, for its ``__virtual__``: no libautodeploy, or one
    without ``ad_call``; None when it can."""
    try:
        libautodeploy.load()
    except libautodeploy.LibraryNotFound as exc:
        return f"the {module} runner needs libautodeploy: {exc}"
    if not libautodeploy.has_call():
        return (
            f"the {module} runner needs ad_call, which the libautodeploy at "
            f"{libautodeploy.library_path()} does not have (too old)"
        )
    return None


def failed(context, exc):
    """The refusal as the runner's answer: the C error's fields, and retcode 1."""
    context["retcode"] = 1
    return {"error": exc.message, "code": exc.name, "domain": exc.domain, "retcode": 1}


def call(opts, context, command, args):
    """``ad_call(command, args)`` with the master's configuration.

    The answer, with the job's retcode 0; or :func:`failed`'s map for a
    refusal (of the library, or :func:`~config.runner_config`'s).
    """
    try:
        result = libautodeploy.call(config.runner_config(opts), command, args)
    except libautodeploy.AutodeployError as exc:
        log.info("autodeploy %s refused: %s [%s, domain %s]",
                 command, exc.message, exc.name, exc.domain)
        return failed(context, exc)
    context["retcode"] = 0
    return result
