"""The fused training kernels (aelink/training/fused): the same loss and gradients as PyTorch's ops up to
float rounding, for every kind of model, in fp32 and under bf16 autocast; max-pooling's ties as
max_pool2d breaks them; PyTorch's ops wherever the kernels are off or cannot be built."""

import copy
import shutil
import warnings

import pytest
import torch

from aelink.training import fused
from aelink.training.autoencoder import Autoencoder
from shared.codec.config import preset

# `make test` installs g++ where apt-get can; ninja comes with the train extra
needs_kernels = pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")),
                                   reason="no C++ compiler: the fused kernels cannot be built here")


def pair(name):
    """The same model twice: one stepping through the fused kernels, one through PyTorch's ops."""
    torch.manual_seed(0)
    plain = Autoencoder(preset(name)).train()
    with torch.no_grad():  # biases away from zero, so that their gradients are tested too
        for p in plain.parameters():
            p.add_(0.01 * torch.randn_like(p))
    fast = copy.deepcopy(plain)
    assert fast.use_fused() and not plain.use_fused(False)
    return fast, plain


def loss_and_grads(model, x, bf16=False):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model.terms(x, x, torch.Generator().manual_seed(1))["loss"]
    params = list(model.parameters())
    return loss.item(), torch.autograd.grad(loss, params, allow_unused=True)


def assert_grads_close(a, b, rel):
    for ga, gb in zip(a, b, strict=True):
        assert (ga is None) == (gb is None)
        if ga is not None:
            scale = gb.abs().max().item() or 1.0
            assert (ga - gb).abs().max().item() <= rel * scale, (ga - gb).abs().max().item() / scale


@needs_kernels
@pytest.mark.parametrize("name", ["seed", "compact16", "rd16", "vae16"])
def test_the_same_loss_and_gradients_as_pytorchs_ops(test_images, name):
    fast, plain = pair(name)
    assert fast.fused_tail and fast.fused_head == (name == "seed")
    x = test_images[:48].contiguous(memory_format=torch.channels_last)
    loss, grads = loss_and_grads(fast, x)
    ref_loss, ref_grads = loss_and_grads(plain, x)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    assert_grads_close(grads, ref_grads, 1e-4)


@needs_kernels
def test_under_bf16_autocast_too(test_images):
    fast, plain = pair("seed")
    x = test_images[:48]
    loss, grads = loss_and_grads(fast, x, bf16=True)
    ref_loss, ref_grads = loss_and_grads(plain, x, bf16=True)
    assert loss == pytest.approx(ref_loss, rel=1e-3)
    assert_grads_close(grads, ref_grads, 0.03)  # the kernels keep fp32 where autocast rounds to bf16
    fp32_loss, fp32_grads = loss_and_grads(plain, x)
    assert_grads_close(grads, fp32_grads, 0.03)


@needs_kernels
def test_pooling_ties_and_nan_go_where_max_pool2d_sends_them():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 32, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()  # every output of a channel is its bias: four-way ties in every window
        conv.weight[3, 0, 1, 1] = float("nan")  # channel 3: NaN where the image is not 0
    x = torch.rand(2, 1, 28, 28)
    x[:, :, ::3] = 0.0  # NaN * 0 is NaN too, but rows of zeros give ties beside NaNs
    g = torch.randn(2, 32, 14, 14)
    ref = torch.nn.functional.max_pool2d(conv(x), 2)
    ref_w, ref_b = torch.autograd.grad(ref, [conv.weight, conv.bias], g)
    out = fused.ConvPool.apply(x, conv.weight, conv.bias)
    w, b = torch.autograd.grad(out, [conv.weight, conv.bias], g)
    assert torch.equal(out.isnan(), ref.isnan()) and torch.allclose(out.nan_to_num(), ref.nan_to_num())
    assert torch.equal(w.isnan(), ref_w.isnan()) and torch.allclose(w.nan_to_num(), ref_w.nan_to_num(), atol=1e-5)
    assert torch.allclose(b, ref_b, atol=1e-5)


@needs_kernels
def test_evaluation_and_no_grad_calls_run_pytorchs_ops(test_images):
    fast, plain = pair("seed")
    x = test_images[:8]
    with torch.no_grad():  # in training mode, but no gradient: the stock path, bit for bit
        assert torch.equal(fast.encode(x), plain.encoder(x))
        assert torch.equal(fast.decode_logits(plain.encoder(x)), plain.decoder.logits(plain.encoder(x)))
    fast.eval()
    assert torch.equal(fast.encode(x), plain.encoder(x))
    assert fast.state_dict().keys() == plain.state_dict().keys()


def test_off_or_unbuildable_means_pytorchs_ops(monkeypatch):
    fused.kernels.cache_clear()
    try:
        monkeypatch.setenv("AELINK_FUSED", "0")
        assert fused.kernels() is None
        assert not Autoencoder(preset("seed")).use_fused()
        fused.kernels.cache_clear()
        monkeypatch.delenv("AELINK_FUSED")

        def no_compiler(*args, **kwargs):
            raise RuntimeError("Error building extension: c++: command not found")

        monkeypatch.setattr("torch.utils.cpp_extension.load", no_compiler)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert fused.kernels() is None
        assert any("could not be built" in str(w.message) and "c++" in str(w.message) for w in caught)
    finally:
        fused.kernels.cache_clear()  # the next caller builds (or finds) the real kernels again
