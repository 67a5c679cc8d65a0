"""The headline numbers in README.md and bench/README.md are the ones in
bench/results/*.json (issue #16 item 7). No servers; well under a second."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_report():
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("doc", ["README.md", "bench/README.md"])
def test_block_matches_results(doc):
    report = load_report()
    text = (REPO / doc).read_text()
    assert report.START in text and report.END in text, f"{doc}: no generated block"
    block = text[text.index(report.START):text.index(report.END) + len(report.END)]
    assert block == report.render(), (
        f"{doc}: the headline numbers differ from bench/results/*.json; run "
        "python3 bench/report.py (make bench runs it)")


def test_every_result_file_is_quoted():
    """A new results file, or a number changed in one, shows in the block."""
    block = load_report().render()
    returns = json.loads((REPO / "bench" / "results" / "returns.json").read_text())
    for r in returns:
        assert f"| {r['ad_rps']:,.0f} |" in block, r["mix"]
    register = json.loads((REPO / "bench" / "results" / "register.json").read_text())
    assert f"{register['ready_eps']:,.1f} /s" in block
    load = json.loads((REPO / "bench" / "results" / "load.json").read_text())
    assert f"the master's acknowledged rate: {load['sustained']['achieved_rate']:,.1f} /s" in block
    assert f"{load['sustained']['lost']:,} lost" in block
    for name in ("events.json", "placement.json"):
        assert (REPO / "bench" / "results" / name).exists()


def test_a_changed_number_is_caught(tmp_path, monkeypatch):
    """The check really compares: alter one figure in a copy of the results."""
    report = load_report()
    res = tmp_path / "results"
    shutil.copytree(REPO / "bench" / "results", res)
    rows = json.loads((res / "returns.json").read_text())
    rows[0]["ad_rps"] += 1000
    (res / "returns.json").write_text(json.dumps(rows))
    before = report.render()
    monkeypatch.setattr(report, "RESULTS", res)
    assert report.render() != before
