"""The VGG-like image encoder of seed 000 and its MLP heads.

The convolutional trunk has up to 5 blocks, each two 3×3 convolutions (each followed by a
normalisation layer and a ReLU) and a 2× average pooling; the blocks have 32, 64, 128,
256 and 512 filters times ``width``. The seed's encoder is ``width=1``; on a CPU a
narrower one (``width=0.25``, 1/16 of the multiply-adds) trains several times faster.
The number of blocks adapts to the box: blocks are added while the feature map stays at
least 2×2 (5 blocks from a 64 px box up, 4 at 32 px), and maps larger than 4×4 (boxes
over 128 px) are average-pooled to 4×4 before flattening, which bounds the heads' input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FILTERS = (32, 64, 128, 256, 512)
NORMS = ("batch", "group")
HIDDEN = (512, 256)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Batch normalisation (the seed's) or group normalisation (per image, so the same under
    any split of a batch across processes; groups of up to 8 channels)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalisation {kind!r}: expected one of {', '.join(NORMS)}")


def n_blocks_for(box: int) -> int:
    """Convolution blocks for a box of ``box`` px: as many (up to 5) as leave a map >= 2×2."""
    if box < 4:
        raise ValueError(f"box {box} px: the encoder needs images of at least 4×4 px")
    return min(len(FILTERS), int(math.log2(box)) - 1)


class ConvEncoder(nn.Module):
    """Images (B, D, D) -> features (B, features), see the module docstring."""

    def __init__(self, box: int, width: float = 1.0, norm: str = "batch", max_map: int = 4):
        super().__init__()
        if width <= 0:
            raise ValueError(f"encoder width {width}: expected a positive multiplier")
        layers: list[nn.Module] = []
        channels_in = 1
        size = box
        for filters in FILTERS[: n_blocks_for(box)]:
            channels = max(4, round(filters * width))
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels_in, channels, 3, padding=1, bias=False),
                    norm_layer(norm, channels),
                    nn.ReLU(inplace=True),
                ]
                channels_in = channels
            layers.append(nn.AvgPool2d(2))
            size //= 2
        if size > max_map:
            layers.append(nn.AdaptiveAvgPool2d(max_map))
            size = max_map
        self.box = box
        # Channels-last filters: oneDNN's CPU convolutions then run channels-last, forward
        # and backward 1.3-1.9x faster at width 0.25 (batch 128, 64 px, one thread); the
        # same values up to float rounding.
        self.trunk = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.n_features = channels_in * size * size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.box, self.box):
            raise ValueError(
                f"images of shape {tuple(images.shape)}, expected (batch, {self.box}, {self.box})"
            )
        return self.trunk(images.unsqueeze(1)).flatten(1)  # (channel, y, x) order


class MLPTrunk(nn.Module):
    """Images (B, D, D) -> features (B, widths[-1]): the flattened pixels, layer norm, then
    linear layers with leaky ReLU (AtomVAE's encoder, seed 002 appendix: 2048, 1024, 512,
    512)."""

    def __init__(self, box: int, widths: tuple[int, ...] = (2048, 1024, 512, 512)):
        super().__init__()
        if not widths:
            raise ValueError("an MLP trunk needs at least one layer")
        layers: list[nn.Module] = [nn.LayerNorm(box * box)]
        n_in = box * box
        for width in widths:
            layers += [nn.Linear(n_in, width), nn.LeakyReLU()]
            n_in = width
        self.box = box
        self.trunk = nn.Sequential(*layers)
        self.n_features = n_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.box, self.box):
            raise ValueError(
                f"images of shape {tuple(images.shape)}, expected (batch, {self.box}, {self.box})"
            )
        return self.trunk(images.flatten(1))


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with normalisation, added to the input (a 1×1 projection when the
    stride or the channels change), then ReLU: ResNet's basic block (He et al. 2016)."""

    def __init__(self, channels_in: int, channels: int, stride: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm_layer(norm, channels),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels:
            self.skip = nn.Sequential(
                nn.Conv2d(channels_in, channels, 1, stride=stride, bias=False),
                norm_layer(norm, channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


RESNET_FILTERS = (64, 128, 256, 512)


class ResNetTrunk(nn.Module):
    """Images (B, D, D) -> features (B, channels): a ResNet (DeepHEMNMA's regressor, seed
    004). A 3×3 stem, then stages of ``blocks`` residual blocks with 64, 128, 256, 512
    filters times ``width``, each stage after the first halving the map, and a global
    average pool (so any box works). ``blocks`` (2, 2, 2, 2) is ResNet-18's layout."""

    def __init__(
        self,
        box: int,
        width: float = 1.0,
        norm: str = "batch",
        blocks: tuple[int, ...] = (2, 2, 2, 2),
    ):
        super().__init__()
        if width <= 0:
            raise ValueError(f"encoder width {width}: expected a positive multiplier")
        if not blocks or len(blocks) > len(RESNET_FILTERS) or min(blocks) < 1:
            raise ValueError(f"ResNet blocks {blocks}: expected 1-4 stages of >= 1 block")
        first = max(4, round(RESNET_FILTERS[0] * width))
        layers: list[nn.Module] = [
            nn.Conv2d(1, first, 3, padding=1, bias=False),
            norm_layer(norm, first),
            nn.ReLU(inplace=True),
        ]
        channels_in = first
        size = box
        for stage, count in enumerate(blocks):
            channels = max(4, round(RESNET_FILTERS[stage] * width))
            for block in range(count):
                stride = 2 if stage > 0 and block == 0 and size >= 4 else 1
                layers.append(ResidualBlock(channels_in, channels, stride, norm))
                size = (size + stride - 1) // stride
                channels_in = channels
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.box = box
        self.trunk = nn.Sequential(*layers)
        self.n_features = channels_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.box, self.box):
            raise ValueError(
                f"images of shape {tuple(images.shape)}, expected (batch, {self.box}, {self.box})"
            )
        return self.trunk(images.unsqueeze(1)).flatten(1)


class MLPHead(nn.Module):
    """features (B, F) -> (B, out): hidden layers with ReLU, then a linear output layer.

    The output layer starts at zero, so a fresh head predicts 0 (no shift correction, the
    reference conformation) and learning moves away from there.
    """

    def __init__(self, n_features: int, n_out: int, hidden: tuple[int, ...] = HIDDEN):
        super().__init__()
        layers: list[nn.Module] = []
        n_in = n_features
        for n_hidden in hidden:
            layers += [nn.Linear(n_in, n_hidden), nn.ReLU(inplace=True)]
            n_in = n_hidden
        output = nn.Linear(n_in, n_out)
        nn.init.zeros_(output.weight)
        nn.init.zeros_(output.bias)
        layers.append(output)
        self.mlp = nn.Sequential(*layers)
        self.n_out = n_out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class ImageEncoder(nn.Module):
    """Images (B, D, D) -> named outputs, one MLP head each on the shared CNN features.

    ``outputs`` maps a name to its size, e.g. ``{"shifts": 2, "latents": 16}`` for seed
    000. A head of size 0 is skipped and its output is an empty (B, 0) tensor. ``trunk``
    is "conv" (the VGG-like CNN, ``width`` and ``norm`` apply) or "mlp" (``MLPTrunk`` with
    layers ``mlp_widths``).
    """

    def __init__(
        self,
        box: int,
        outputs: dict[str, int],
        width: float = 1.0,
        norm: str = "batch",
        hidden: tuple[int, ...] = HIDDEN,
        trunk: str = "conv",
        mlp_widths: tuple[int, ...] = (2048, 1024, 512, 512),
        resnet_blocks: tuple[int, ...] = (2, 2, 2, 2),
    ):
        super().__init__()
        if trunk == "conv":
            self.features = ConvEncoder(box, width=width, norm=norm)
        elif trunk == "mlp":
            self.features = MLPTrunk(box, tuple(mlp_widths))
        elif trunk == "resnet":
            self.features = ResNetTrunk(box, width=width, norm=norm, blocks=tuple(resnet_blocks))
        else:
            raise ValueError(f"encoder trunk {trunk!r}: expected conv, mlp or resnet")
        self.sizes = dict(outputs)
        self.heads = nn.ModuleDict(
            {
                name: MLPHead(self.features.n_features, size, tuple(hidden))
                for name, size in outputs.items()
                if size > 0
            }
        )

    @torch.no_grad()
    def start_output(self, name: str, value: float) -> None:
        """Make head ``name`` start at ``value`` (its output layer's bias; weights stay 0)."""
        self.heads[name].mlp[-1].bias.fill_(float(value))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(images)
        return {
            name: self.heads[name](features)
            if name in self.heads
            else features.new_zeros(features.shape[0], 0)
            for name in self.sizes
        }
