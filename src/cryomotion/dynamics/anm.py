"""Normal modes of an atomic model: coarse-grain, ANM Hessian, lowest modes, all-atom basis.

The pipeline of seed 000 (section 2.1): the Hessian of an elastic network on coarse-grained
nodes, its d lowest non-trivial eigenvectors, interpolated to every atom of the model and
orthonormalised.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from cryomotion import __version__
from cryomotion.dynamics.eigensolver import nontrivial_modes
from cryomotion.dynamics.elastic_network import anm_hessian
from cryomotion.dynamics.interpolation import (
    extend_to_atoms,
    interpolation_weights,
    orthonormalize,
)
from cryomotion.dynamics.modes import NormalModes
from cryomotion.dynamics.nodes import atomic_masses, select_nodes
from cryomotion.errors import InputError
from cryomotion.structure.model import AtomicModel

log = logging.getLogger(__name__)

#: Default kernel width σ (Å) of the coarse-grained → all-atom interpolation.
DEFAULT_KERNEL_WIDTH = 3.0


def compute_normal_modes(
    model: AtomicModel,
    n_modes: int = 20,
    nodes: str = "ca",
    cutoff: float = 15.0,
    gamma: float = 1.0,
    distance_exponent: float = 0.0,
    kernel_width: float = DEFAULT_KERNEL_WIDTH,
    mass_weighted: bool = False,
    method: str = "auto",
) -> NormalModes:
    """The ``n_modes`` lowest non-trivial ANM modes of ``model``, extended to all its atoms.

    Parameters
    ----------
    model : the reference atomic model X0 (all its atoms get a displacement).
    n_modes : d, number of non-trivial modes (0 allowed).
    nodes : "ca" (Cα / C4' per residue), "centroid" (one per residue) or "heavy"
        (all heavy atoms).
    cutoff : Å, spring cutoff of the network.
    gamma : spring constant γ.
    distance_exponent : p in k = γ (3.8 Å / r)^p (0: uniform springs).
    kernel_width : σ in Å of the all-atom interpolation (0: each atom follows its own node).
    mass_weighted : diagonalise M^(-1/2) H M^(-1/2) with node masses (summed atomic masses)
        and orthonormalise in the mass metric.
    method : eigensolver, "auto", "dense" or "sparse".

    Raises
    ------
    InputError
        Bad parameters, no usable nodes, a disconnected network
        (``DisconnectedNetworkError``), or more modes than the network has.
    """
    if n_modes < 0:
        raise InputError(f"number of modes {n_modes}: expected a non-negative integer")
    if kernel_width < 0:
        raise InputError(f"kernel width {kernel_width}: expected a non-negative width in Å")
    network = select_nodes(model, nodes)
    available = 3 * network.n_nodes - 6
    if n_modes > available:
        raise InputError(
            f"{model.source or 'model'}: {n_modes} modes asked for, but a network of "
            f"{network.n_nodes} '{nodes}' nodes has only {max(available, 0)} non-trivial modes "
            f"(expected at most that many)"
        )
    hessian = anm_hessian(network.coords, cutoff, gamma, distance_exponent, network.labels)
    if mass_weighted:
        scale = sp.diags(np.repeat(1.0 / np.sqrt(network.masses), 3))
        hessian = (scale @ hessian @ scale).tocsc()
    spectrum = nontrivial_modes(hessian, n_modes, method)
    cg_vectors = spectrum.vectors
    if mass_weighted:
        cg_vectors = cg_vectors * np.repeat(1.0 / np.sqrt(network.masses), 3)[None, :]
    cg_vectors = cg_vectors.reshape(len(cg_vectors), network.n_nodes, 3)

    masses = atomic_masses(model.elements)
    weights = interpolation_weights(model.coords, network, kernel_width)
    vectors = orthonormalize(
        extend_to_atoms(cg_vectors, weights), masses if mass_weighted else None
    )
    log.info(
        "%d modes of a %d-node '%s' network (cutoff %g Å) extended to %d atoms",
        len(spectrum.eigenvalues),
        network.n_nodes,
        nodes,
        cutoff,
        model.n_atoms,
    )
    return NormalModes(
        eigenvalues=spectrum.eigenvalues,
        vectors=vectors,
        coords=model.coords,
        masses=masses,
        cg_vectors=cg_vectors,
        cg_indices=network.atom_indices,
        node_coords=network.coords,
        rigid_eigenvalues=spectrum.rigid_eigenvalues,
        nodes=nodes,
        cutoff=float(cutoff),
        gamma=float(gamma),
        distance_exponent=float(distance_exponent),
        kernel_width=float(kernel_width),
        mass_weighted=bool(mass_weighted),
        source=model.source,
        version=__version__,
    )
