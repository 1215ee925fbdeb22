"""cryoSPHERE recovers a known rigid-domain motion from simulated images (seed 001 set-up).

AdK open is the reference. Each particle's true conformation has the LID domain
(residues 122-159) turned as a rigid body about a fixed axis through its centre by a
known angle; the rest is fixed. Images are rendered with random poses, shifts and CTFs.
The VAE sees only the images; the decoder gets the poses and CTFs. Learning is judged on
the per-particle models (Cα-RMSD to the truth against the rigid reference); the learned
segmentation is not judged here (5 epochs move its boundaries only a little).
"""

import numpy as np
import torch

from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.analysis.segmentation import ADK_DOMAINS, domain_labels
from cryomotion.deform.segments import SegmentDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.models.schedule import Phase
from cryomotion.structure.io import read_model
from cryomotion.train.config import TrainingConfig
from cryomotion.train.trainer import Trainer


def rotate_lid(model, angles, axis):
    """(n, atoms, 3): the LID of ``model`` turned by ``angles`` (rad) about ``axis``
    through the LID's centre."""
    lid = domain_labels(model, ADK_DOMAINS)[model.residue_index] == "LID"
    center = model.coords[lid].mean(0)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    coords = np.repeat(model.coords[None], len(angles), axis=0)
    for i, angle in enumerate(angles):
        rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        coords[i, lid] = (model.coords[lid] - center) @ rotation.T + center
    return coords


def recover(simulate, adk_open_path, n, epochs, box, pixel_size, snr):
    open_state = read_model(adk_open_path)
    model = open_state.with_coords(open_state.coords - open_state.coords.mean(0)
                                   + (box // 2) * pixel_size)  # fmt: skip
    rng = np.random.default_rng(0)
    angles = rng.uniform(0.0, np.deg2rad(40.0), n)
    truth = rotate_lid(model, angles, np.array([1.0, 0.3, -0.5]))
    particles = simulate(model, truth, rng, box, pixel_size, True, snr, shift_sd=1.0)
    torch.manual_seed(0)
    latent_dim = 4
    deformation = SegmentDeformation.from_model(model, latent_dim, 4, segmentation_lr=1e-2)
    autoencoder = MotionModel.with_encoder(
        ImageEncoder(box, {"shifts": 2, "latents": latent_dim, "latent_log_var": latent_dim},
                     width=0.5),  # fmt: skip
        deformation,
        AtomRenderer.from_model(model, box, pixel_size, coarse=True),
        variational=True,
    )
    settings = TrainingConfig(epochs=epochs, batch_size=16, lr=3e-4, seed=0, workers=0)
    objective = ReconstructionObjective("correlation", prior_weights={"latent_kl": 1e-4})
    trainer = Trainer(autoencoder, particles, np.arange(n), np.arange(0), settings,
                      progress=False, schedule=[Phase("train", epochs, objective)])  # fmt: skip
    trainer.fit()
    predicted = trainer.predict(np.arange(n))
    order = np.argsort(predicted["index"])
    autoencoder.eval()
    with torch.no_grad():
        coords = deformation(torch.as_tensor(predicted["latents"][order])).coords.numpy()
    ca = model.ca_index[model.ca_index >= 0]
    rmsd = per_particle_rmsd(coords[:, ca], truth[:, ca])
    baseline = per_particle_rmsd(np.broadcast_to(model.coords[ca], truth[:, ca].shape),
                                 truth[:, ca])  # fmt: skip
    return rmsd, baseline


def test_lid_motion_recovered_fast(simulate_particles, adk_open_path):
    """Clean 32-px images, residue beads."""
    rmsd, baseline = recover(simulate_particles, adk_open_path, 768, 5, 32, 3.0, None)
    print(f"median Cα-RMSD {np.median(rmsd):.2f} Å, rigid reference {np.median(baseline):.2f} Å")
    assert np.median(rmsd) < 0.6 * np.median(baseline)
