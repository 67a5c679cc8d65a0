"""
The ``autodeploy_aliyun`` runner: place a host order on Alibaba Cloud ECS.

Run by the shipped reactor (``reactor/autodeploy_order_place.sls``) for the
``runner`` order backend with ``runner: autodeploy_aliyun.place``; it can be
run by hand too. The order is one ``RunInstances`` call with
``AutoPay=false`` (an unpaid order the partner pays), ``ClientToken`` = the
order id and ``DryRun=true`` for dry runs (``utils/aliyun.py``). The result
``{id, ok, cloud_order_id, error, dry_run}`` goes back to the engine through
the library's ``order.placed`` command, which checks it and fires the signed
``autodeploy/order/<id>/placed`` event (so it needs the master's
``autodeploy`` engine entry with its ``purchase`` object, as the backend does),
and is returned.

Master configuration::

    autodeploy_aliyun:
      access_key_id: LTAI...          # or ALIBABA_CLOUD_ACCESS_KEY_ID
      access_key_secret: ...          # or ALIBABA_CLOUD_ACCESS_KEY_SECRET
      instance:                       # RunInstances parameters, snake_case
        image_id: m-bp1...
        security_group_id: sg-bp1...
        v_switch_id: vsw-bp1...
        period: 1
        period_unit: Month

.. code-block:: bash

    salt-run autodeploy_aliyun.place order='{"_id": "aliyun-hz-20261204", "flavour":
        "ecs.g7.2xlarge", "count": 3, "region": "cn-hangzhou"}' dry_run=True
"""

import logging

from saltext.autodeploy.utils import aliyun
from saltext.autodeploy.utils import runner as _runner

log = logging.getLogger(__name__)

__virtualname__ = "autodeploy_aliyun"
__load__ = ["place"]


def __virtual__():
    why = aliyun.available()
    if why:
        return False, f"the autodeploy_aliyun runner needs the Alibaba Cloud SDK: {why}"
    why = _runner.unavailable(__virtualname__)  # it reports through order.placed
    return (False, why) if why else __virtualname__


def place(order=None, dry_run=False, options=None, report=True, **kwargs):
    """
    Order ``order["count"]`` hosts of ``order["flavour"]`` in ``order["region"]``,
    unpaid, with the order id as the ClientToken.

    order
        The order: ``_id``, ``flavour``, ``count``, ``region`` (from the event).
    dry_run
        Ask the cloud to check the request only (``DryRun=true``).
    options
        RunInstances parameters (snake_case) over the master's
        ``autodeploy_aliyun:instance``.
    report
        Report the result to the engine (default True): the ``order.placed``
        command fires the signed ``autodeploy/order/<id>/placed`` event.
        ``reported`` in the answer says whether it went; when it did not,
        ``report_error`` says why and the job's retcode is 1.
    """
    if not isinstance(order, dict):
        result = {"ok": False, "error": "order: required (a mapping with _id, flavour, count, "
                  "region)", "dry_run": bool(dry_run)}
        __context__["retcode"] = 1  # pylint: disable=undefined-variable
        return result
    try:
        conf = aliyun.settings(__opts__)  # pylint: disable=undefined-variable
    except aliyun.OrderError as exc:
        result = {"ok": False, "error": str(exc), "dry_run": bool(dry_run)}
    else:
        result = aliyun.run_instances(conf, order, options, bool(dry_run), log=log)
    result["id"] = order.get("_id")
    if report and isinstance(result["id"], str) and result["id"]:
        body = {k: result.get(k) for k in ("id", "ok", "cloud_order_id", "error", "dry_run")}
        answer = _runner.call(__opts__, __context__, "order.placed", body)  # pylint: disable=undefined-variable
        result["reported"] = bool(answer.get("fired"))
        if not result["reported"]:
            result["report_error"] = answer.get("error")
            log.error("autodeploy_aliyun: order %s: cannot report it: %s", result["id"],
                      answer.get("error"))
    if not result["ok"]:
        log.error("autodeploy_aliyun: order %s: %s", result["id"], result["error"])
        __context__["retcode"] = 1  # pylint: disable=undefined-variable
    return result
