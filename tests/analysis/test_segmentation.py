from dataclasses import replace

import matplotlib.image
import numpy as np
import pytest

from cryomotion.analysis.segmentation import (
    ADK_DOMAINS,
    SegmentRange,
    domain_labels,
    domain_recovery,
    hard_segments,
    membership_plot,
    ranges_table_markdown,
    segment_ranges,
    write_ranges_tsv,
    write_segmentation_model,
)
from cryomotion.structure.io import read_model


@pytest.fixture(scope="module")
def adk(adk_open_path):
    return read_model(adk_open_path)


@pytest.fixture(scope="module")
def two_chains(adk):
    """AdK cut into chain A (residues 1-107) and chain B (renumbered 1-107), where B's
    residue 30 becomes 29A (an insertion code)."""
    numbers = adk.residue_numbers.copy()
    in_b = numbers > 107
    chains = np.where(in_b, "B", "A")
    numbers[in_b] -= 107
    codes = adk.insertion_codes.copy()
    icode = in_b & (numbers == 30)
    numbers[icode] = 29
    codes[icode] = "A"
    return replace(adk, chain_ids=chains, residue_numbers=numbers, insertion_codes=codes)


def _toy_segments(n_res=214):
    # A 1-50 -> 0, A 51-107 -> 1, B 1-29 -> 1, B 29A-40 -> 2, B 41-107 -> 0
    seg = np.zeros(n_res, dtype=int)
    seg[50:107] = 1
    seg[107:136] = 1
    seg[136:147] = 2
    return seg


def test_hard_segments():
    m = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    assert hard_segments(m).tolist() == [0, 2, 0]
    with pytest.raises(ValueError):
        hard_segments(np.ones(3))


def test_segment_ranges_two_chains(two_chains, tmp_path):
    assert two_chains.n_residues == 214
    ranges = segment_ranges(two_chains, _toy_segments())
    assert ranges == [
        SegmentRange(0, "A", 1, 50, 50),
        SegmentRange(1, "A", 51, 107, 57),
        SegmentRange(1, "B", 1, 29, 29),
        SegmentRange(2, "B", "29A", 40, 11),
        SegmentRange(0, "B", 41, 107, 67),
    ]
    table = ranges_table_markdown(ranges)
    assert (
        table.splitlines()[0] == "| segment | chain | first_residue | last_residue | n_residues |"
    )
    assert "| 2 | B | 29A | 40 | 11 |" in table
    path = write_ranges_tsv(ranges, tmp_path / "out" / "ranges.tsv")
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == [
        "segment",
        "chain",
        "first_residue",
        "last_residue",
        "n_residues",
    ]
    assert lines[4] == "2\tB\t29A\t40\t11"
    assert len(lines) == 6
    with pytest.raises(ValueError):
        segment_ranges(two_chains, np.zeros(10, dtype=int))


def test_segment_ranges_single_chain_blank_id(adk):
    seg = np.zeros(adk.n_residues, dtype=int)
    seg[121:159] = 3
    ranges = segment_ranges(adk, seg)
    assert [(r.segment, r.first_residue, r.last_residue, r.n_residues) for r in ranges] == [
        (0, 1, 121, 121),
        (3, 122, 159, 38),
        (0, 160, 214, 55),
    ]
    assert ranges[0].chain == ""
    assert "| 3 | - | 122 | 159 | 38 |" in ranges_table_markdown(ranges)


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_segmentation_model_b_factors(two_chains, tmp_path, suffix):
    seg = _toy_segments()
    path = write_segmentation_model(two_chains, seg, tmp_path / f"seg{suffix}")
    back = read_model(path)
    assert back.n_atoms == two_chains.n_atoms
    assert np.array_equal(back.atom_names, two_chains.atom_names)
    assert np.array_equal(back.chain_ids, two_chains.chain_ids)
    assert np.array_equal(back.insertion_codes, two_chains.insertion_codes)
    np.testing.assert_allclose(back.coords, two_chains.coords, atol=1e-3)
    expected = seg[two_chains.residue_index] + 1
    np.testing.assert_allclose(back.b_factors, expected)
    assert back.b_factors.min() == 1.0


