"""`cryomotion reconstruct`: files, voxel size and origin, half maps, bad input."""

import mrcfile
import numpy as np
import pytest
import starfile

from cryomotion.cli.main import main


@pytest.fixture(scope="module")
def rigid(tmp_path_factory, adk_open_path):
    """300 rigid AdK particles (32 px, 3 Å/px, SNR 1; both endpoints the same model)."""
    sim = tmp_path_factory.mktemp("reconstruct_cli") / "sim"
    assert main([
        "simulate", "--endpoints", str(adk_open_path), str(adk_open_path), "--frames", "2",
        "--particles", "300", "--box", "32", "--pixel-size", "3.0", "--snr", "1",
        "--seed", "0", "--no-progress", "-o", str(sim),
    ]) == 0  # fmt: skip
    return sim


def test_reconstruct_writes_maps_and_fsc(rigid, tmp_path, capsys):
    out = tmp_path / "recon" / "map.mrc"
    mask = tmp_path / "mask.mrc"
    with mrcfile.new(mask) as mrc:
        mrc.set_data(np.ones((32, 32, 32), dtype=np.float32))
    code = main([
        "reconstruct", str(rigid / "particles.star"), "-o", str(out), "--halves",
        "--mask", str(mask), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    assert "half-map FSC (masked)" in capsys.readouterr().out
    for name in ("map.mrc", "half1.mrc", "half2.mrc"):
        with mrcfile.open(out.parent / name) as mrc:
            assert mrc.data.shape == (32, 32, 32)
            assert float(mrc.voxel_size.x) == pytest.approx(3.0)
            assert [float(mrc.header.origin[a]) for a in "xyz"] == [0.0, 0.0, 0.0]
    header = (out.parent / "fsc.tsv").read_text().splitlines()[0].split("\t")
    assert header[-2:] == ["unmasked", "masked"]
    assert (out.parent / "fsc.png").stat().st_size > 0


def test_reconstruct_box_and_indices(rigid, tmp_path):
    out = tmp_path / "small.mrc"
    code = main([
        "reconstruct", str(rigid / "particles.star"), "-o", str(out), "--box", "16",
        "--indices", "0-99", "--no-progress",
    ])  # fmt: skip
    assert code == 0
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (16, 16, 16)
        assert float(mrc.voxel_size.x) == pytest.approx(6.0)
    assert not (tmp_path / "half1.mrc").exists()


def _edit_star(source, target, edit):
    blocks = starfile.read(source, always_dict=True, parse_as_string=["rlnImageName"])
    blocks["particles"] = edit(blocks["particles"])
    starfile.write(blocks, target)
    return target


@pytest.mark.parametrize("case", ["no poses", "stack shorter than the star", "mask shape"])
def test_bad_input_is_one_line(rigid, tmp_path, capsys, case):
    star = rigid / "particles.star"
    extra = []
    if case == "no poses":
        star = _edit_star(star, rigid / "no_poses.star",
                          lambda p: p.drop(columns=["rlnAngleRot"]))  # fmt: skip
    elif case == "stack shorter than the star":
        def beyond_the_stack(p):
            names = p["rlnImageName"].where(p.index != 3, "000999@particles.mrcs")
            return p.assign(rlnImageName=names)

        star = _edit_star(star, rigid / "long.star", beyond_the_stack)
    else:
        mask = tmp_path / "mask.mrc"
        with mrcfile.new(mask) as mrc:
            mrc.set_data(np.ones((16, 16, 16), dtype=np.float32))
        extra = ["--mask", str(mask)]
    code = main(["reconstruct", str(star), "-o", str(tmp_path / "m.mrc"), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cryomotion reconstruct: error:") and err.count("\n") == 1, err
