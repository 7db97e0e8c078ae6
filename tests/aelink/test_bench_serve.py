"""`aelink bench serve --quick` runs end to end (real uvicorn pairs, hey) and its JSON holds every row,
with sane numbers and no errors. Figures themselves come from full runs, not from this test."""

from __future__ import annotations

import json
import shutil

import pytest

from aelink.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
TARGETS = ("compact32", "rd64", "no-op")


def test_bench_serve_quick(tmp_path, data_dir, capsys):
    if shutil.which("hey") is None:
        pytest.skip("the load generator `hey` is not installed, and `make test` could not install it"
                    " (it runs `apt-get install -y hey` when it can): aelink bench serve needs it")
    out = tmp_path / "serve.json"
    assert main(["bench", "serve", "--quick", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    rows = {(r["target"], r["half"]): r for r in result["rows"]}
    assert set(rows) == {(t, h) for t in TARGETS for h in ("encode", "decode")}
    for (target, half), r in rows.items():
        single = r["single"]
        assert single["errors"] == 0 and single["ok"] > 0, (target, half, single)
        assert set(single["statuses"]) == {"200"}
        assert 0 < single["p50_ms"] <= single["p99_ms"] < 60_000
        assert single["per_second"] > 0 and r["http_batched_per_s"] > 0 and r["single_vs_noop"] > 0
        if target != "no-op":
            assert r["in_process_per_s"] > 0 and r["batched_vs_in_process"] > 0
            assert r["batched_matches_in_process"] is True  # the service decodes as the halves do
        assert f"{target:<10} {half:<7}" in printed
    assert [t["target"] for t in result["round_trip"]] == ["compact32", "rd64"]
    floods = {f["target"]: f for f in result["healthz_under_flood"]}
    assert set(floods) == {"compact32", "rd64"}
    for f in floods.values():
        assert f["gets"] >= 1 and 0 < f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]
        assert f["flood_answers"] and all(code.startswith("4") for code in f["flood_answers"]), f
    assert "load generator: hey drove the no-op encode" in printed
