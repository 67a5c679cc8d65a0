"""Alibaba Cloud ECS ``RunInstances`` for the ``runner`` order backend.

One order becomes one ``RunInstances`` call through the official SDK
(``alibabacloud-ecs20140526``), made so that an unpaid order waits for the
partner to pay it:

* ``InstanceChargeType=PrePaid`` and ``AutoPay=false``: the cloud creates the
  order and its instances wait for payment (the console's "unpaid orders");
* ``ClientToken`` = the order's ``_id``, the idempotency key: a retry, or the
  reactor running the runner twice, returns the first order, never a second
  (the cloud keeps a token for its idempotency window);
* ``DryRun=true`` for a dry run: the cloud checks the request and answers
  ``DryRunOperation`` without ordering;
* ``InstanceType`` = the order's flavour, ``Amount`` = its count,
  ``RegionId`` = its region, and a tag ``autodeploy-order=<_id>``.

Everything else (image, network, disks, period) comes from the master's
``autodeploy_aliyun:instance`` options, then the backend's ``args``. The
AccessKey comes from the master's ``autodeploy_aliyun`` options (or the
SDK's usual ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``..._SECRET`` environment), never
from an event. Throttling, 5xx answers and broken connections are retried
with backoff inside ``timeout_s``; the same ``ClientToken`` every time.

Not run against the real cloud here: the tests use a local server that
follows the published RPC API and checks the v3 signature
(``ACS3-HMAC-SHA256``) that this SDK sends (docs/purchase.md).
"""

import os
import time

# Keys a site may not set: they are what makes the order what it is.
FIXED = ("auto_pay", "client_token", "amount", "instance_type", "dry_run", "region_id")
# Error codes worth another try (besides HTTP 5xx and no answer at all).
RETRY_CODES = ("Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable",
               "InternalError", "UnknownError", "OperationConflict", "IdempotentProcessing")
MASTER_KEY = "autodeploy_aliyun"


class OrderError(Exception):
    """A refusal to place: names the offending key or the cloud's code."""


def _sdk():
    # pylint: disable=import-outside-toplevel
    from alibabacloud_ecs20140526 import models
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi import models as openapi_models
    from alibabacloud_tea_util import models as util_models

    return Client, models, openapi_models, util_models


def available():
    """None when the SDK imports, else why not."""
    try:
        _sdk()
    except ImportError as exc:
        return f"alibabacloud-ecs20140526 is not installed ({exc})"
    return None


