"""The torch Dataset: items, DataLoader workers, contrast inversion, Fourier downsampling."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cryomotion.data import ParticleDataset, ParticleTable
from cryomotion.data.downsample import downsample_image
from cryomotion.errors import InputError


def test_items_hold_image_pose_shift_ctf(two_groups):
    table, images = two_groups
    dataset = ParticleDataset(table)
    assert len(dataset) == 6 and dataset.box == 16
    item = dataset[4]
    keys = {"image", "rotation", "shift", "ctf", "pixel_size", "index", "optics_group"}
    assert set(item) == keys
    assert int(item["optics_group"]) == 1  # 0-based index of group 2 of (1, 2)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (16, 16)
    assert item["rotation"].dtype == torch.float32 and item["rotation"].shape == (3, 3)
    assert item["shift"].shape == (2,) and item["ctf"].shape == (8,)
    assert item["index"].dtype == torch.int64 and int(item["index"]) == 4
    np.testing.assert_array_equal(item["image"].numpy(), images[4])
    np.testing.assert_allclose(item["rotation"].numpy(), table.rotations[4], rtol=1e-6)
    np.testing.assert_allclose(item["shift"].numpy(), table.shifts[4], rtol=1e-6)
    np.testing.assert_allclose(item["ctf"].numpy(), table.ctf[4], rtol=1e-6)
    assert float(item["pixel_size"]) == pytest.approx(1.2)
    with pytest.raises(InputError, match="several pixel sizes"):
        _ = dataset.pixel_size


def test_dataloader_with_two_workers(two_groups):
    table, images = two_groups
    dataset = ParticleDataset(table, invert_contrast=True)
    dataset[0]  # the parent process opens a stack before forking
    loader = DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    indices = torch.cat([b["index"] for b in batches]).numpy()
    np.testing.assert_array_equal(indices, np.arange(6))
    stacked = torch.cat([b["image"] for b in batches]).numpy()
    np.testing.assert_array_equal(stacked, -images)  # invert_contrast multiplies by -1
    assert torch.cat([b["rotation"] for b in batches]).shape == (6, 3, 3)


def _band_limited(size: int, pixel_size: float) -> np.ndarray:
    """Samples (size, size) of a periodic signal of period 40 Å below 7 cycles per period."""
    period = 40.0
    centre = size // 2
    coordinates = (np.arange(size) - centre) * pixel_size
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    image = 0.3 * np.ones_like(x)
    for kx, ky, amplitude, phase in [(1, 0, 1.0, 0.2), (3, -2, 0.5, 1.0), (-5, 6, 0.25, 2.0)]:
        image += amplitude * np.cos(2 * np.pi * (kx * x + ky * y) / period + phase)
    return image


def test_downsampling_a_band_limited_image_equals_direct_sampling(tmp_path, kit):
    big = _band_limited(32, 1.25)  # 32 px x 1.25 Å = one 40 Å period
    stack = kit.write_mrcs(tmp_path / "s.mrcs", big[None].astype(np.float32), voxel_size=1.25)
    table = ParticleTable(
        rotations=np.eye(3)[None],
        shifts=np.zeros((1, 2)),
        ctf=np.zeros((1, 8)),
        pixel_size=[1.25],
        box_size=32,
        image_files=np.array([str(stack)], dtype=object),
        image_indices=[0],
        optics_group=[1],
        source="test",
    )
    dataset = ParticleDataset(table, box=16)
    assert dataset.box == 16 and dataset.pixel_size == pytest.approx(2.5)
    image = dataset[0]["image"].numpy()
    np.testing.assert_allclose(image, _band_limited(16, 2.5), atol=1e-5)
    with pytest.raises(InputError, match="box 15 must be even"):
        ParticleDataset(table, box=15)


def test_downsampling_keeps_a_constant_image_constant():
    np.testing.assert_allclose(downsample_image(np.full((64, 64), 3.5), 24), 3.5, rtol=1e-6)
