import pytest
import torch

from aelink.training.autoencoder import Autoencoder, count_parameters
from shared.codec.config import PRESETS, ModelConfig, preset
from shared.codec.decoder import Decoder
from shared.codec.encoder import Encoder
from shared.codec.layers import ResBlock


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shapes(name):
    config = preset(name)
    x = torch.rand(3, *config.input_shape)
    z = Encoder(config)(x)
    assert tuple(z.shape) == (3, *config.code_shape)
    y = Decoder(config)(z)
    assert tuple(y.shape) == (3, *config.input_shape)
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_seed_is_the_reference_architecture():
    config = preset("seed")
    model = Autoencoder(config)
    assert count_parameters(model) == 28_353
    assert config.code_shape == (32, 7, 7)  # larger than the 784-pixel image: a reference, not a codec
    kinds = [type(m).__name__ for m in model.modules() if len(list(m.children())) == 0]
    # the spec's layers; each pool comes before its ReLU (the same values: test below), and the last
    # 3x3 conv is computed as its tap maps (TapSumConv2d, an nn.Conv2d with the same parameters)
    assert kinds == ["Conv2d", "MaxPool2d", "ReLU", "Conv2d", "MaxPool2d", "ReLU", "Identity",
                     "Identity", "ConvTranspose2d", "ReLU", "ConvTranspose2d", "ReLU", "TapSumConv2d"]
    assert isinstance(model.decoder.net[-1], torch.nn.Conv2d)


def test_seed_encoder_equals_the_spec_order_bit_for_bit():
    """Conv > ReLU > MaxPool, as the spec writes it, gives exactly what Conv > MaxPool > ReLU gives."""
    encoder = Encoder(preset("seed"))
    f = encoder.features
    spec_order = torch.nn.Sequential(f[0], torch.nn.ReLU(), torch.nn.MaxPool2d(2), f[3], torch.nn.ReLU(),
                                     torch.nn.MaxPool2d(2))
    x = torch.rand(64, 1, 28, 28, requires_grad=True)
    ours, spec = encoder(x), spec_order(x)
    assert torch.equal(ours, spec)
    g = torch.randn_like(ours)
    assert torch.equal(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(spec, x, g)[0])


@pytest.mark.parametrize("out_channels,kernel", [(1, 3), (2, 3), (1, 5)])
def test_tap_sum_conv_is_a_conv(out_channels, kernel):
    from shared.codec.layers import ShiftSum, TapSumConv2d

    tap = TapSumConv2d(8, out_channels, kernel).double()
    conv = torch.nn.Conv2d(8, out_channels, kernel, padding=kernel // 2).double()
    conv.load_state_dict(tap.state_dict())  # the same parameters under the same names
    x = torch.randn(3, 8, 11, 9, dtype=torch.double, requires_grad=True)
    ours, ref = tap(x), conv(x)
    assert ours.shape == ref.shape and torch.allclose(ours, ref, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ours, (x, *tap.parameters()), g),
                    torch.autograd.grad(ref, (x, *conv.parameters()), g), strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    z = torch.randn(2, kernel * kernel * out_channels, 5, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ShiftSum.apply(t, kernel), (z,))
    with pytest.raises(ValueError, match="odd"):
        TapSumConv2d(8, 1, 2)


@pytest.mark.parametrize("code_size", [2, 16, 32, 64, 100])
@pytest.mark.parametrize("widths", [(8,), (16, 32), (32, 64, 128), (8, 8, 8, 8)])
def test_compact_family(code_size, widths):
    config = ModelConfig("custom", code_size=code_size, widths=widths)
    assert config.depth == len(widths)
    y = Autoencoder(config)(torch.rand(2, 1, 28, 28))
    assert y.shape == (2, 1, 28, 28)
    assert config.code_numel == code_size


@pytest.mark.parametrize("loss", ["bce", "mse", "l1", "psnr"])
def test_losses_give_gradients(loss):
    model = Autoencoder(preset("compact16").with_(loss=loss))
    x = torch.rand(4, 1, 28, 28)
    model.loss(x, x).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_psnr_loss_is_minus_mean_per_image_psnr():
    from aelink.training.autoencoder import reconstruction_loss

    target = torch.zeros(2, 1, 28, 28)
    recon = torch.full_like(target, 0.1)
    recon[1] = 0.01  # per-image MSE 1e-2 and 1e-4: PSNR 20 and 40 dB, mean 30
    loss = reconstruction_loss(torch.logit(recon), target, "psnr")
    assert -10 * loss.item() / torch.log(torch.tensor(10.0)).item() == pytest.approx(30.0, abs=1e-3)


@pytest.mark.parametrize("kind,extra", [("compact", {}), ("rd", {"lmbda": 0.01}),
                                        ("rd", {"lmbda": 0.01, "latent": "positional", "code_size": 4})])
@pytest.mark.parametrize("blocks", [1, 2])
def test_residual_blocks_keep_shapes_and_start_as_identity(kind, extra, blocks):
    plain = ModelConfig("plain", kind=kind, widths=(8, 16), **extra)
    deep = plain.with_(blocks=blocks)
    torch.manual_seed(0)
    a = Autoencoder(plain)
    torch.manual_seed(0)
    b = Autoencoder(deep)
    assert count_parameters(b) == count_parameters(a) + blocks * 2 * 2 * sum(9 * w * w + w for w in (8, 16))
    x = torch.rand(2, 1, 28, 28)
    assert Encoder(deep)(x).shape == (2, *deep.code_shape)
    assert Decoder(deep)(Encoder(deep)(x)).shape == (2, 1, 28, 28)
    blocks_found = [m for m in b.modules() if isinstance(m, ResBlock)]
    assert len(blocks_found) == 2 * 2 * blocks  # two stages, encoder and decoder
    for block in blocks_found:  # a new block passes its input through unchanged
        h = torch.randn(2, block.conv1.in_channels, 7, 7)
        assert torch.equal(block(h), h)


def test_blocks_leave_older_configs_json_alone():
    assert "blocks" not in preset("compact32").to_json()
    assert '"blocks":1' in preset("compact32").with_(blocks=1).to_json()


def test_config_json_round_trip():
    for config in PRESETS.values():
        assert ModelConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("bad", [
    dict(kind="other"), dict(loss="huber"), dict(code_size=0), dict(widths=()),
    dict(kind="seed", widths=(8, 8, 8)), dict(noise=-1.0), dict(blocks=-1), dict(kind="seed", blocks=1),
])
def test_bad_configs_rejected(bad):
    with pytest.raises(ValueError):
        ModelConfig("bad", **bad)


def test_unknown_preset_names_choices():
    with pytest.raises(ValueError, match="compact32"):
        preset("nope")
