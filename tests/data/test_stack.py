"""MRC stacks: headers, lazy reading, chunked atomic writing."""

import pickle
import resource
import time

import mrcfile
import numpy as np
import pytest

from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.stack import StackReader, StackWriter, read_stack_header
from cryomotion.errors import InputError


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


@pytest.mark.parametrize("dtype, mode", [(np.int8, 0), (np.int16, 1), (np.uint16, 6)])
def test_integer_stack_is_read_in_counts_with_one_warning(tmp_path, kit, caplog, dtype, mode):
    images = np.random.default_rng(2).integers(0, 100, size=(3, 8, 8)).astype(dtype)
    path = kit.write_mrcs(tmp_path / "counts.mrcs", images)
    with caplog.at_level("WARNING"):
        assert read_stack_header(path).mode == mode
        reader = StackReader()
        first, again = reader.read(str(path), 0), reader.read(str(path), 2)
        read_stack_header(path)
    warnings = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert f"mode {mode}" in warnings[0] and "as-is, in counts" in warnings[0]
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, images[0].astype(np.float32))  # not normalised
    np.testing.assert_array_equal(again, images[2].astype(np.float32))


def test_float_stack_gives_no_integer_warning(tmp_path, kit, caplog):
    path = kit.write_mrcs(tmp_path / "float.mrcs", np.zeros((2, 4, 4), np.float32))
    with caplog.at_level("WARNING"):
        read_stack_header(path)
        StackReader().read(str(path), 1)
    assert not caplog.records


@pytest.mark.parametrize("kind", ["gzip", "bz2"])
def test_compressed_stack_is_named_as_such(tmp_path, kit, kind):
    import bz2
    import gzip

    plain = kit.write_mrcs(tmp_path / "plain.mrcs", np.ones((2, 8, 8), np.float32))
    module = gzip if kind == "gzip" else bz2
    path = tmp_path / "packed.mrcs"
    path.write_bytes(module.compress(plain.read_bytes()))
    with pytest.raises(InputError) as info:
        read_stack_header(path)
    message = str(info.value)
    name = "gzip" if kind == "gzip" else "bzip2"
    assert str(path) in message and f"{name}-compressed" in message and "decompress" in message
    assert "truncated" not in message


def test_a_volume_is_not_an_image_stack(tmp_path):
    volume = np.zeros((16, 16, 16), np.float32)
    path = tmp_path / "map.mrc"
    with mrcfile.new(path, data=volume) as mrc:
        mrc.set_volume()
        mrc.voxel_size = 1.0
    with pytest.raises(InputError, match="3-D volume.*not an image stack") as info:
        read_stack_header(path)
    assert str(path) in str(info.value)
    # a stack written without set_image_stack (mrcfile's default space group 1) still reads
    # as a stack when named .mrcs; a cryoSPARC-style .mrc stack (space group 0) reads too
    with mrcfile.new(tmp_path / "stack.mrcs", data=volume[:3]):
        pass
    assert read_stack_header(tmp_path / "stack.mrcs").n_images == 3
    with mrcfile.new(tmp_path / "stack.mrc", data=volume[:3]) as mrc:
        mrc.set_image_stack()
    assert read_stack_header(tmp_path / "stack.mrc").n_images == 3


def test_nan_pixel_error_pickles_and_stays_one_line_from_dataloader_workers(tmp_path, kit):
    import torch

    from cryomotion.data.stack import ImageValueError

    error = ImageValueError("/data/s.mrcs: image 2 has NaN")
    clone = pickle.loads(pickle.dumps(error))
    assert isinstance(clone, InputError) and str(clone) == str(error)
    assert str(pickle.loads(pickle.dumps(InputError("a: b")))) == "a: b"

    table, _ = kit.make_table(tmp_path, per_stack=4)
    stack = tmp_path / "Extract" / "stack1.mrcs"
    with mrcfile.open(stack, mode="r+") as mrc:
        mrc.data[3, 1, 1] = np.inf
    loader = torch.utils.data.DataLoader(ParticleDataset(table), batch_size=2, num_workers=1)
    with pytest.raises(InputError) as info:
        list(loader)
    message = str(info.value)
    assert message.startswith(f"{stack.resolve()}: image 3 ") and "NaN or infinite" in message
    assert "\n" not in message and "Traceback" not in message


def test_float16_stack_round_trip_keeps_float16_precision_and_mode_12(tmp_path):
    path = tmp_path / "half.mrcs"
    images = np.random.default_rng(2).normal(scale=30.0, size=(7, 10, 10)).astype(np.float32)
    with StackWriter(path, n_images=7, box=10, pixel_size=1.1, dtype="float16") as writer:
        writer.write(0, images[:4])
        writer.write(4, images[4:])
    header = read_stack_header(path)
    assert header.mode == 12 and header.n_images == 7
    assert path.stat().st_size == 1024 + 7 * 10 * 10 * 2
    read = StackReader().read_many(str(path), np.arange(7))
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, images.astype(np.float16).astype(np.float32))
    # float16 keeps 11 significant bits: relative error at most 2^-11
    np.testing.assert_allclose(read, images, rtol=2.0**-11, atol=2.0**-24)
    with mrcfile.open(path) as mrc:
        assert mrc.data.dtype == np.float16
        assert mrc.header.dmax == pytest.approx(float(read.max()))


def test_float16_writer_refuses_values_beyond_its_range(tmp_path):
    with pytest.raises(ValueError, match="float16 range"), StackWriter(
        tmp_path / "s.mrcs", 1, 4, 1.0, dtype="float16"
    ) as writer:
        writer.write(0, np.full((4, 4), 1e5, np.float32))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="float16, float32|float32, float16"):
        StackWriter(tmp_path / "s.mrcs", 1, 4, 1.0, dtype="int8")


def test_read_many_returns_the_images_asked_in_their_order(tmp_path, kit):
    images = np.random.default_rng(3).normal(size=(9, 6, 6)).astype(np.float32)
    path = str(kit.write_mrcs(tmp_path / "s.mrcs", images))
    reader = StackReader()
    indices = np.array([8, 2, 3, 3, 0, 4, 7])  # shuffled, with a run and a repeat
    np.testing.assert_array_equal(reader.read_many(path, indices), images[indices])
    for index in indices:
        np.testing.assert_array_equal(reader.read(path, index), images[index])
    assert reader.read_many(path, []).shape == (0, 6, 6)
    with pytest.raises(IndexError, match="index 9 is out of range"):
        reader.read_many(path, [1, 9])


def test_reading_a_whole_stack_does_not_grow_resident_memory(tmp_path):
    # 64 MiB stack read image batch by image batch: pages stay in the page cache, not in
    # the process (a memory map would hold every page read as resident memory).
    path = tmp_path / "big.mrcs"
    n, box = 4096, 64
    with StackWriter(path, n, box, 1.0, dtype="float32") as writer:
        for start in range(0, n, 512):
            writer.write(start, np.ones((512, box, box), np.float32))
    reader = StackReader()
    reader.read_many(str(path), np.arange(256))
    with open("/proc/self/status") as status:
        before = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    for start in range(0, n, 256):
        reader.read_many(str(path), np.arange(start, start + 256))
    with open("/proc/self/status") as status:
        after = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    assert after - before < 32 * 1024  # KiB: well under the 64 MiB read
