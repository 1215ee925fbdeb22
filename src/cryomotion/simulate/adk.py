"""The bundled adenylate kinase (AdK) structures and their open -> closed morph.

``resources/adk_open.pdb`` and ``resources/adk_closed.pdb`` hold the same atoms; the
closed state is superposed on the open one and interpolated frame by frame. The demo
(``cryomotion demo``) and the benchmarks simulate their particles along this morph.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np

from cryomotion.simulate.conformations import morph
from cryomotion.structure.io import check_same_atoms, read_model
from cryomotion.structure.model import AtomicModel
from cryomotion.structure.superpose import superpose


def adk_morph(n_frames: int) -> tuple[AtomicModel, np.ndarray]:
    """(reference model = AdK open, frames (F, atoms, 3) Å: open -> closed, superposed)."""
    resources = files("cryomotion") / "resources"
    open_state = read_model(resources / "adk_open.pdb")
    closed = read_model(resources / "adk_closed.pdb")
    check_same_atoms(open_state, closed, "adk_closed.pdb")
    closed_aligned = superpose(closed.coords, open_state.coords)
    return open_state, morph(open_state.coords, closed_aligned, n_frames)
