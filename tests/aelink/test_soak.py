"""`aelink bench soak` against the real pair: a short run passes with every answer equal to the lone
request's, and the check is real: answers compared with the wrong digits' are counted as wrong."""

from __future__ import annotations

import asyncio
import json

import pytest

from aelink.cli import main
from aelink.data.datasets import load_split
from aelink.measure.bench_serve import pair
from aelink.measure.soak import drive, lone_answers, passed
from shared.service.settings import DEFAULT_WEIGHTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_soak_short_run_passes(tmp_path, data_dir, capsys):
    out = tmp_path / "soak.json"
    argv = ["bench", "soak", "--models", "rd64", "-c", "16", "-s", "2", "--digits", "40", "--out", str(out),
            "--data-dir", str(data_dir)]
    assert main(argv) == 0
    (row,) = json.loads(out.read_text())
    assert row["model"] == "rd64" and row["clients"] == 16 and row["digits"] == 40
    assert row["returned"] > 40 and row["returned"] == row["sent"]  # every digit came back, some twice
    assert row["errors"] == row["lost"] == row["wrong_codes"] == row["wrong_images"] == 0 and passed(row)
    assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert "pass" in capsys.readouterr().out


def test_soak_counts_answers_unlike_the_lone_ones(data_dir):
    images = load_split("test", data_dir)[0][:8].copy()
    with pair("compact32", DEFAULT_WEIGHTS) as (enc, dec):
        codes, recons = lone_answers(enc.url, dec.url, images)
        assert len(set(codes)) == len(set(recons)) == 8  # eight digits, eight different answers
        shifted = (codes[1:] + codes[:1], recons[1:] + recons[:1])  # each digit expects its neighbour's
        urls = (f"{enc.url}/v1/encode", f"{dec.url}/v1/decode")
        tally = asyncio.run(drive(urls, [im.tobytes() for im in images], shifted, clients=4, seconds=0.5))
    assert tally.returned > 0 and tally.errors == 0
    assert tally.wrong_codes == tally.wrong_images == tally.returned
