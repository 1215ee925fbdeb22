"""The information limit of per-particle models on a simulated dataset with a known path.

When the conformations a simulation drew from are known (frames X_f with prior
probabilities p_f), the best any method can do for a particle is computable: render every
frame with the particle's own pose, shift and CTF, take the exact Gaussian likelihood of
its image under the simulator's white noise of std σ,

    log p(y | f) = −|y − ŷ_f|² / (2σ²) + const,

combine it with the prior and average the frames by their posterior

    w_f = p_f p(y | f) / Σ_g p_g p(y | g),      X̄ = Σ_f w_f X_f.

X̄ minimises the expected squared error given the image, so no estimator beats it on
average; its RMSD to the particle's true frame is the *limit*. Reported beside it: the
maximum-a-posteriori frame (the best single frame for the particle) and the posterior's
width, sqrt(Σ_f w_f RMSD(X_f, X̄)²), the error the posterior expects of X̄.

The same exact inference with less than the truth tells where a method's gap to the limit
comes from:

- ``box``: the images Fourier-cropped to the box a method trains on (the frequencies it
  never sees), the likelihood with the cropped noise's σ;
- ``models``: each frame replaced by what a deformation can make of it (M_f, e.g. the
  frame's projection on d normal modes, or its learned segments each fitted rigidly); the
  posterior over the frames is computed from the models' images, and its mean
  Σ_f w_f M_f is scored against the true frames: the best any inference can do with that
  deformation, knowing the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import torch
from tqdm import tqdm

from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.errors import InputError
from cryomotion.imaging.fourier import cropped_noise_std, fourier_crop
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.structure.io import read_model


def frame_posterior(
    images: torch.Tensor,
    frames: torch.Tensor,
    prior: torch.Tensor,
    rotations: torch.Tensor,
    shifts: torch.Tensor,
    ctf: torch.Tensor,
    renderer: AtomRenderer,
    noise_std: float,
) -> torch.Tensor:
    """Posterior probabilities (B, F) float64 of the frames given each particle's image.

    images (B, D, D) in the renderer's units with white noise of std ``noise_std``;
    frames (F, atoms, 3) Å in the renderer's frame; prior (F,) probabilities; rotations
    (B, 3, 3), shifts (B, 2) Å and CTF parameters (B, 8), each particle's own.
    """
    batch, n_frames = images.shape[0], frames.shape[0]
    if not noise_std > 0:
        raise ValueError(f"noise std {noise_std}: expected > 0 (clean images have no limit)")
    points = frames.float()[None].expand(batch, *frames.shape).reshape(-1, *frames.shape[1:])
    with torch.no_grad():
        rendered = renderer(
            points,
            rotations.float().repeat_interleave(n_frames, dim=0),
            shifts.float().repeat_interleave(n_frames, dim=0),
            ctf.float().repeat_interleave(n_frames, dim=0),
        ).reshape(batch, n_frames, *images.shape[-2:])
    residual = rendered.double() - images.double()[:, None]
    log_likelihood = -0.5 * residual.square().sum(dim=(-2, -1)) / noise_std**2
    with np.errstate(divide="ignore"):
        log_prior = torch.as_tensor(np.log(np.asarray(prior, dtype=np.float64)))
    log_posterior = log_prior.to(log_likelihood)[None] + log_likelihood
    return torch.softmax(log_posterior, dim=1)


@dataclass
class InformationLimit:
    """Per particle (n,): ``posterior_mean_rmsd`` (Å), the RMSD of the posterior mean to
    the true frame (the limit); ``map_frame`` and ``map_rmsd`` the most probable frame and
    its RMSD to the true one; ``posterior_width`` (Å) sqrt(Σ_f w_f RMSD(X_f, X̄)²);
    ``posterior`` (n, F). RMSDs over the atoms chosen (e.g. Cα), after superposition.
    ``particle_index`` (n,) which particles of the dataset."""

    particle_index: np.ndarray
    posterior: np.ndarray
    posterior_mean_rmsd: np.ndarray
    map_frame: np.ndarray
    map_rmsd: np.ndarray
    posterior_width: np.ndarray

    def summary(self) -> dict[str, float]:
        """Medians of the per-particle values, and how often the MAP frame is the true one."""
        return {
            "median_limit": float(np.median(self.posterior_mean_rmsd)),
            "mean_limit": float(np.mean(self.posterior_mean_rmsd)),
            "median_map_rmsd": float(np.median(self.map_rmsd)),
            "median_posterior_width": float(np.median(self.posterior_width)),
        }


def limit_from_posterior(
    posterior: np.ndarray,
    frames: np.ndarray,
    true_frame: np.ndarray,
    models: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(posterior mean RMSD, MAP frame, MAP RMSD, posterior width), each (n,), from the
    posterior (n, F), the frames (F, atoms, 3) Å (the atoms scored) and the true frames (n,);
    with ``models`` (F, atoms, 3) the estimates are made of them instead of the frames (and
    still scored against the true frames)."""
    posterior = np.asarray(posterior, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.float64)
    models = frames if models is None else np.asarray(models, dtype=np.float64)
    if models.shape != frames.shape:
        raise ValueError(f"models of shape {models.shape}; expected the frames' {frames.shape}")
    truth = frames[true_frame]
    mean = np.einsum("nf,fac->nac", posterior, models)
    limit = per_particle_rmsd(mean, truth)
    best = posterior.argmax(axis=1)
    map_rmsd = per_particle_rmsd(models[best], truth)
    # squared deviation of each model from each particle's posterior mean (no superposition:
    # X̄ and the models share a frame, and the posterior variance is about that mean)
    squared = ((models[None] - mean[:, None]) ** 2).sum(-1).mean(-1)  # (n, F)
    width = np.sqrt((posterior * squared).sum(axis=1))
    return limit, best, map_rmsd, width


