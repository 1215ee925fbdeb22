"""`cryomotion reconstruct`: files, voxel size and origin, half maps, bad input."""

import mrcfile
import numpy as np
import pytest
import starfile

from cryomotion.cli.main import main


@pytest.fixture(scope="module")
def rigid(simulate_with_cli, adk_open_path):
    """300 rigid AdK particles (32 px, 3 Å/px, SNR 1; both endpoints the same model)."""
    return simulate_with_cli("reconstruct_cli", adk_open_path, 2, 300, 32, 3.0)


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
    for name in ("map.mrc", "map_half1.mrc", "map_half2.mrc"):
        with mrcfile.open(out.parent / name) as mrc:
            assert mrc.data.shape == (32, 32, 32)
            assert float(mrc.voxel_size.x) == pytest.approx(3.0)
            assert [float(mrc.header.origin[a]) for a in "xyz"] == [0.0, 0.0, 0.0]
    header = (out.parent / "map_fsc.tsv").read_text().splitlines()[0].split("\t")
    assert header[-2:] == ["unmasked", "masked"]
    assert (out.parent / "map_fsc.png").stat().st_size > 0
    # a second reconstruction into the same folder keeps the first one's files
    other = out.parent / "subset.mrc"
    assert main([
        "reconstruct", str(rigid / "particles.star"), "-o", str(other), "--halves",
        "--indices", "0-99", "--no-progress",
    ]) == 0  # fmt: skip
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        f"{stem}{suffix}" for stem in ("map", "subset")
        for suffix in (".mrc", "_half1.mrc", "_half2.mrc", "_fsc.tsv", "_fsc.png")
    )  # fmt: skip


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
    assert not (tmp_path / "small_half1.mrc").exists()


def test_outputs_never_overwrite_inputs_nor_land_in_a_dataset(rigid, tmp_path, capsys):
    star = rigid / "particles.star"
    mask = tmp_path / "mask.mrc"
    with mrcfile.new(mask) as mrc:
        mrc.set_data(np.ones((32, 32, 32), dtype=np.float32))
    cases = [
        (["-o", str(rigid / "particles.mrcs")], "is the input"),  # the stack
        (["-o", str(mask), "--mask", str(mask)], "is the input"),
        (["-o", str(tmp_path / "mask_half1.mrc"), "--halves"], None),  # fine: not an input
        (["-o", str(rigid / "map.mrc")], "is inside the existing simulated dataset"),
    ]
    for extra, message in cases:
        stack = (rigid / "particles.mrcs").read_bytes()
        code = main(["reconstruct", str(star), "--indices", "0-49", "--no-progress", *extra])
        err = capsys.readouterr().err
        if message is None:
            assert code == 0, err
            continue
        assert code == 2 and message in err and "--force" in err, err
        assert (rigid / "particles.mrcs").read_bytes() == stack
    # a side file (MAP_half1.mrc) that is an input is refused as well
    side = tmp_path / "m_half1.mrc"
    side.write_bytes(mask.read_bytes())
    code = main(["reconstruct", str(star), "-o", str(tmp_path / "m.mrc"), "--halves",
                 "--no-progress", "--indices", "0-49", "--mask", str(side)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"-o {side}: is the input" in err, err
    assert not (tmp_path / "m.mrc").exists()
    # --force writes into the dataset folder
    code = main(["reconstruct", str(star), "-o", str(rigid / "forced.mrc"), "--force",
                 "--indices", "0-49", "--no-progress"])  # fmt: skip
    assert code == 0 and (rigid / "forced.mrc").is_file()
    (rigid / "forced.mrc").unlink()


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