def test_domain_labels_adk(adk):
    labels = domain_labels(adk, ADK_DOMAINS)
    numbers = adk.residue_numbers[adk.residue_first_atom]
    assert (labels == "LID").sum() == 38 and (labels == "NMP").sum() == 30
    assert (labels == "CORE").sum() == 214 - 68
    assert labels[numbers == 121][0] == "CORE" and labels[numbers == 122][0] == "LID"
    assert labels[numbers == 159][0] == "LID" and labels[numbers == 160][0] == "CORE"
    assert labels[numbers == 30][0] == "NMP" and labels[numbers == 59][0] == "NMP"
    unlabeled = domain_labels(adk, ADK_DOMAINS, rest=None)
    assert (unlabeled == "").sum() == 146
    with pytest.raises(ValueError):
        domain_labels(adk, {"A": [(1, 10)], "B": [(10, 20)]})


def test_perfect_recovery(adk):
    labels = domain_labels(adk, ADK_DOMAINS)
    code = {"CORE": 4, "NMP": 0, "LID": 2}
    seg = np.array([code[x] for x in labels])
    result = domain_recovery(seg, labels, order=["LID", "NMP", "CORE"])
    assert result.adjusted_rand == pytest.approx(1.0)
    assert result.recovered() == {"LID": True, "NMP": True, "CORE": True}
    assert result.segments == {"LID": (2,), "NMP": (0,), "CORE": (4,)}
    assert result.n_residues == {"LID": 38, "NMP": 30, "CORE": 146}
    assert result.summary() == "LID 1.00/1.00, NMP 1.00/1.00, CORE 1.00/1.00 (ARI 1.00)"
    # default order: first appearance along the chain
    assert domain_recovery(seg, labels).domains == ("CORE", "NMP", "LID")


def test_split_domains_still_recovered(adk):
    labels = domain_labels(adk, ADK_DOMAINS)
    numbers = adk.residue_numbers[adk.residue_first_atom]
    seg = np.select(
        [labels == "LID", labels == "NMP", numbers < 30, numbers < 122],
        [np.where(numbers < 140, 0, 1), np.where(numbers < 45, 2, 3), 4, 5],
        default=4,
    )
    result = domain_recovery(seg, labels)
    for d in ("LID", "NMP", "CORE"):
        assert result.recovery[d] == 1.0 and result.purity[d] == 1.0
    assert result.segments == {"CORE": (4, 5), "NMP": (2, 3), "LID": (0, 1)}
    assert all(result.recovered(threshold=1.0).values())
    assert result.adjusted_rand < 1.0


def test_mixed_segment_known_answer(adk):
    labels = domain_labels(adk, ADK_DOMAINS)
    numbers = adk.residue_numbers[adk.residue_first_atom]
    code = {"CORE": 0, "NMP": 1, "LID": 2}
    seg = np.array([code[x] for x in labels])
    seg[(numbers >= 160) & (numbers < 170)] = 2  # 10 CORE residues join the LID segment
    result = domain_recovery(seg, labels)
    assert result.recovery["LID"] == 1.0
    assert result.purity["LID"] == pytest.approx(38 / 48)
    assert result.recovery["CORE"] == pytest.approx(136 / 146)
    assert result.purity["CORE"] == 1.0
    assert result.recovered(0.8) == {"CORE": True, "NMP": True, "LID": False}
    assert result.recovered(0.75)["LID"]


def test_random_segmentation_not_recovered(adk):
    labels = domain_labels(adk, ADK_DOMAINS)
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 3, size=adk.n_residues)
    result = domain_recovery(seg, labels, order=["LID", "NMP", "CORE"])
    assert abs(result.adjusted_rand) < 0.05
    assert not any(result.recovered().values())
    assert result.summary().startswith("LID ")


def test_membership_plot(two_chains, tmp_path):
    rng = np.random.default_rng(1)
    membership = rng.dirichlet(np.full(4, 0.3), size=two_chains.n_residues)
    png = membership_plot(two_chains, membership, tmp_path / "figs" / "membership")
    assert png == tmp_path / "figs" / "membership.png"
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    svg = png.with_suffix(".svg").read_text()
    assert "<svg" in svg
    with pytest.raises(ValueError):
        membership_plot(two_chains, membership[:10], tmp_path / "bad.png")
