"""Fused training kernels (kernels.cpp), built with the machine's C++ compiler at first use.

Why: a training step's time goes mostly to moving 28x28x32 activations, which do not fit a core's L2
cache, through chains of ops that each read and write them whole. Two such chains are one kernel here:
the seed encoder's first conv and max-pooling (forward and backward), and the backward of every
decoder's last ReLU and 3x3 conv to one channel. They compute what PyTorch's ops compute, up to float
rounding (tests/aelink/test_fused.py); `aelink bench speed` times a step with and without them. Under
bf16 autocast the ConvTransposes' weight gradients are computed in fp32 (BF16Deconv, no compiler needed).

Only training uses them: evaluation, export and the services run PyTorch's ops, so nothing a service
loads needs a compiler. Where they cannot be built (no C++ compiler or ninja) training runs PyTorch's
ops after one warning. `AELINK_FUSED=0` or `aelink train --no-fused` turns them off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import warnings
from pathlib import Path

import torch

from aelink.training.steps import cpu

SOURCE = Path(__file__).with_name("kernels.cpp")
CHANNELS = 32  # the kernels' vector width: every preset's outermost width
# -march=native: the kernels are built on the machine that runs them, for its vector units
CFLAGS = ["-O3", "-march=native", "-fno-math-errno"]


def build_dir() -> Path:
    """A folder per source, flags, torch and CPU, so that a cache shared by other machines (a home on
    NFS) never hands one machine another's -march=native build."""
    model, flags = cpu()
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *CFLAGS, torch.__version__, sys.version, model,
                                    *sorted(flags)]).encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aelink" / "fused"
    return root / key.hexdigest()[:16]


def enabled() -> bool:
    """False when AELINK_FUSED=0: training then runs the modules as they are."""
    return os.environ.get("AELINK_FUSED", "1") != "0"


@functools.cache
def kernels():
    """The built extension, or None (after a warning saying why) where it cannot be built or is off."""
    if not enabled():
        return None
    folder = build_dir()
    if shutil.which("ninja") is None:  # the `ninja` wheel's binary, where the venv's bin is not on PATH
        with contextlib.suppress(ImportError):
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    try:
        from torch.utils.cpp_extension import load

        folder.mkdir(parents=True, exist_ok=True)
        if not any(folder.glob("aelink_fused*.so")):
            print(f"building aelink's fused training kernels in {folder} (once per machine)", file=sys.stderr)
        return load("aelink_fused", [str(SOURCE)], extra_cflags=CFLAGS, build_directory=str(folder))
    except Exception as e:  # no compiler, no ninja, a failed build: train on PyTorch's ops instead
        warnings.warn(f"aelink: the fused training kernels could not be built ({type(e).__name__}: "
                      f"{str(e).strip().splitlines()[-1] if str(e).strip() else e!r}); training runs PyTorch's ops",
                      RuntimeWarning, stacklevel=2)
        return None


class ConvPool(torch.autograd.Function):
    """3x3 conv (padding 1) from one channel to 32, then 2x2 max-pooling: one kernel each way. The
    input is the images, which need no gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        pooled, winners = kernels().conv_pool_forward(x, weight.detach(), bias.detach())
        ctx.save_for_backward(x, winners)
        return pooled  # (N, 32, H/2, W/2), channels-last

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, winners = ctx.saved_tensors
        grad_weight, grad_bias = kernels().conv_pool_backward(grad, x, winners)
        return None, grad_weight, grad_bias


class ReluTap(torch.autograd.Function):
    """ReLU then a 3x3 conv to one channel (the module given, a TapSumConv2d); the backward is one
    kernel that reads the ReLU's output once and writes its input's gradient once."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, conv: torch.nn.Module):
        h = torch.relu(z)
        ctx.save_for_backward(h, weight)
        return conv(h)  # under autocast its 1x1 conv runs in bf16, as it does unfused

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight = ctx.saved_tensors
        grad_z, grad_weight, grad_bias = kernels().relu_tap_backward(h, grad, weight.detach())
        return grad_z, grad_weight, grad_bias, None


class BF16Deconv(torch.autograd.Function):
    """A ConvTranspose2d under bf16 autocast, its weight gradient computed in fp32.

    oneDNN's bf16 kernel for a stride-2 ConvTranspose's weight gradient in channels-last (`jit_bf16`)
    took 2.4x the time of its fp32 one on the same bf16-valued tensors, cast (5.7 ms against 2.4 for the
    seed's 14 -> 28 layer, 64 images, one thread): more than the cast costs. `aelink bench speed` times
    a whole step ("bf16" against "bf16-unfused"). The forward and the input's gradient stay bf16; the
    weight gradient comes out in fp32 instead of rounded to bf16.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, layer):
        xb, wb = x.to(torch.bfloat16), weight.to(torch.bfloat16)
        ctx.save_for_backward(xb, wb, weight)
        ctx.layer, ctx.x_dtype = layer, x.dtype
        with torch.autocast("cpu", enabled=False):
            return torch.nn.functional.conv_transpose2d(xb, wb, bias.to(torch.bfloat16), layer.stride, layer.padding,
                                                        layer.output_padding, layer.groups, layer.dilation)

    @staticmethod
    def backward(ctx, grad):
        xb, wb, weight = ctx.saved_tensors
        m = ctx.layer
        args = (m.bias.shape, m.stride, m.padding, m.dilation, True, m.output_padding, m.groups)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad.to(torch.bfloat16), xb, wb, *args,
                                                         [True, False, False])[0].to(ctx.x_dtype)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(grad.float(), xb.float(), weight, *args,
                                                                    [False, True, True])
        return grad_x, grad_w, grad_b, None
