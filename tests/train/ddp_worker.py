"""Train a tiny model under torchrun (or in-process with world size 1) and save the result.

python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.per_particle import ParticleState
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model
from cryomotion.train.config import TrainingConfig
from cryomotion.train.distributed import DistributedContext, init_distributed, shutdown
from cryomotion.train.trainer import Trainer

BOX, PIXEL_SIZE, N = 16, 6.0, 64


class Particles(TensorDataset):
    def __getitem__(self, i):
        image, rotation, shift, ctf = super().__getitem__(i)
        index = torch.tensor(i, dtype=torch.int64)
        return {"image": image, "rotation": rotation, "shift": shift, "ctf": ctf, "index": index}


def train_parameters(context: DistributedContext, checkpoint: Path | None = None) -> dict:
    from importlib.resources import files

    model = read_model(files("cryomotion") / "resources" / "adk_open.pdb")
    coords = model.coords - model.coords.mean(0) + (BOX // 2) * PIXEL_SIZE
    model = model.with_coords(coords)
    rng = np.random.default_rng(1)
    modes = rng.normal(size=(2, model.n_atoms, 3))
    modes /= np.linalg.norm(modes.reshape(2, -1), axis=1)[:, None, None]
    ctf = np.zeros((N, 8))
    ctf[:, :2] = 10000.0
    ctf[:, 3:6] = (300.0, 2.7, 0.1)
    dataset = Particles(
        torch.as_tensor(rng.normal(size=(N, BOX, BOX)), dtype=torch.float32),
        torch.as_tensor(uniform_rotations(N, rng), dtype=torch.float32),
        torch.as_tensor(rng.normal(size=(N, 2)), dtype=torch.float32),
        torch.as_tensor(ctf, dtype=torch.float32),
    )
    torch.manual_seed(0)
    encoder = ImageEncoder(BOX, {"shifts": 2, "latents": 2}, width=0.25, norm="group")
    # with a per-particle pose table: its rows are refined by each process for its own
    # particles and all-gathered after every step
    autoencoder = MotionModel.with_encoder(
        encoder,
        NormalModeDeformation(coords, modes),
        AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
        pose_table=ParticleState(N, [0.01, 0.01, 0.01, 0.1, 0.1]),
    )
    settings = TrainingConfig(epochs=2, batch_size=16, lr=1e-3, seed=5, workers=0)
    trainer = Trainer(
        autoencoder,
        dataset,
        np.arange(8, N),
        np.arange(8),
        settings,
        context=context,
        checkpoint_path=checkpoint,
        progress=False,
    )
    trainer.fit()
    predicted = trainer.predict(np.arange(N))
    state = {k: v.detach().cpu().clone() for k, v in trainer.module.state_dict().items()}
    return {"state": state, **{k: torch.as_tensor(v) for k, v in predicted.items()}}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    context = init_distributed("cpu")
    try:
        result = train_parameters(context, out.with_suffix(".ckpt"))
        if context.is_main:
            result["world_size"] = context.world_size
            torch.save(result, out)
    finally:
        shutdown(context)
