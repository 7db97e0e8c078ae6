"""`python -m aelink.measure.coder_bench --models`: old and new coder side by side on a shipped model."""

import json
from pathlib import Path

from aelink.measure.coder_bench import main

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def test_models_old_against_new(tmp_path, data_dir, capsys):
    out = tmp_path / "coder.json"
    assert main(["--models", "rd10", "--weights", str(WEIGHTS), "--data-dir", str(data_dir), "--images", "96",
                 "--batch", "32", "1", "--old-codes", "8", "--damaged", "40", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    row = report["models"]["rd10"]
    assert report["images"] == 96
    assert row["bytes_old"] == row["bytes_new"] and row["information_bytes"] < row["bytes_new"] < row["information_bytes"] + 1
    for batch in ("batch 32", "batch 1"):
        assert all(t > 0 for t in row[batch]["encode_us"] + row[batch]["decode_us"])
    assert len(row["detected"]) == 5
    for old, new in row["detected"].values():
        assert old == new and 0.5 < new <= 1  # the same verdicts: the same coder
    printed = capsys.readouterr().out
    assert "rd10: bytes/code" in printed and "us/code" in printed and "detected" in printed
