"""The VGG-like encoder: seed architecture, adaptation to the box, heads, normalisation."""

import copy

import pytest
import torch

from cryomotion.models.encoder import ConvEncoder, ImageEncoder, MLPHead, n_blocks_for


def conv_channels(encoder: ConvEncoder) -> list[int]:
    return [m.out_channels for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]


def test_seed_architecture_at_full_width():
    encoder = ConvEncoder(64, width=1.0, norm="batch")
    assert conv_channels(encoder) == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in encoder.modules()) == 5
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules()) == 10
    assert encoder.n_features == 512 * 2 * 2
    assert encoder(torch.randn(3, 64, 64)).shape == (3, 2048)


@pytest.mark.parametrize(
    ("box", "blocks", "features"), [(16, 3, 128 * 2 * 2), (32, 4, 256 * 2 * 2), (256, 5, 512 * 16)]
)
def test_adapts_to_the_box(box, blocks, features):
    encoder = ConvEncoder(box, width=1.0)
    assert n_blocks_for(box) == blocks
    assert encoder.n_features == features
    assert encoder(torch.randn(2, box, box)).shape == (2, features)


def test_width_multiplier_scales_filters():
    assert conv_channels(ConvEncoder(64, width=0.25))[::2] == [8, 16, 32, 64, 128]
    with pytest.raises(ValueError):
        ConvEncoder(64, width=0)


def test_heads_start_at_zero_and_learn():
    head = MLPHead(32, 3)
    features = torch.randn(4, 32)
    assert torch.equal(head(features), torch.zeros(4, 3))
    head(features).sum().backward()
    assert head.mlp[-1].weight.grad.abs().sum() > 0


def test_image_encoder_outputs_and_empty_head():
    encoder = ImageEncoder(32, {"shifts": 2, "latents": 0}, width=0.25, norm="group")
    out = encoder(torch.randn(5, 32, 32))
    assert out["shifts"].shape == (5, 2)
    assert out["latents"].shape == (5, 0)
    assert "latents" not in encoder.heads


def test_a_head_can_start_at_a_value():
    encoder = ImageEncoder(32, {"latents": 3, "latent_log_var": 3}, width=0.25, norm="group")
    encoder.start_output("latent_log_var", -6.0)
    out = encoder(torch.randn(5, 32, 32))
    assert torch.equal(out["latent_log_var"], torch.full((5, 3), -6.0))
    assert torch.equal(out["latents"], torch.zeros(5, 3))


def test_group_norm_is_per_image():
    """With group normalisation an image's output does not depend on its batch-mates
    (what makes a batch split across processes train exactly like one batch)."""
    torch.manual_seed(0)
    encoder = ImageEncoder(32, {"shifts": 2, "latents": 3}, width=0.25, norm="group")
    for head in encoder.heads.values():
        torch.nn.init.normal_(head.mlp[-1].weight)
    images = torch.randn(6, 32, 32)
    together = encoder(images)["latents"]
    apart = torch.cat([encoder(images[:2])["latents"], encoder(images[2:])["latents"]])
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-6)


def test_mlp_trunk_layers_and_conditioned_head():
    from cryomotion.models.inference import ConditionedHead

    encoder = ImageEncoder(16, {"latents": 4}, trunk="mlp", mlp_widths=(64, 32))
    linear = [m for m in encoder.features.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(256, 64), (64, 32)]
    images = torch.randn(3, 16, 16)
    assert encoder(images)["latents"].shape == (3, 4)
    # scaling an image does not change the features: the layer norm comes first
    torch.testing.assert_close(encoder.features(images * 7), encoder.features(images), atol=1e-4,
                               rtol=1e-4)  # fmt: skip
    head = ConditionedHead(32, 5, 8, hidden=(16,))
    torch.nn.init.normal_(head.head.mlp[-1].weight)
    features, condition = encoder.features(images), torch.randn(3, 6, 5)
    out = head(features, condition)
    assert out.shape == (3, 6, 8)
    # each sample's output depends on its own condition
    changed = condition.clone()
    changed[:, 0] += 1
    moved = (head(features, changed) - out).abs().sum(-1)
    assert (moved[:, 0] > 0).all() and torch.equal(moved[:, 1:], torch.zeros(3, 5))
    with pytest.raises(ValueError, match="trunk"):
        ImageEncoder(16, {"latents": 4}, trunk="vit")


def test_resnet_trunk_features_skip_connections_and_any_box():
    """DeepHEMNMA's ResNet: stages of 64·w, 128·w, ... filters, global pooling (any box);
    a residual block whose convolutions are zero passes its input through (then ReLU)."""
    from cryomotion.models.encoder import ResidualBlock

    for box in (24, 32, 33):
        encoder = ImageEncoder(box, {"latents": 3}, width=0.125, trunk="resnet",
                               resnet_blocks=(1, 2))  # fmt: skip
        assert encoder.features.n_features == 16  # 128 · 0.125
        assert encoder(torch.randn(2, box, box))["latents"].shape == (2, 3)
    block = ResidualBlock(4, 4, stride=1, norm="none")
    for layer in block.body:
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.zeros_(layer.weight)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(block(x), torch.relu(x))
    with pytest.raises(ValueError, match="blocks"):
        ImageEncoder(16, {"latents": 1}, trunk="resnet", resnet_blocks=())


def test_channels_last_trunk_computes_what_a_contiguous_one_does():
    torch.manual_seed(0)
    encoder = ConvEncoder(32, width=0.25).train()
    conv = encoder.trunk[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    reference = copy.deepcopy(encoder).to(memory_format=torch.contiguous_format)
    assert reference.trunk[0].weight.is_contiguous()
    images = torch.randn(6, 32, 32)
    features, expected = encoder(images), reference(images)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)
    weights = torch.randn_like(features)
    (features * weights).sum().backward()
    (expected * weights).sum().backward()
    gradient = reference.trunk[0].weight.grad  # float32 sums in another order
    torch.testing.assert_close(
        conv.weight.grad, gradient, rtol=1e-3, atol=1e-5 * gradient.abs().max()
    )