def information_limit(
    dataset: str | Path,
    particles: np.ndarray | None = None,
    atoms: str = "ca",
    batch_size: int = 16,
    progress: bool = True,
    models: np.ndarray | None = None,
    box: int | None = None,
) -> InformationLimit:
    """The information limit of the simulated dataset in folder ``dataset`` (written by
    ``cryomotion simulate``: ``ground_truth.npz``, ``particles.mrcs``, ``reference.pdb``
    or ``.cif``), for the particles ``particles`` (default all).

    ``atoms``: "ca" scores Cα atoms, "all" every atom. The likelihood uses every atom
    (the images were rendered from them) and the simulator's noise σ. ``models`` (F, atoms,
    3) Å: what to render and average for each frame instead of the frame itself (every
    atom of the reference, in its order); ``box`` (px, even, at most the images'): the
    images Fourier-cropped to it first (module docstring).
    """
    folder = Path(dataset)
    truth_path = folder / "ground_truth.npz"
    if not truth_path.is_file():
        raise InputError(f"{folder}: no ground_truth.npz (expected a simulated dataset)")
    with np.load(truth_path, allow_pickle=False) as truth:
        fields = {k: truth[k] for k in truth.files}
    reference_path = next(
        (folder / n for n in ("reference.pdb", "reference.cif") if (folder / n).is_file()), None
    )
    if reference_path is None:
        raise InputError(f"{folder}: no reference.pdb or reference.cif")
    reference = read_model(reference_path)
    frames = fields["frame_coords"]
    if models is not None and np.shape(models) != frames.shape:
        raise InputError(
            f"models of shape {np.shape(models)}: expected the {frames.shape} of "
            f"{truth_path}'s frame_coords"
        )
    rendered = frames if models is None else np.asarray(models)
    noise_std = float(fields["noise_std"])
    if not noise_std > 0:
        raise InputError(f"{truth_path}: noise_std {noise_std}: clean images have no limit")
    with mrcfile.mmap(folder / "particles.mrcs", mode="r", permissive=True) as mrc:
        stack = mrc.data
        full_box, pixel_size = stack.shape[-1], float(mrc.voxel_size.x)
        box = full_box if box is None else int(box)
        if box != full_box:
            if box % 2 or not 2 <= box < full_box:
                raise InputError(f"box {box}: expected an even size of at most {full_box} px")
            noise_std = cropped_noise_std(noise_std, full_box, box)
        if particles is None:
            particles = np.arange(stack.shape[0])
        particles = np.asarray(particles, dtype=np.int64)
        renderer = AtomRenderer.from_model(reference, box, pixel_size * full_box / box)
        frames_t = torch.as_tensor(rendered, dtype=torch.float32)
        parts = []
        for start in tqdm(range(0, len(particles), batch_size), disable=not progress,
                          desc="information limit", unit="batch"):  # fmt: skip
            index = particles[start : start + batch_size]
            images = torch.as_tensor(np.asarray(stack[index], dtype=np.float32))
            parts.append(
                frame_posterior(
                    fourier_crop(images, box) if box != full_box else images,
                    frames_t,
                    fields["frame_probability"],
                    torch.as_tensor(fields["rotations"][index]),
                    torch.as_tensor(fields["shifts"][index]),
                    torch.as_tensor(fields["ctf"][index]),
                    renderer,
                    noise_std,
                ).numpy()
            )
    posterior = np.concatenate(parts)
    if atoms == "ca":
        selection = reference.ca_index[reference.ca_index >= 0]
    elif atoms == "all":
        selection = np.arange(reference.n_atoms)
    else:
        raise ValueError(f"atoms {atoms!r}: expected 'ca' or 'all'")
    limit, best, map_rmsd, width = limit_from_posterior(
        posterior,
        frames[:, selection],
        fields["frame_index"][particles],
        None if models is None else rendered[:, selection],
    )
    return InformationLimit(particles, posterior, limit, best, map_rmsd, width)
