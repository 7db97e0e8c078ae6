"""`aelink bench train` runs both sides on a tiny subset; the seed preset starts as Keras does."""

import importlib.util
import json
import math

import pytest
import torch
from torch import nn

from aelink.cli import main
from aelink.measure.bench_train import format_report, keras_missing
from aelink.training.runtime import keep_freed_memory, keras_epsilon
from aelink.training.train import Trainer, TrainOptions
from shared.codec.config import preset

HAVE_TF = importlib.util.find_spec("tensorflow") is not None


def test_bench_train_one_epoch_on_a_subset(data_dir, capsys):
    assert main(["bench", "train", "--epochs", "1", "--preset", "seed", "--train-subset", "512",
                 "--test-subset", "256", "--threads", "1", "--data-dir", str(data_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["presets"]["seed"]
    assert row["seconds"] > 0 and math.isfinite(row["val_loss"]) and row["val_psnr_of_mean_mse"] > 5
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"] == torch.__version__
    if HAVE_TF:
        (keras,) = result["keras"]
        assert keras["seconds"] > 0 and 0 < keras["val_loss"] < 1 and keras["val_psnr"] > 5
        assert result["keras_info"]["train_images"] == 512 and result["keras_skipped"] is None
    else:  # the torch side still runs, and the report says why Keras did not
        assert result["keras"] == [] and "tensorflow is not installed" in result["keras_skipped"]
    report = format_report(result)
    assert report.startswith("Machine: ") and "| seed | 1 |" in report


def test_keras_skip_reasons(tmp_path):
    assert "no such file" in keras_missing(str(tmp_path / "python"))
    if not HAVE_TF:
        pytest.skip("tensorflow is not installed here: the reason for this interpreter is checked above")
    import sys

    assert keras_missing(sys.executable) is None


def test_seed_starts_and_steps_as_keras_others_keep_he_init(tmp_path):
    seed = Trainer(preset("seed"), TrainOptions(out=tmp_path / "s", progress=False))
    convs = [m for m in seed.model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 5
    for m in convs:  # Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), zero biases
        receptive = m.weight[0, 0].numel()
        a = math.sqrt(6 / ((m.weight.shape[0] + m.weight.shape[1]) * receptive))
        assert m.weight.abs().max() <= a and m.weight.abs().max() > 0.9 * a
        assert torch.count_nonzero(m.bias) == 0
    assert seed.optimizer.param_groups[0]["eps"] == 1e-7  # Keras's Adam epsilon
    keras_epsilon(seed.optimizer, 1)  # where Keras adds it: before the bias correction of sqrt(v)
    assert seed.optimizer.param_groups[0]["eps"] == pytest.approx(1e-7 / math.sqrt(1 - 0.999))
    compact = Trainer(preset("compact16"), TrainOptions(out=tmp_path / "c", progress=False))
    first = compact.model.encoder.features[0].weight  # He normal: std sqrt(2 / fan_in), fan_in 9
    assert first.std().item() == pytest.approx(math.sqrt(2 / 9), rel=0.3)
    assert compact.optimizer.param_groups[0]["eps"] == 1e-8  # PyTorch's default, as trained


def test_freed_memory_is_kept_on_glibc():
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True


def test_bench_train_under_torchrun(data_dir, capsys):
    assert main(["bench", "train", "--epochs", "2", "--preset", "seed", "--processes", "2", "--no-keras",
                 "--train-subset", "512", "--test-subset", "128", "--data-dir", str(data_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["presets"]["seed"]  # one torchrun launch per epoch, each resuming the last
    assert [(r["epoch"], r["processes"]) for r in rows] == [(1, 2), (2, 2)]
    assert rows[1]["val_loss"] < rows[0]["val_loss"] and result["keras_skipped"] == "--no-keras"


def test_bf16_steps_learn_as_fp32_and_are_refused_for_rd(tmp_path, data_dir):
    from aelink.training.train import load_images

    losses = []
    for bf16 in (False, True):
        opts = TrainOptions(out=tmp_path / str(bf16), epochs=1, train_subset=1024, test_subset=256,
                            bf16=bf16, data_dir=str(data_dir), progress=False)
        trainer = Trainer(preset("seed"), opts)
        train_x, test_x = load_images(opts)
        losses.append(trainer.fit(train_x, test_x, lambda _: None)[0]["val_loss"])
        assert trainer.model.encoder.features[0].weight.dtype == torch.float32  # the weights stay fp32
    assert losses[0] < 0.69 and losses[1] == pytest.approx(losses[0], rel=0.02)  # ln 2 = 0.693: all outputs 0.5
    with pytest.raises(ValueError, match="bf16"):
        Trainer(preset("rd16"), TrainOptions(out=tmp_path / "rd", bf16=True))

