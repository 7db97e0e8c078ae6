"""How a step runs (aelink/training/steps.py). A batch split over threads: the whole batch's gradient,
the same on every run, bf16 autocast on every thread, noise from per-part generators. The thread plan,
and bf16's default."""

import threading

import pytest
import torch

from aelink.training import steps as steps_module
from aelink.training.autoencoder import Autoencoder
from aelink.training.runtime import Objective
from aelink.training.steps import Steps, choose_bf16, plan
from shared.codec.config import preset


def grads(name, shards, x, bf16=False, seed=0):
    """The gradients Steps leaves in the parameters, and the terms it returns."""
    torch.manual_seed(0)
    model = Autoencoder(preset(name)).train()
    params = list(model.parameters())
    steps = Steps(Objective(model), params, shards, bf16)
    try:
        torch.manual_seed(seed)
        terms = steps.run(x, x)
    finally:
        steps.close()
    return [p.grad.clone() for p in params], terms


@pytest.fixture(scope="module")
def batch(test_images):
    return test_images[:50].contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["seed", "compact16"])
def test_parts_give_the_whole_batchs_gradient(batch, name):
    whole, whole_terms = grads(name, 1, batch)
    for shards in (2, 3):  # 50 images: parts of 25, and of 17, 17, 16 (weighted by their share)
        split, terms = grads(name, shards, batch)
        assert terms["loss"] == pytest.approx(whole_terms["loss"], rel=1e-6)
        for g, w in zip(split, whole, strict=True):
            assert torch.allclose(g, w, rtol=1e-4, atol=1e-6 * w.abs().max().item())


def test_split_steps_repeat_exactly_and_draw_noise_per_part(batch):
    # rd: the prior's training noise comes from one generator per part, seeded on the calling thread
    first, terms = grads("rd16", 2, batch)
    again, _ = grads("rd16", 2, batch)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other, _ = grads("rd16", 2, batch, seed=1)  # another global seed: other noise, other gradients
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert set(terms) == {"loss", "bits"} and terms["bits"] > 0


def test_every_part_runs_in_bf16_on_its_own_thread(batch):
    torch.manual_seed(0)
    model = Autoencoder(preset("seed")).train()
    seen = []
    model.decoder.net[0].register_forward_hook(lambda m, i, out: seen.append((threading.get_ident(), out.dtype)))
    steps = Steps(Objective(model), list(model.parameters()), 2, bf16=True)
    try:
        steps.run(batch, batch)
    finally:
        steps.close()
    assert len({ident for ident, _ in seen}) == 2  # autocast is per thread: each part enters it
    assert {dtype for _, dtype in seen} == {torch.bfloat16}
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())


def test_an_epochs_short_last_batch_leaves_out_empty_parts(batch):
    whole, _ = grads("compact16", 1, batch[:2])
    split, _ = grads("compact16", 3, batch[:2])  # 2 images over 3 threads: one part is empty
    assert all(torch.allclose(g, w, rtol=1e-4, atol=1e-7) for g, w in zip(split, whole, strict=True))


def test_the_thread_plan(monkeypatch):
    monkeypatch.setattr("aelink.training.steps.cores", lambda: 4)
    assert plan(None, None, 1, 128) == (4, 1)  # one step thread per core, one intra-op thread each
    assert plan(2, None, 1, 128) == (2, 1)
    assert plan(4, 1, 1, 128) == (1, 4)  # one step thread using all four for its ops
    assert plan(4, 2, 1, 128) == (2, 2)
    assert plan(None, None, 1, 2) == (2, 2)  # never more step threads than images; the rest in their ops
    assert plan(3, None, 2, 64) == (1, 3)  # under torchrun: one step thread per process
    with pytest.raises(ValueError, match="torchrun"):
        plan(None, 2, 2, 64)
    with pytest.raises(ValueError, match="splits over"):
        plan(None, 200, 1, 128)


def test_bf16_by_default_only_for_the_seed_on_native_bf16(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(steps_module, "native_bf16", lambda native=native: native)
        assert choose_bf16(None, "seed", False) is native
        assert choose_bf16(None, "compact", False) is False and choose_bf16(None, "rd", True) is False
        assert choose_bf16(True, "compact", False) and choose_bf16(False, "seed", False) is False
    with pytest.raises(ValueError, match="bf16"):
        choose_bf16(True, "rd", True)
