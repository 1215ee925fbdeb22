"""The torch Dataset: items, DataLoader workers, contrast inversion, Fourier downsampling."""

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cryomotion.data import ParticleDataset, ParticleTable
from cryomotion.data import dataset as dataset_module
from cryomotion.data.downsample import downsample_image
from cryomotion.data.stack import ImageValueError
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


def _assert_same_items(first: dict, second: dict) -> None:
    assert set(first) == set(second)
    for key in first:
        assert first[key].dtype == second[key].dtype and first[key].shape == second[key].shape
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)


@pytest.mark.parametrize("box", [16, 8])
def test_getitems_equals_getitem_across_stacks_in_any_order(two_groups, box):
    table, _ = two_groups
    dataset = ParticleDataset(table, box=box, invert_contrast=True)
    indices = [5, 0, 3, 3, 1, -2]  # shuffled across both stacks, a repeat, a negative index
    batch = dataset.__getitems__(indices)
    assert len(batch) == len(indices)
    for index, item in zip(indices, batch):
        _assert_same_items(item, dataset[index])
    assert [int(item["index"]) for item in batch] == [5, 0, 3, 3, 1, 4]
    with pytest.raises(IndexError, match="particle 6 out of range"):
        dataset.__getitems__([0, 6])


def test_dataloader_batch_sampler_reads_whole_batches(two_groups):
    table, images = two_groups
    dataset = ParticleDataset(table)
    calls = []
    getitems = dataset.__getitems__
    dataset.__getitems__ = lambda indices: calls.append(list(indices)) or getitems(indices)
    loader = DataLoader(dataset, batch_sampler=[[4, 1, 2], [0, 5, 3]], num_workers=0)
    batches = list(loader)
    assert calls == [[4, 1, 2], [0, 5, 3]]  # one call per batch, not per item
    np.testing.assert_array_equal(batches[0]["image"].numpy(), images[[4, 1, 2]])
    np.testing.assert_array_equal(batches[1]["index"].numpy(), [0, 5, 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_preloaded_items_equal_the_lazily_read_ones(tmp_path, kit, dtype):
    table, _ = kit.make_table(tmp_path, groups=((1.5, 300.0, 2.7), (1.5, 300.0, 2.7)))
    for name in set(table.image_files):  # rewrite the stacks in the data type under test
        with mrcfile.open(name) as mrc:
            data = mrc.data.copy()
        kit.write_mrcs(Path(name), data.astype(dtype))
    lazy = ParticleDataset(table, box=8)
    memory = ParticleDataset(table, box=8, preload=True)
    assert memory.preloaded and not lazy.preloaded
    assert memory._images_in_memory.dtype == dtype
    order = [3, 1, 5, 0, 2, 4]
    for mine, theirs in zip(memory.__getitems__(order), lazy.__getitems__(order)):
        _assert_same_items(mine, theirs)


def test_preload_refuses_what_does_not_fit_in_memory(two_groups, monkeypatch):
    table, _ = two_groups
    monkeypatch.setattr(dataset_module, "available_memory_bytes", lambda: 4096)
    with pytest.raises(InputError, match=r"preloading 6 images of 16x16 float32 needs .* GiB"):
        ParticleDataset(table, preload=True)


@pytest.mark.filterwarnings("ignore:Data array contains NaN values")
def test_preload_names_the_stack_of_a_nan_image(tmp_path, kit):
    table, images = kit.make_table(tmp_path)
    images[1, 2, 3] = np.nan
    kit.write_mrcs(Path(table.image_files[0]), images)
    with pytest.raises(ImageValueError, match=r"stack1.mrcs: image 1 .*NaN"):
        ParticleDataset(table, preload=True)
    with pytest.raises(ImageValueError, match=r"stack1.mrcs: image 1 .*NaN"):
        ParticleDataset(table).__getitems__([0, 1])
