import pytest
import torch

from shared.autoencoder import Autoencoder, count_parameters
from shared.config import PRESETS, ModelConfig, preset
from shared.decoder import Decoder
from shared.encoder import Encoder


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
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Identity",
                     "Identity", "ConvTranspose2d", "ReLU", "ConvTranspose2d", "ReLU", "Conv2d"]


@pytest.mark.parametrize("code_size", [2, 16, 32, 64, 100])
@pytest.mark.parametrize("widths", [(8,), (16, 32), (32, 64, 128), (8, 8, 8, 8)])
def test_compact_family(code_size, widths):
    config = ModelConfig("custom", code_size=code_size, widths=widths)
    assert config.depth == len(widths)
    y = Autoencoder(config)(torch.rand(2, 1, 28, 28))
    assert y.shape == (2, 1, 28, 28)
    assert config.code_numel == code_size


@pytest.mark.parametrize("loss", ["bce", "mse", "l1"])
def test_losses_give_gradients(loss):
    model = Autoencoder(preset("compact16").with_(loss=loss))
    x = torch.rand(4, 1, 28, 28)
    model.loss(x, x).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_config_json_round_trip():
    for config in PRESETS.values():
        assert ModelConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("bad", [
    dict(kind="other"), dict(loss="huber"), dict(code_size=0), dict(widths=()),
    dict(kind="seed", widths=(8, 8, 8)), dict(noise=-1.0),
])
def test_bad_configs_rejected(bad):
    with pytest.raises(ValueError):
        ModelConfig("bad", **bad)


def test_unknown_preset_names_choices():
    with pytest.raises(ValueError, match="compact32"):
        preset("nope")
