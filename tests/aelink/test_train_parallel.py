"""Training under torchrun: two processes (DistributedDataParallel, gloo) give the weights one process
gives with the same global batch and seed, and resume from the checkpoint the first one writes."""

import json
import os
import sys

import pytest
import torch

from aelink.measure.bench_train import launch
from aelink.training.train import Trainer, TrainOptions, load_images
from shared.codec.config import preset

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 2,000 images in batches of 128: 15 full batches and one of 80, 40 for each process
SMALL = dict(train_subset=2000, test_subset=200, batch_size=128)


def torchrun(out, data_dir, epochs, *extra):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "aelink.cli", "train", "--preset", "seed", "--epochs", str(epochs), "--out", str(out),
           "--train-subset", "2000", "--test-subset", "200", "--batch-size", "128", "--no-progress",
           "--data-dir", str(data_dir), "--no-bf16", *extra]
    done = launch(cmd, {**os.environ, "PYTHONPATH": ROOT}, timeout=300)  # as `aelink bench train` launches
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def weights(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)["model"]


def assert_close(a, b, start):
    """Equal up to float rounding. Sums run in another order (two halves of each batch, then an
    all-reduce), and Adam's update of a weight whose gradient is near zero amplifies that: measured, a
    few weights differ by up to 1.4e-4 after 32 steps. So: no weight by a whole Adam step (~1e-3), and
    all together by under 1% of how far training moved them; a wrong shard, batch or resume moves
    them by about as much as training does."""
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-3, k
    off = sum(((a[k] - b[k]) ** 2).sum() for k in a) ** 0.5
    moved = sum(((b[k] - start[k]) ** 2).sum() for k in a) ** 0.5
    assert off < 0.01 * moved, f"weights differ by {off:.3g}; training moved them {moved:.3g}"


def test_two_processes_match_one_and_resume(tmp_path, data_dir):
    # one process: the weights after epoch 1 and after epoch 2
    # fp32 on one thread: bf16's rounding would drown the comparison, as it would any order of sums
    opts = TrainOptions(out=tmp_path / "one", epochs=1, data_dir=str(data_dir), progress=False, bf16=False,
                        shards=1, **SMALL)
    trainer = Trainer(preset("seed"), opts)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    train_x, test_x = load_images(opts)
    trainer.fit(train_x, test_x, lambda _: None)
    after_one = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    opts.epochs = 2
    trainer.fit(train_x, test_x, lambda _: None)
    after_two = trainer.model.state_dict()

    out = tmp_path / "two"
    torchrun(out, data_dir, 1)
    assert_close(weights(out), after_one, start)
    moved = max((after_two[k] - after_one[k]).abs().max().item() for k in after_one)
    assert moved > 0.01  # the second epoch moves weights by ten Adam steps: resume has to carry on right
    log = torchrun(out, data_dir, 2, "--resume")
    assert "epochs 2..2" in log and "2 processes x 64" in log  # continued, not restarted
    assert_close(weights(out), after_two, start)
    history = json.loads((out / "history.json").read_text())
    assert [(r["epoch"], r["batch_size"], r["processes"]) for r in history] == [(1, 128, 2), (2, 128, 2)]
    assert history[1]["val_loss"] < history[0]["val_loss"]
    assert (out / "encoder.safetensors").is_file() and (out / "decoder.safetensors").is_file()
