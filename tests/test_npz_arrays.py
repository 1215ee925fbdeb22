"""`load_arrays`: .npz files a user could have written, read without pickles, checked."""

import numpy as np
import pytest

from cryomotion.errors import InputError
from cryomotion.npz_arrays import INTEGER, TEXT, Array, load_arrays, missing_keys

SPEC = {"shifts": ("particles", 2), "index": Array(("particles",), INTEGER)}


def test_reads_the_arrays_asked_for(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, shifts=np.zeros((4, 2)), index=np.arange(4), extra=np.ones(3), label="ca")
    arrays = load_arrays(path, SPEC, optional={"label": Array((), TEXT), "other": 1})
    assert sorted(arrays) == ["index", "label", "shifts"]
    assert arrays["shifts"].shape == (4, 2) and arrays["label"].item() == "ca"
    assert missing_keys(path, ["shifts", "nope", "other"]) == ["nope", "other"]


def test_object_arrays_are_one_line_errors_naming_file_and_key(tmp_path):
    path = tmp_path / "latents.npz"
    np.savez(path, shifts=np.array([[1, "x"], [None, 2]], dtype=object), index=np.arange(2))
    with pytest.raises(InputError, match=r"latents\.npz: array 'shifts' holds Python objects") as e:
        load_arrays(path, SPEC, what="a latents file")
    assert "\n" not in str(e.value) and "(particles, 2)" in str(e.value)
    assert "a latents file" in str(e.value)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"shifts": np.zeros((3, 2))}, r"missing array index \(expected index: shape \(part"),
        ({"shifts": np.zeros((3, 3)), "index": np.arange(3)}, r"'shifts' has shape \(3, 3\)"),
        ({"shifts": np.zeros(3), "index": np.arange(3)}, r"'shifts' has shape \(3,\)"),
        ({"shifts": np.zeros((3, 2)), "index": np.arange(4)}, "'index' has 4 particles"),
        ({"shifts": np.zeros((3, 2)), "index": np.zeros(3)}, "'index' holds float64"),
        ({"shifts": np.full((3, 2), "a"), "index": np.arange(3)}, "'shifts' holds <U1"),
        (
            {"shifts": np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]), "index": np.arange(3)},
            "'shifts' holds",
        ),
    ],
)
def test_wrong_arrays_are_input_errors(tmp_path, arrays, message):
    path = tmp_path / "a.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=message):
        load_arrays(path, SPEC)


def test_unreadable_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_arrays(tmp_path / "missing.npz", SPEC)
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(InputError, match="not a readable .npz file"):
        load_arrays(tmp_path / "text.npz", SPEC)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(InputError, match="single .npy array"):
        load_arrays(tmp_path / "single.npy", SPEC)
    pickled = tmp_path / "pickled.npz"
    np.save(tmp_path / "obj.npy", np.array([object()], dtype=object), allow_pickle=True)
    pickled.write_bytes((tmp_path / "obj.npy").read_bytes())  # a pickle in .npy clothing
    with pytest.raises(InputError, match="pickled.npz"):
        load_arrays(pickled, SPEC)
