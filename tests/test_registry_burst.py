"""Start events in a burst (registry/batch.c): a real master with the engine,
FerretDB, synthetic minions (an accepted key and a data cache entry each, as
bench/bench_register.py writes them; no minion processes), start events fired
at once as after a master restart.

- every new host goes in by the bulk inserts, and the master log says how
  many (the burst line is the evidence the test waits for);
- a minion whose key (profile + address) another live minion holds, started
  in a burst, is not taken for new: its claim or host insert finds the _id
  taken and the full path quarantines it (quarantine:<id>), as one by one.

About 15-25 s (one master start, FerretDB).
"""
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bench_register as br  # noqa: E402  (the minions and events the benchmark uses)
from waiting import wait_for

N = 40


def bursts(log):
    """(new by bulk, decided one by one) summed over the burst lines so far."""
    text = log.read_text(errors="replace") if log.exists() else ""
    got = re.findall(r"burst of \d+ start events: (\d+) new hosts by bulk insert, (\d+) "
                     r"decided one by one", text)
    return sum(int(a) for a, _ in got), sum(int(b) for _, b in got)


@pytest.fixture
def burst_env(salt_env, ferretdb):
    conf = {"mongo_uri": ferretdb.uri, "stats_interval": 0,
            "registry": {"profiles": ["bench:*"], "init_state": "",
                         "reconcile_interval": 86400, "liveness_interval": 3600}}
    env = salt_env(master_opts={"engines": [{"autodeploy": conf}]}, log_level="info")
    env.start_master()
    import salt.config  # pylint: disable=import-outside-toplevel
    import salt.utils.event  # pylint: disable=import-outside-toplevel

    opts = salt.config.master_config(str(env.master_config_path))
    bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
    db = ferretdb.client()["autodeploy"]
    br.wait_consumer(bus, db["host_refusals"])
    yield env, opts, bus, db
    bus.destroy()


def test_burst_bulk_inserts_and_conflicts(burst_env):
    env, opts, bus, db = burst_env
    minions = br.make_minions(opts, N)
    for mid, g in minions.items():
        tag, data = br.start_event(mid, g)
        bus.fire_event(data, tag)
    wait_for(lambda: db["hosts"].count_documents({"state": "ready"}) >= N, f"{N} hosts ready", timeout=60)
    new, full = wait_for(lambda: bursts(env.master_log)[0] >= N and bursts(env.master_log),
                     "burst lines for every host", timeout=60)
    assert (new, full) == (N, 0), (new, full)
    assert db["host_minions"].count_documents({}) == N
    doc = db["hosts"].find_one({"minion": "m0003"})
    assert [e["what"] for e in doc["history"]][:1] == ["registered"]

    # a new minion at m0003's address (same profile): the key is m0003's
    import salt.cache  # pylint: disable=import-outside-toplevel

    g = dict(minions["m0003"], id="dup3", machine_id="f" * 32)
    bank, key, wrapped = br.cache_location("dup3")
    salt.cache.factory(opts).store(bank, key, {"grains": g, "pillar": {}} if wrapped else g)
    keys = Path(opts["pki_dir"]) / "minions"
    (keys / "dup3").write_bytes((keys / "m0003").read_bytes())
    tag, data = br.start_event("dup3", g)
    bus.fire_event(data, tag)
    q = wait_for(lambda: db["hosts"].find_one({"_id": "quarantine:dup3"}), "dup3 quarantined", timeout=60)
    assert q["state"] == "quarantined" and q["conflict_with"] == "m0003"
    assert bursts(env.master_log)[1] == full + 1  # it went the full way, one by one
    assert db["hosts"].find_one({"minion": "m0003", "state": "ready"})
    # its mapping keeps any later start on the full path
    assert db["host_minions"].find_one({"_id": "dup3"})
