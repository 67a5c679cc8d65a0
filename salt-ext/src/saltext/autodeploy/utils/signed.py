"""Signed control events fired from Python: the runner side of ``bus/sign.h``.

A runner started by the reactor (``autodeploy_aliyun.place``) reports back
with a signed event, so the engine can trust it as it trusts its own::

    data = {"body": <request as compact JSON, keys sorted>,
            "sig": base64(HMAC-SHA256(key, tag + "|" + body))}

with ``key`` the exact bytes of the master key file
(:func:`saltext.autodeploy.utils.config.master_key_path`), read at every
fire because the master makes a new one at each start. The formula is the
one ``ad__fire_signed`` uses and ``ad__verify_signed`` and the reactor SLS
check; tests/test_purchase_runner.py checks the two agree on one event.
"""

import base64
import hashlib
import hmac
import json

from saltext.autodeploy.utils import config


def sign(key, tag, body):
    """base64 HMAC-SHA256 of ``tag|body`` under ``key`` (bytes)."""
    mac = hmac.new(key, f"{tag}|{body}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def signed_data(key, tag, request):
    """The event data ``{"body", "sig"}`` for ``request`` (a JSON-able dict)."""
    body = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return {"body": body, "sig": sign(key, tag, body)}


def fire_signed(opts, tag, request):
    """Fire ``tag`` on the master bus, signed with the master key. True when sent."""
    import salt.utils.event  # pylint: disable=import-outside-toplevel

    with open(config.master_key_path(opts), "rb") as f:
        key = f.read()
    data = signed_data(key, tag, request)
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as ev:
        return bool(ev.fire_event(data, tag))
