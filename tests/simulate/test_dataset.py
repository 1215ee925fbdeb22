"""Simulated datasets on disk: float16 stacks, several stacks, the star file naming them."""

import math

import numpy as np
import pytest

from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.readers import read_particles
from cryomotion.data.stack import read_stack_header
from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset, stack_names


def test_stack_names():
    assert stack_names(10, 0) == ["particles.mrcs"]
    assert stack_names(10, 10) == ["particles.mrcs"]
    assert stack_names(10, 4) == ["particles_000.mrcs", "particles_001.mrcs", "particles_002.mrcs"]
    assert stack_names(12000, 10)[-1] == "particles_1199.mrcs"


@pytest.fixture(scope="module")
def adk_two_frames():
    return adk_morph(2)


def _simulate(folder, adk, **settings):
    reference, frames = adk
    config = SimulationConfig(
        n_particles=23, box=32, pixel_size=3.0, snr=math.inf, chunk_size=8, **settings
    )
    return simulate_dataset(reference, frames, config, folder, progress=False)


def test_several_float16_stacks_hold_the_float32_images(tmp_path, adk_two_frames):
    one = _simulate(tmp_path / "one", adk_two_frames)
    several = _simulate(
        tmp_path / "several", adk_two_frames, stack_dtype="float16", images_per_stack=10
    )
    names = ["particles_000.mrcs", "particles_001.mrcs", "particles_002.mrcs"]
    assert sorted(p.name for p in (tmp_path / "several").glob("*.mrcs")) == names
    assert [read_stack_header(tmp_path / "several" / n).n_images for n in names] == [10, 10, 3]
    assert {read_stack_header(tmp_path / "several" / n).mode for n in names} == {12}
    table = read_particles(several["star"])
    expected = [f"{k % 10 + 1:06d}@{names[k // 10]}" for k in range(23)]
    assert list(table.star["particles"]["rlnImageName"]) == expected
    # the rows share one path object per stack: O(N) pointers, not N strings
    assert len({id(name) for name in table.image_files}) == 3
    reference = ParticleDataset(read_particles(one["star"])).images(np.arange(23))
    images = ParticleDataset(table).images(np.arange(23))
    np.testing.assert_array_equal(images, reference.astype(np.float16).astype(np.float32))
    # a new simulation into the same folder removes the old stacks first
    _simulate(tmp_path / "several", adk_two_frames)
    assert [p.name for p in (tmp_path / "several").glob("*.mrcs")] == ["particles.mrcs"]
