"""``autodeploy.status`` for Salt's ``table`` outputter.

The outputter draws only lists of rows (maps with the same keys); a map of
numbers under a key prints the key and nothing else. So for ``--out=table``
each section of the library's answer becomes a list of rows here; json and
yaml get the answer as the library gives it. Nothing is computed: only
reshaped.
"""

SECTIONS_AS_ROW = ("engine", "bus", "spool", "returns", "cycle")


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, (dict, list)):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return value


def _row(section):
    return [{k: _cell(v) for k, v in (section or {}).items()}] if section else [{"none": "-"}]


def _counts(by_state, key="state"):
    if by_state is None:
        return [{key: "(no collection)", "count": "-"}]
    return [{key: k, "count": v} for k, v in sorted(by_state.items())] or [{key: "-", "count": 0}]


def _services(services):
    if services is None:
        return [{"platform": "(no placement entry)"}]
    states = sorted({s for per in services.values() for s in per if s != "reserve_target"})
    rows = []
    for platform, per in sorted(services.items()):
        row = {"platform": platform, "reserve_target": _cell(per.get("reserve_target"))}
        row.update({s: per.get(s, 0) for s in states})
        rows.append(row)
    return rows or [{"platform": "-"}]


def _cycle(cycle):
    if not cycle:
        return [{"at": "-", "result": "no cycle yet"}]
    if cycle.get("error"):
        result = f"failed: {cycle['error']}"
    elif cycle.get("skipped"):
        result = f"skipped: lease held by {cycle['skipped']}"
    else:
        result = (f"{cycle.get('created', 0)} created, {cycle.get('placed', 0)} placed, "
                  f"{cycle.get('waiting', 0)} waiting in {cycle.get('ms', 0)} ms")
    return [{"at": cycle.get("at"), "result": result}]


def as_tables(status):
    """The status answer with every section a list of rows."""
    out = {name: _row(status.get(name)) for name in SECTIONS_AS_ROW}
    out["cycle"] = _cycle(status.get("cycle"))
    out["tasks"] = _counts(status.get("tasks"))
    out["orders"] = _counts(status.get("orders"))
    out["services"] = _services(status.get("services"))
    lease = status.get("lease") or {}
    out["fleet"] = [{
        "waiting_services": _cell(status.get("waiting")),
        "lease_holder": _cell(lease.get("holder")),
        "lease_until": _cell(lease.get("until")),
    }]
    out["notify"] = [{k: _cell(v) for k, v in ch.items()} for ch in status.get("notify") or []] or [
        {"channel": "(none configured)"}]
    return out
