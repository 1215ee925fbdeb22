"""MRC stacks: headers, lazy reading, chunked atomic writing."""

import pickle
import resource
import time

import mrcfile
import numpy as np
import pytest

from cryomotion.data.stack import StackReader, StackWriter, read_stack_header


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16])
def test_reader_returns_float32_whatever_the_mode(tmp_path, kit, dtype):
    images = (np.random.default_rng(0).normal(size=(4, 8, 8)) * 10).astype(dtype)
    path = kit.write_mrcs(tmp_path / "stack.mrcs", images, voxel_size=1.3)
    header = read_stack_header(path)
    assert (header.n_images, header.box) == (4, 8)
    assert header.voxel_size == pytest.approx(1.3, rel=1e-6)
    reader = StackReader()
    image = reader.read(str(path), 2)
    assert image.dtype == np.float32 and image.shape == (8, 8)
    np.testing.assert_array_equal(image, images[2].astype(np.float32))


def test_single_image_mrc_reads_as_one_image(tmp_path):
    image = np.arange(36, dtype=np.float32).reshape(6, 6)
    with mrcfile.new(tmp_path / "one.mrc", data=image):
        pass
    assert read_stack_header(tmp_path / "one.mrc").n_images == 1
    np.testing.assert_array_equal(StackReader().read(str(tmp_path / "one.mrc"), 0), image)


def test_stack_writer_writes_chunks_atomically(tmp_path):
    path = tmp_path / "out" / "sim.mrcs"
    images = np.random.default_rng(1).normal(size=(10, 12, 12)).astype(np.float32)
    writer = StackWriter(path, n_images=10, box=12, pixel_size=1.7)
    for start in range(0, 10, 4):
        writer.write(start, images[start : start + 4])
    assert not path.exists()  # only the temporary file exists until close
    writer.close()
    with mrcfile.open(path) as mrc:
        np.testing.assert_array_equal(mrc.data, images)
        assert mrc.voxel_size.x == pytest.approx(1.7, rel=1e-6)
        assert mrc.header.dmax == pytest.approx(images.max())
        assert mrc.header.dmean == pytest.approx(images.mean(), abs=1e-6)
    assert sorted(p.name for p in path.parent.iterdir()) == ["sim.mrcs"]


def test_stack_writer_error_leaves_nothing(tmp_path):
    path = tmp_path / "sim.mrcs"
    with pytest.raises(RuntimeError), StackWriter(path, 3, 8, 1.0) as writer:
        writer.write(0, np.zeros((1, 8, 8)))
        raise RuntimeError("simulation failed")
    assert list(tmp_path.iterdir()) == []


def test_reading_one_image_of_a_huge_stack_is_lazy(tmp_path):
    # A 2 GiB stack (sparse on disk): opening it and reading one image must neither take
    # time nor memory proportional to its size.
    path = tmp_path / "huge.mrcs"
    n, box = 32768, 128
    with mrcfile.new_mmap(path, shape=(n, box, box), mrc_mode=2) as mrc:
        mrc.data[n - 1] = 5.0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    reader = StackReader()
    image = reader.read(str(path), n - 1)
    elapsed = time.perf_counter() - start
    assert np.all(image == 5.0)
    assert elapsed < 1.0
    assert isinstance(reader._stack(str(path)), np.memmap)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 200 * 1024


def test_reader_pickles_without_its_open_files(tmp_path, kit):
    path = kit.write_mrcs(tmp_path / "s.mrcs", np.ones((2, 4, 4), np.float32))
    reader = StackReader(max_open=1)
    reader.read(str(path), 0)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._open == {} and clone.max_open == 1
    np.testing.assert_array_equal(clone.read(str(path), 1), np.ones((4, 4)))


def test_reader_keeps_at_most_max_open_files(tmp_path, kit):
    paths = [
        str(kit.write_mrcs(tmp_path / f"s{k}.mrcs", np.full((1, 4, 4), k, np.float32)))
        for k in range(4)
    ]
    reader = StackReader(max_open=2)
    for k, path in enumerate(paths):
        assert reader.read(path, 0)[0, 0] == k
    assert list(reader._open) == paths[2:]
    reader.close()