def settings(opts):
    """The master's ``autodeploy_aliyun`` options, checked."""
    conf = dict((opts or {}).get(MASTER_KEY) or {})
    unknown = set(conf) - {"access_key_id", "access_key_secret", "endpoint", "protocol",
                           "timeout_s", "retries", "backoff_s", "instance"}
    if unknown:
        raise OrderError(f"{MASTER_KEY}.{sorted(unknown)[0]}: unknown key")
    conf.setdefault("access_key_id", os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"))
    conf.setdefault("access_key_secret", os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET"))
    for key in ("access_key_id", "access_key_secret"):
        if not conf.get(key):
            raise OrderError(f"{MASTER_KEY}.{key}: is required (or ALIBABA_CLOUD_{key.upper()})")
    conf.setdefault("protocol", "https")
    conf.setdefault("timeout_s", 60)
    conf.setdefault("retries", 3)
    conf.setdefault("backoff_s", 1.0)
    if not isinstance(conf.get("instance") or {}, dict):
        raise OrderError(f"{MASTER_KEY}.instance: must be a mapping")
    return conf


def build_request(order, options, dry_run):
    """The ``RunInstancesRequest`` for ``order`` (a dict); OrderError naming a bad key."""
    _, models, _, _ = _sdk()
    oid, flavour, count = order.get("_id"), order.get("flavour"), order.get("count")
    if not isinstance(oid, str) or not oid or len(oid) > 64:
        raise OrderError("order._id: required, at most 64 characters (the ClientToken)")
    if not isinstance(flavour, str) or not flavour:
        raise OrderError("order.flavour: required (the instance type)")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100:
        raise OrderError("order.count: an integer 1..100 (RunInstances' Amount)")
    opts = dict(options or {})
    region = opts.pop("region_id", None) or order.get("region")
    if not region:
        raise OrderError("order.region: required (or options.region_id)")
    req = models.RunInstancesRequest(
        region_id=region, instance_type=flavour, amount=count, client_token=oid,
        auto_pay=False, dry_run=bool(dry_run), instance_charge_type="PrePaid",
        period=1, period_unit="Month",
        tag=[models.RunInstancesRequestTag(key="autodeploy-order", value=oid)],
    )
    for key, value in opts.items():
        if key in FIXED:
            raise OrderError(f"options.{key}: set by the order, not by configuration")
        if key == "instance_charge_type" and value != "PrePaid":
            raise OrderError("options.instance_charge_type: must be PrePaid (an unpaid order "
                             "needs a prepaid instance)")
        if key.startswith("_") or not hasattr(req, key) or callable(getattr(req, key)):
            raise OrderError(f"options.{key}: not a RunInstances parameter (snake_case, e.g. "
                             "image_id, security_group_id, v_switch_id, period)")
        setattr(req, key, value)
    return req


def _retryable(exc):
    status = getattr(exc, "statusCode", None) or (getattr(exc, "data", None) or {}).get(
        "statusCode")
    code = getattr(exc, "code", None) or ""
    if isinstance(status, int) and (status >= 500 or status == 429):
        return True
    if code in RETRY_CODES or str(code).startswith("Throttling"):
        return True
    # no answer at all: the SDK raises the transport's error
    return isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__name__ in (
        "RetryError", "ConnectionError", "ReadTimeout", "ConnectTimeout")


def run_instances(conf, order, options=None, dry_run=False, log=None, sleep=time.sleep):
    """Place ``order``. ``{"ok", "cloud_order_id", "instance_ids", "request_id", "error",
    "attempts", "dry_run"}``; never raises for the cloud's refusal."""
    client_cls, _, openapi_models, util_models = _sdk()
    merged = dict(conf.get("instance") or {})
    merged.update(options or {})
    try:
        req = build_request(order, merged, dry_run)
    except OrderError as exc:
        return {"ok": False, "error": str(exc), "dry_run": bool(dry_run), "attempts": 0}
    region = req.region_id
    config = openapi_models.Config(
        access_key_id=conf["access_key_id"], access_key_secret=conf["access_key_secret"],
        region_id=region, protocol=conf["protocol"],
        endpoint=conf.get("endpoint") or f"ecs.{region}.aliyuncs.com",
        read_timeout=int(conf["timeout_s"]) * 1000, connect_timeout=10000,
    )
    client = client_cls(config)
    deadline = time.monotonic() + float(conf["timeout_s"])
    backoff, attempt = float(conf["backoff_s"]), 0
    while True:
        attempt += 1
        try:
            resp = client.run_instances_with_options(req, util_models.RuntimeOptions())
            body = resp.body
            ids = list((body.instance_id_sets and body.instance_id_sets.instance_id_set) or [])
            return {"ok": True, "cloud_order_id": body.order_id, "instance_ids": ids,
                    "request_id": body.request_id, "error": None, "dry_run": bool(dry_run),
                    "attempts": attempt}
        except Exception as exc:  # pylint: disable=broad-except
            code = getattr(exc, "code", None) or type(exc).__name__
            message = getattr(exc, "message", None) or str(exc)
            if dry_run and code == "DryRunOperation":  # "validation passed with DryRun"
                return {"ok": True, "cloud_order_id": None, "instance_ids": [],
                        "error": None, "dry_run": True, "attempts": attempt}
            error = f"RunInstances: {code}: {message}"[:400]
            if not _retryable(exc) or attempt > int(conf["retries"]) or \
                    time.monotonic() + backoff > deadline:
                return {"ok": False, "cloud_order_id": None, "error": error,
                        "dry_run": bool(dry_run), "attempts": attempt}
            if log:
                log.warning("autodeploy_aliyun: order %s: try %d failed (%s), retrying in "
                            "%.1f s with the same ClientToken", order.get("_id"), attempt,
                            error, backoff)
            sleep(backoff)
            backoff *= 2
