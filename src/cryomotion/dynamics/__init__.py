"""Normal modes of elastic network models, extended to all atoms (seed 000, section 2.1).

- ``nodes``: coarse-graining (Cα / residue centroids / heavy atoms) and the node each atom
  follows;
- ``elastic_network``: KD-tree neighbour list and the sparse ANM Hessian;
- ``eigensolver``: lowest non-trivial eigenpairs, rigid-body modes detected and set apart;
- ``interpolation``: node displacements extended to all atoms, then orthonormalised;
- ``anm``: the pipeline, ``compute_normal_modes(model, n_modes, ...) -> NormalModes``;
- ``modes``: the ``NormalModes`` object and its .npz file;
- ``overlap``: overlap, cumulative and subspace overlap with a change, collectivity;
- ``mode_deformation``: X0 + U z as a batched torch operation.
"""
