"""The speed benchmark runs and prints one row per variant (its figures are read, not asserted)."""

import json

import pytest

from aelink.cli import main


def test_bench_speed_prints_every_variant(capsys):
    assert main(["bench", "speed", "--preset", "compact16", "--steps", "1", "--repeats", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in rows] == ["fp32", "fp32-unfused", "fp32-contiguous", "fp32-intra-op", "bf16",
                                            "bf16-unfused"]
    assert [r["step_threads"] for r in rows][3] == 1
    assert all(r["s_per_epoch"] == pytest.approx(r["ms_per_step"] / 1000 * 469) for r in rows)
