"""Host grains for autodeploy registration (installed on the host image).

Salt loads this file as a custom grains module (the image puts it in the
directory that ``grains_dirs`` names, see ``packaging/minion.d/autodeploy.conf``).
It adds, when known and valid:

==========================  ======  ============================================
grain                       type    source
==========================  ======  ============================================
``autodeploy_profile``      str     ``PROFILE`` (provider profile name)
``autodeploy_provider``     str     ``PROVIDER``
``autodeploy_region``       str     ``REGION``
``autodeploy_instance_id``  str     ``INSTANCE_ID`` (the cloud's instance id)
``autodeploy_disk_gb``      int     size of the filesystem holding
                                    ``autodeploy_disk_path`` (default ``/``), GiB,
                                    rounded to the nearest integer
``autodeploy_boot_id``      str     ``/proc/sys/kernel/random/boot_id`` (new at
                                    every boot: tells a reboot from a minion
                                    restart)
==========================  ======  ============================================

Profile sources, highest first:

1. the minion's environment: ``AUTODEPLOY_PROFILE``, ``AUTODEPLOY_PROVIDER``,
   ``AUTODEPLOY_REGION``, ``AUTODEPLOY_INSTANCE_ID`` (for instance from the
   cloud's metadata through a systemd ``EnvironmentFile=``);
2. the profile file, ``autodeploy_profile_file`` in the minion config, default
   ``/etc/autodeploy/profile``, written at first boot (cloud-init) or at image
   build. Either ``KEY=VALUE`` lines (``PROFILE=``, ``PROVIDER=``, ``REGION=``,
   ``INSTANCE_ID=``; ``#`` comments, optional quotes) or one bare line that is
   the profile name.

A value that is empty, too long or has odd characters is left out (with a
warning in the minion log), never passed on: the master validates again, but
a bad value should be visible on the host too. The grains are only the host's
own claim: the master trusts none of them for identity (see
docs/registration-research.md).
"""

import logging
import os
import re

log = logging.getLogger(__name__)

DEFAULT_PROFILE_FILE = "/etc/autodeploy/profile"
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
MAX_FILE_BYTES = 4096

# grain -> (file key, environment variable, pattern)
_NAME = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
_SHORT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
FIELDS = (
    ("autodeploy_profile", "PROFILE", "AUTODEPLOY_PROFILE", _NAME),
    ("autodeploy_provider", "PROVIDER", "AUTODEPLOY_PROVIDER", _SHORT),
    ("autodeploy_region", "REGION", "AUTODEPLOY_REGION", _SHORT),
    ("autodeploy_instance_id", "INSTANCE_ID", "AUTODEPLOY_INSTANCE_ID", _NAME),
)
_BOOT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

try:
    __opts__  # noqa: B018  (set by Salt's loader)
except NameError:  # imported outside Salt (unit tests)
    __opts__ = {}


def _opt(name, default):
    try:
        value = __opts__.get(name, default)
    except AttributeError:
        return default
    return default if value in (None, "") else value


def _read_small(path):
    """The first MAX_FILE_BYTES of ``path`` as text, or None."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES:
        log.warning("autodeploy_host: %s is over %d bytes; ignored", path, MAX_FILE_BYTES)
        return None
    return data.decode("utf-8", "replace")


def _parse_profile_file(text):
    """{KEY: value} from KEY=VALUE lines, or {"PROFILE": line} for one bare line."""
    values = {}
    bare = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            key = key.strip()
            if key.startswith("export "):
                key = key[len("export "):].strip()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.upper()] = value
        else:
            bare.append(line)
    if not values and len(bare) == 1:
        values["PROFILE"] = bare[0]
    return values


def _profile_grains():
    path = _opt("autodeploy_profile_file", DEFAULT_PROFILE_FILE)
    text = _read_small(path)
    from_file = _parse_profile_file(text) if text is not None else {}
    grains = {}
    for grain, key, env, pattern in FIELDS:
        value = os.environ.get(env)
        source = env
        if value is None or value.strip() == "":
            value = from_file.get(key)
            source = f"{path}:{key}"
        if value is None:
            continue
        value = value.strip()
        if re.fullmatch(pattern, value):
            grains[grain] = value
        else:
            log.warning(
                "autodeploy_host: %s from %s is not valid (%r, want %s); left out",
                grain, source, value[:80], pattern,
            )
    return grains


def _disk_grains():
    path = _opt("autodeploy_disk_path", "/")
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError, TypeError) as exc:
        log.warning("autodeploy_host: cannot stat filesystem of %r: %s", path, exc)
        return {}
    total = st.f_blocks * st.f_frsize
    return {"autodeploy_disk_gb": int(round(total / float(1 << 30)))}


def _boot_grains():
    text = _read_small(BOOT_ID_FILE)
    if text is None:
        return {}
    value = text.strip()
    return {"autodeploy_boot_id": value} if _BOOT_ID.fullmatch(value) else {}


def autodeploy_host():
    """The autodeploy_* grains (see the module docstring). Never raises."""
    grains = {}
    for part in (_profile_grains, _disk_grains, _boot_grains):
        try:
            grains.update(part())
        except Exception:  # pylint: disable=broad-except
            log.exception("autodeploy_host: %s failed", part.__name__)
    return grains
