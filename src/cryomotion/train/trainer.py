"""The training loop shared by every system.

A system's schedule is a list of phases (``models.schedule``); each phase minimises its
objective with a fresh Adam over the parameter groups it trains. After each outer step,
per-particle tables (a pose table under ``--pose-mode refine``) take their own inner
steps on the unwrapped module and are all-gathered across processes. A seeded
``DistributedSampler`` orders each epoch (``set_epoch``), so one process and N torchrun
processes with the same global batch see the same batches; checkpoints after every epoch
(and optionally every N steps) hold the model, the optimizer, the random generator
states and the position in the epoch, so a killed run resumes exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from cryomotion.errors import InputError
from cryomotion.imaging.likelihood import IMAGE_LOSSES
from cryomotion.imaging.pose import Pose
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.models.polish import (
    LatentPrior,
    PolishSettings,
    candidate_energies,
    candidate_posterior,
    fit_candidate_masses,
    latent_candidates,
    negative_log_likelihood,
)
from cryomotion.models.polish import polish as polish_estimates
from cryomotion.models.schedule import Phase, phase_at, total_epochs
from cryomotion.train.checkpoint import (
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from cryomotion.train.config import TrainingConfig
from cryomotion.train.distributed import (
    DistributedContext,
    all_reduce_gradients,
    all_reduce_max,
    all_reduce_sum,
    barrier,
    gather_arrays,
)
from cryomotion.train.lr_schedule import learning_rate_factor
from cryomotion.train.metrics import MetricsLog
from cryomotion.train.sanity import (
    OUTSIDE_ATOMS,
    OUTSIDE_PARTICLES,
    outside_fraction,
    visible_radius,
)

log = logging.getLogger(__name__)


class TrainingDiverged(InputError):
    """Training stopped because its models left the box (a one-line message for the user)."""


# The inner steps at inference shrink to this fraction of the pose table's step sizes.
PREDICT_FINAL_RATE = 0.1
# candidates per image in refine_decoder's M-step: the posterior's bulk at −10 dB, 4 renders
DECODER_TOP = 4


def check_refinable(deformation: torch.nn.Module, owner: str = "this system's") -> None:
    """An InputError unless ``deformation`` has a decoder for ``Trainer.refine_decoder`` to
    refit (segments, atomvae; ``owner`` names it in the message, e.g. "the nma")."""
    if not isinstance(getattr(deformation, "decoder", None), torch.nn.Module):
        raise InputError(
            f"--polish-decoder: {owner} deformation has no decoder to refine "
            "(segments and atomvae have one)"
        )


def refit_groups(deformation: torch.nn.Module, lr: float, training_lr: float) -> list[dict]:
    """The optimizer groups ``Trainer.refine_decoder`` refits: every learned group of
    ``deformation`` (segments: the decoder and the segmentation; atomvae: the decoder), each
    at its training rate times ``lr`` / ``training_lr``, so a group that trained faster
    (segments' ``segmentation_lr``) is refitted faster too."""
    groups = []
    for group in deformation.parameter_groups(training_lr):
        parameters = [p for p in group["params"] if p.requires_grad]
        if parameters:
            rate = group.get("lr", training_lr) * lr / training_lr
            groups.append({**group, "params": parameters, "lr": rate})
    return groups


def _batches(indices: np.ndarray, size: int) -> list[list[int]]:
    return [indices[i : i + size].tolist() for i in range(0, len(indices), size)]


class Trainer:
    """Trains a ``MotionModel`` on the particles ``train_indices`` of ``dataset``.

    ``schedule`` is the list of phases (default: one phase of ``settings.epochs`` epochs
    minimising the L2 reconstruction objective). ``pose_steps`` is the number of inner
    steps a pose table takes per batch (and, at inference, ``predict_pose_steps``).

    ``dataset`` items are dicts with ``image`` (D, D), ``rotation`` (3, 3), ``shift`` (2,)
    Å, ``ctf`` (8,) and ``index``. ``settings.batch_size`` is the global batch, split
    evenly across the processes of ``context``. Rank 0 writes ``checkpoint_path`` and
    ``metrics_path`` (either may be None). ``on_step(epoch, batch)`` is called after each
    optimizer step (epoch and batch counted from 0).

    With ``patience`` (epochs) training stops early once the test loss has not improved for
    that many epochs, and the model returns to its state at the best test loss (the best
    state is kept in memory: a resumed run starts counting afresh).
    """

    def __init__(
        self,
        model: MotionModel,
        dataset: Dataset,
        train_indices: np.ndarray,
        test_indices: np.ndarray,
        settings: TrainingConfig,
        context: DistributedContext | None = None,
        checkpoint_path: str | Path | None = None,
        metrics_path: str | Path | None = None,
        use_file_shifts: bool = True,
        progress: bool = True,
        on_step: Callable[[int, int], None] | None = None,
        schedule: list[Phase] | None = None,
        pose_steps: int = 2,
        predict_pose_steps: int = 40,
        polish_settings: PolishSettings | None = None,
        patience: int | None = None,
        polish_dataset: Dataset | None = None,
    ):
        self.context = context or DistributedContext()
        self.settings = settings
        if schedule is None:
            schedule = [Phase("train", settings.epochs, ReconstructionObjective())]
        self.schedule = list(schedule)
        self.epochs = total_epochs(self.schedule)
        self.pose_steps = pose_steps
        self.predict_pose_steps = predict_pose_steps
        self.polish_settings = polish_settings or PolishSettings()
        # the same particles at the box the polish compares with (None: the training box)
        self.polish_dataset = polish_dataset
        # EM iterations ``refine_decoder`` has run on the decoder since the last epoch
        self.decoder_iterations = 0
        world = self.context.world_size
        if settings.batch_size < world or settings.batch_size % world:
            raise InputError(
                f"--batch-size {settings.batch_size}: expected a multiple of the {world} "
                "training processes"
            )
        if len(train_indices) == 0:
            raise InputError("no particles to train on (expected a non-empty training set)")
        self.local_batch = settings.batch_size // world
        # DistributedSampler gives each process ceil(n / world) particles an epoch
        per_process = math.ceil(len(train_indices) / world)
        self.batches_per_epoch = math.ceil(per_process / self.local_batch)
        self.dataset = dataset
        self.train_indices = np.asarray(train_indices, dtype=np.int64)
        self.test_indices = np.asarray(test_indices, dtype=np.int64)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.metrics = MetricsLog(metrics_path) if metrics_path else None
        self.use_file_shifts = use_file_shifts
        self.progress = progress and self.context.is_main
        self.on_step = on_step

        device = self.context.device
        self.module = model.to(device)
        self.model: torch.nn.Module = self.module
        if self.context.distributed:
            if device.type == "cuda":
                self.module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.module)
            elif any(isinstance(m, torch.nn.BatchNorm2d) for m in self.module.modules()):
                log.warning(
                    "batch normalisation under DDP on the CPU uses per-process statistics "
                    "(SyncBatchNorm needs CUDA); use norm 'group' for the exact global batch"
                )
            # Only the inference's buffers (batch-norm statistics) change during training and
            # need DDP's broadcast; the deformation's, the renderer's and the intensity's are
            # constants, identical on every rank, and per-particle tables are all-gathered
            # row by row after each step (ParticleState.sync_rows).
            tables = set(self.module.per_particle_buffers())
            self.module._ddp_params_and_buffers_to_ignore = [
                name
                for name, _ in self.module.named_buffers()
                if not name.startswith("inference.") or name in tables
            ]
            # some parameters have no gradient in a phase that renders nothing (DeepHEMNMA's
            # regression: the intensity scale) or renders the undeformed points (AtomVAE's
            # pose phases: the conformation posterior, the decoder); DDP must look for them
            every_parameter = all(
                isinstance(phase.objective, ReconstructionObjective) and phase.use_conformation
                for phase in self.schedule
            )
            self.model = DistributedDataParallel(
                self.module,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=not every_parameter,
            )
        self.phase_index = 0
        self.optimizer = self._optimizer(self.schedule[0])
        self.sampler = DistributedSampler(
            range(len(self.train_indices)),
            num_replicas=world,
            rank=self.context.rank,
            shuffle=True,
            seed=settings.seed,
        )
        self.epoch = 0  # completed epochs
        self.batch = 0  # batches done in the current epoch
        self.loss_sum = 0.0  # this process's summed per-image loss in the current epoch
        self.loss_count = 0
        self.elapsed = 0.0  # seconds of training before this process started (resumed runs)
        # early stopping: the best test loss, the model state there, epochs since
        self.patience = patience
        self.best_loss = float("inf")
        self.best_state: dict | None = None
        self.stale_epochs = 0

    # -- phases -----------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self.schedule[self.phase_index]

    def _optimizer(self, phase: Phase) -> torch.optim.Adam:
        """A fresh Adam over the named parameter groups ``phase`` trains."""
        groups = [
            group
            for group in self.module.parameter_groups(self.settings.lr)
            if phase.trains(group.get("name", ""))
        ]
        if not groups:
            raise InputError(f"phase {phase.name!r} trains no parameters (groups {phase.train})")
        optimizer = torch.optim.Adam(groups, lr=self.settings.lr)
        # each group's own starting rate, which the schedule scales (a restored optimizer
        # state brings the decayed rates of its last step)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        return optimizer

    def _schedule_learning_rate(self) -> None:
        """Set each group's rate for the step about to be taken (``training.lr_schedule``):
        its progress through the current phase, counted in batches."""
        if self.settings.lr_schedule == "constant":
            return
        _, start = phase_at(self.schedule, self.epoch)
        per_epoch = max(self.batches_per_epoch, 1)
        done = (self.epoch - start) * per_epoch + self.batch
        total = max(self.phase.epochs * per_epoch - 1, 1)
        factor = learning_rate_factor(
            self.settings.lr_schedule, done / total, self.settings.lr_final
        )
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def _enter_phase(self, epoch: int) -> None:
        """Switch to the phase of ``epoch`` (a fresh optimizer) if it is not the current one."""
        index, _ = phase_at(self.schedule, epoch)
        if index != self.phase_index:
            self.phase_index = index
            self.optimizer = self._optimizer(self.phase)
            if self.context.is_main:
                log.info("phase %d/%d: %s", index + 1, len(self.schedule), self.phase.name)

    def image_loss(self, rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """The current phase's per-image data term on (B, D, D) images (pose refinement)."""
        objective = self.phase.objective
        return IMAGE_LOSSES[getattr(objective, "real_likelihood", "l2")](rendered, measured)

    # -- data -------------------------------------------------------------------------
    def _loader(
        self, batches: list[list[int]], seed: int, dataset: Dataset | None = None
    ) -> DataLoader:
        workers = self.settings.workers
        if workers < 0:  # auto: the CPU is busy training; a GPU needs images fed to it
            workers = 4 if self.context.device.type == "cuda" else 0
        return DataLoader(
            self.dataset if dataset is None else dataset,
            batch_sampler=batches,
            num_workers=workers,
            pin_memory=self.context.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    def _to_device(self, batch: dict) -> dict:
        device = self.context.device
        moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if not self.use_file_shifts:
            moved["shift"] = torch.zeros_like(moved["shift"])
        return moved

    def device_batches(self, indices: np.ndarray, dataset: Dataset | None = None):
        """The particles ``indices`` in batches of this process's size, on the device (from
        ``dataset``; None: the training one)."""
        order = np.asarray(indices, dtype=np.int64)
        batches = _batches(order, self.local_batch)
        for batch in self._loader(batches, seed=self.settings.seed, dataset=dataset):
            yield self._to_device(batch)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches (dataset indices) of ``epoch``, in order."""
        self.sampler.set_epoch(epoch)
        order = self.train_indices[np.fromiter(iter(self.sampler), dtype=np.int64)]
        return _batches(order, self.local_batch)

    # -- checkpoints ------------------------------------------------------------------
    def save(self) -> None:
        """Rank 0: write the checkpoint (atomically)."""
        if not (self.context.is_main and self.checkpoint_path):
            return
        save_checkpoint(
            self.checkpoint_path,
            epoch=self.epoch,
            batch=self.batch,
            phase=self.phase_index,
            model=self.module.state_dict(),
            optimizer=self.optimizer.state_dict(),
            progress={
                "loss_sum": self.loss_sum,
                "loss_count": self.loss_count,
                "elapsed": self.elapsed,
                "decoder_iterations": self.decoder_iterations,
            },
            **rng_state(),
        )

    def restore(self) -> bool:
        """Continue from the checkpoint if there is one; True if it was loaded."""
        if not (self.checkpoint_path and self.checkpoint_path.is_file()):
            return False
        payload = load_checkpoint(self.checkpoint_path)  # on the CPU; copied to the device below
        self._load_model_state(payload["model"])
        self.epoch, self.batch = int(payload["epoch"]), int(payload["batch"])
        # checkpoints from before phases existed hold phase 0's optimizer
        self.phase_index = int(payload.get("phase", 0))
        self.optimizer = self._optimizer(self.phase)
        self.optimizer.load_state_dict(payload["optimizer"])
        progress = payload["progress"]
        self.loss_sum = float(progress["loss_sum"])
        self.loss_count = int(progress["loss_count"])
        self.elapsed = float(progress["elapsed"])
        self.decoder_iterations = int(progress.get("decoder_iterations", 0))
        restore_rng_state(payload)
        if self.context.distributed and self.loss_count:
            # the running sums are rank 0's; keep per-process sums from here on
            self.loss_sum, self.loss_count = 0.0, 0
        log.info(
            "resumed from %s at epoch %d, batch %d",
            self.checkpoint_path,
            self.epoch + 1,
            self.batch,
        )
        return True

    def _load_model_state(self, state: dict) -> None:
        """Load a checkpoint's model state; one from before the intensity scale existed
        (cryomotion 0.1) loads only into a model whose scale is off; its encoder's keys
        (``encoder.*``) are today's ``inference.encoder.*``."""
        state = {(f"inference.{k}" if k.startswith("encoder.") else k): v for k, v in state.items()}
        missing = [k for k in self.module.state_dict() if k not in state]
        if any(k.startswith("inference.encoder.heads.rotation.") for k in missing):
            raise InputError(
                f"{self.checkpoint_path}: written before the encoder predicted a rotation "
                "correction; resume it with 'rotation_unit: 0' and 'prior_weight: 0' in the "
                "deformation section of its config.yaml"
            )
        if missing and all(k.startswith("intensity.") for k in missing):
            if self.module.intensity.mode != "none":
                raise InputError(
                    f"{self.checkpoint_path}: written before cryomotion fitted an intensity "
                    "scale; resume it with 'intensity_scale: none' in the model section of "
                    "its config.yaml"
                )
            self.module.load_state_dict(state, strict=False)
            return
        self.module.load_state_dict(state)

    # -- training ---------------------------------------------------------------------
    def step(self, batch: dict) -> torch.Tensor:
        """One optimizer step on a batch; returns the per-image losses (B,), detached.

        The loss is the current phase's objective (through the DDP wrapper); then the pose
        table, if any, takes its inner steps on the unwrapped module and is synchronised.
        """
        batch = self._to_device(batch)
        # An auto-decoder (3DFlex's latent table) infers the batch's latents first, by its
        # inner loop on the unwrapped module, and all-gathers the rows (no-op otherwise).
        self.module.inference.infer(self.module, batch, self.phase)
        self.module.inference.sync(batch["index"])
        loss = self.phase.objective(self.model, batch, self.phase)
        self.optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        self._schedule_learning_rate()
        self.optimizer.step()
        if self.module.pose_table is not None and loss.output is not None:
            self.module.refine_poses(batch, loss.output.estimates, self.image_loss, self.pose_steps)
            self.module.pose_table.sync_rows(batch["index"])
        return loss.per_image.detach()

    def fit(self, resume: bool = False) -> list[dict[str, float]]:
        """Train up to ``settings.epochs`` epochs; returns the metrics rows of this call."""
        if resume:
            self.restore()
        if self.metrics is not None and self.context.is_main:
            self.metrics.load(self.epoch)
        epochs = self.epochs
        n_train = len(self.train_indices)
        history: list[dict[str, float]] = []
        bar = tqdm(
            total=max(0, epochs - self.epoch) * n_train,
            initial=0,
            unit="img",
            unit_scale=True,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        try:
            while self.epoch < epochs:
                row = self._train_epoch(bar)
                history.append(row)
                if self._stop_early(row["test_loss"]):
                    break
        finally:
            bar.close()
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
            self.save()
        return history

    def _stop_early(self, test_loss: float) -> bool:
        """Early stopping (``patience``): keep the best state; True when it is time to stop."""
        if self.patience is None or not np.isfinite(test_loss):
            return False
        if test_loss < self.best_loss:
            self.best_loss, self.stale_epochs = test_loss, 0
            self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            return False
        self.stale_epochs += 1
        if self.stale_epochs < self.patience:
            return False
        if self.context.is_main:
            log.info(
                "early stop after epoch %d: no better test loss for %d epochs (best %.6g)",
                self.epoch,
                self.patience,
                self.best_loss,
            )
        return True

    def _train_epoch(self, bar: tqdm) -> dict[str, float]:
        epoch, epochs = self.epoch, self.epochs
        self._enter_phase(epoch)
        world = self.context.world_size
        batches = self.epoch_batches(epoch)
        skip = self.batch
        if skip:
            bar.update(min(len(self.train_indices), skip * self.settings.batch_size))
        bar.set_description(f"epoch {epoch + 1}/{epochs}")
        self.module.train()
        start = mark = time.perf_counter()
        seen = 0
        loader = self._loader(batches[skip:], seed=self.settings.seed * 100003 + epoch)
        for batch in loader:
            losses = self.step(batch)
            self.loss_sum += float(losses.sum())
            self.loss_count += len(losses)
            self.batch += 1
            seen += len(losses) * world
            bar.update(len(losses) * world)
            bar.set_postfix(loss=f"{self.loss_sum / self.loss_count:.4g}", refresh=False)
            if self.on_step is not None:
                self.on_step(epoch, self.batch - 1)
            every = self.settings.checkpoint_every
            if every and self.batch % every == 0 and self.batch < len(batches):
                now = time.perf_counter()
                self.elapsed += now - mark
                mark = now
                self.save()
        train_seconds = time.perf_counter() - start
        loss_sum, loss_count = all_reduce_sum(self.context, [self.loss_sum, self.loss_count])
        test, outside = self._evaluate(self.test_indices)
        end = time.perf_counter()
        epoch_seconds = end - start
        self.elapsed += end - mark
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(loss_count, 1),
            "test_loss": test,
            "particles_per_s": seen / max(train_seconds, 1e-9),
            "epoch_seconds": epoch_seconds,
            "elapsed_seconds": self.elapsed,
            "outside_box": outside,
            "intensity_gain": float(self.module.intensity.log_gain.detach().exp().mean()),
        }
        self.epoch, self.batch = epoch + 1, 0
        self.loss_sum, self.loss_count = 0.0, 0
        self.decoder_iterations = 0  # a further epoch leaves a decoder that was never refined
        self.save()
        if self.context.is_main:
            if self.metrics is not None:
                self.metrics.append(row)
            log.info(
                "epoch %d/%d  train loss %.6g  test loss %.6g  %.1f particles/s  %.1f s",
                epoch + 1,
                epochs,
                row["train_loss"],
                row["test_loss"],
                row["particles_per_s"],
                epoch_seconds,
            )
        barrier(self.context)
        if outside > OUTSIDE_PARTICLES:
            raise TrainingDiverged(
                f"training diverged in epoch {epoch + 1}: {100 * outside:.0f} % of the test "
                "particles' models left the box (their atoms project outside every image); "
                "check the particles' contrast (--invert-data), pixel size and the reference "
                f"model's frame (--rotation-center). Last checkpoint: {self.checkpoint_path}"
            )
        return row

    # -- inference --------------------------------------------------------------------
    def evaluate(self, indices: np.ndarray) -> float:
        """Mean per-image loss over ``indices`` (all processes); NaN for none."""
        return self._evaluate(indices)[0]

    def _evaluate(self, indices: np.ndarray) -> tuple[float, float]:
        """Mean per-image loss over ``indices`` and the fraction of their models that left
        the box (``train.sanity``), over all processes; (NaN, 0) for no particles."""
        if len(indices) == 0:
            return float("nan"), 0.0
        if not isinstance(self.phase.objective, ReconstructionObjective):
            return self._evaluate_objective(indices), 0.0
        # the per-epoch test loss is the encoder's (a polish would cost every epoch)
        result = self.predict(indices, render=True, gather=False, polish=False)
        total, count, outside = all_reduce_sum(
            self.context,
            [
                float(result["loss"].sum()),
                float(len(result["loss"])),
                float((result["outside"] > OUTSIDE_ATOMS).sum()),
            ],
        )
        if not count:
            return float("nan"), 0.0
        return total / count, outside / count

    def polish_population(
        self, indices: np.ndarray
    ) -> tuple[LatentPrior | None, torch.Tensor | None, torch.Tensor | None]:
        """What the polish learns from the particles ``indices``: the latents' prior (a
        Gaussian fitted to the encoder's latents and a VAE's posterior variances; None with
        prior "none"), the candidate starts (``latent_candidates``; None without) and the
        fraction of the particles nearest each (their prior masses)."""
        settings = self.polish_settings
        if self.module.deformation.latent_dim == 0 or (
            settings.prior == "none" and settings.candidates == 0
        ):
            return None, None, None
        latents, variances = [], []
        loader = self._loader(_batches(indices, self.local_batch), seed=self.settings.seed)
        with torch.no_grad():
            for batch in loader:
                estimates = self.module(self._to_device(batch), render=False).estimates
                latents.append(estimates.mean_latents.float().cpu())
                if estimates.log_var is not None:
                    variances.append(estimates.log_var.float().exp().cpu())
        if not latents:
            return None, None, None
        latents = torch.cat(latents)
        prior = None
        if settings.prior != "none":
            prior = LatentPrior.empirical(latents, torch.cat(variances) if variances else None)
            prior = prior.to_device(self.context.device)
        candidates = masses = None
        if settings.candidates:
            candidates = latent_candidates(latents, settings.candidates, seed=self.settings.seed)
            nearest = torch.cdist(latents, candidates).argmin(dim=1)
            masses = torch.bincount(nearest, minlength=len(candidates)).float() / len(latents)
            candidates = candidates.to(self.context.device)
            masses = masses.to(self.context.device)
        return prior, candidates, masses

    def _paired_batches(self, indices: np.ndarray, paired: bool = True):
        """(batch, polish batch) of the particles ``indices`` on the device, in batches of
        this process's size: the polish batch holds the same particles from the polish
        dataset (None without one, or without ``paired``)."""
        batches = self.device_batches(indices)
        if self.polish_dataset is None or not paired:
            yield from ((batch, None) for batch in batches)
            return
        yield from zip(batches, self.device_batches(indices, self.polish_dataset), strict=True)

    def _polish_model(self, indices: np.ndarray) -> MotionModel:
        """The model the polish compares with the images: the model itself, or with a polish
        dataset a view of it that draws at that dataset's box (``AtomRenderer.at_box``),
        with the intensity scale converted to those images' noise σ, measured on up to 512
        of the particles ``indices`` (``IntensityScale.for_images``)."""
        if self.polish_dataset is None:
            return self.module
        data = self.polish_dataset
        sample = np.sort(np.asarray(indices, dtype=np.int64))[:512]
        images = torch.cat([batch["image"] for batch in self.device_batches(sample, data)])
        renderer = self.module.renderer.at_box(data.box, data.pixel_size)
        intensity = self.module.intensity.for_images(
            images, f"the particles at the polish box of {data.box} px"
        )
        if self.context.is_main:
            log.info(
                "polish: models compared with the images at %d px (%.4g Å/px; training %d px), "
                "noise σ %.4g data units there",
                data.box,
                data.pixel_size,
                self.module.renderer.box,
                float(intensity.noise_sigma),
            )
        return self.module.drawn_with(renderer, intensity)

    def _prediction_start(self, batch: dict):
        """(the model's output, its estimates, the pose) of ``batch`` (on the device) that
        ``predict`` starts from: after an auto-decoder's inner loop, and with a pose table
        the pose refined with the latents fixed."""
        # an auto-decoder's inner loop (gradients on; rows written on this process only)
        self.module.inference.infer(self.module, batch, self.phase, predict=True)
        with torch.no_grad():
            output = self.module(batch, render=False)
        estimates, pose = output.estimates, output.pose
        if self.module.pose_table is not None:
            pose = self.module.refine_poses(
                batch,
                estimates,
                self.image_loss,
                self.predict_pose_steps,
                write=False,
                measured=output.measured,
                final_rate=PREDICT_FINAL_RATE,
            )
        return output, estimates, pose

    def _fit_candidate_masses(
        self,
        indices: np.ndarray,
        candidates: torch.Tensor,
        masses: torch.Tensor,
        likelihood: str,
        model: MotionModel,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The candidates' prior masses refitted to the images of the particles ``indices``
        (``models.polish.fit_candidate_masses``), from ``masses``, and the energies they were
        fitted on, per batch of ``_paired_batches(indices)`` (B, K) on the CPU, for
        ``predict``'s own pass to reuse: a pass over the images before it (an
        auto-decoder's inner loop runs in both); ``model`` the one the polish compares with
        (``_polish_model``)."""
        energies = []
        for batch, other in self._paired_batches(indices):
            output, _, pose = self._prediction_start(batch)
            target, measured = self._polish_target(model, batch, other, output)
            energies.append(
                candidate_energies(model, target, pose, candidates, likelihood, measured).cpu()
            )
        if not energies:
            return masses, energies
        fitted = fit_candidate_masses(torch.cat(energies), masses)
        log.info(
            "polish: the prior masses of %d candidates refitted to %d images (largest %.3f, "
            "%d above 1%%)",
            len(fitted),
            len(indices),
            float(fitted.max()),
            int((fitted > 0.01).sum()),
        )
        return fitted.to(candidates.device), energies

    def refine_decoder(
        self, indices: np.ndarray, iterations: int, lr: float, top: int = DECODER_TOP
    ) -> None:
        """Polish the decoder to the images of the particles ``indices`` (the training
        particles: the held-out ones stay unseen) by EM, then save the checkpoint.

        E-step: each particle's posterior over the polish's candidates (``predict``'s
        population: the k-means centres of the encoder's latents, their masses refitted to
        the images, compared at the polish box). M-step: one Adam pass on the decoder's
        weights at ``lr`` and, for segments, on the segmentation at its own rate scaled
        alike (``refit_groups``), minimising each image's negative log-likelihood averaged
        over its ``top`` most probable candidates with their posterior weights. Where the
        encoder's latents are noisy, the decoder trained on them averages the conformations
        of particles sharing a latent; this fits each candidate's model to the images that
        are most probably it (−10 dB hinge path: docs/results.md, information_limit).
        """
        check_refinable(self.module.deformation)
        was_training = self.module.training
        self.module.eval()
        mine = np.asarray(indices, dtype=np.int64)[self.context.rank :: self.context.world_size]
        _, candidates, masses = self.polish_population(mine)
        likelihood = getattr(self.phase.objective, "real_likelihood", "l2")
        model = self._polish_model(indices)
        masses, energies = self._fit_candidate_masses(mine, candidates, masses, likelihood, model)
        groups = refit_groups(self.module.deformation, lr, self.settings.lr)
        parameters = [p for group in groups for p in group["params"]]
        optimizer = torch.optim.Adam(groups, lr=lr)
        # every process takes as many optimizer steps (gradients are averaged over them)
        steps = all_reduce_max(self.context, len(energies))
        for iteration in range(iterations):
            total, count = 0.0, 0
            for number, (batch, other) in enumerate(self._paired_batches(mine)):
                # (a pose table's inner steps inside need gradients: no no_grad here)
                output, _, pose = self._prediction_start(batch)
                pose = Pose(pose.rotations.detach(), pose.shifts.detach())
                target, measured = self._polish_target(model, batch, other, output)
                posterior = candidate_posterior(energies[number], masses.cpu()).float()
                weights, chosen = posterior.topk(min(top, posterior.shape[1]), dim=1)
                weights = (weights / weights.sum(dim=1, keepdim=True)).to(measured.device)
                chosen = chosen.to(candidates.device)
                with torch.enable_grad():
                    loss = measured.new_zeros(())
                    for j in range(chosen.shape[1]):
                        rendered, _ = model.decode(
                            candidates[chosen[:, j]][:, None],
                            pose,
                            target.get("ctf"),
                            target.get("optics_group"),
                            measured,
                        )
                        nll = negative_log_likelihood(rendered[:, 0], measured, likelihood)
                        loss = loss + (weights[:, j] * nll).sum()
                    optimizer.zero_grad(set_to_none=True)
                    (loss / len(measured)).backward()
                all_reduce_gradients(self.context, parameters)
                optimizer.step()
                total += float(loss.detach())
                count += len(measured)
            for _ in range(steps - len(energies)):  # a process with fewer batches: no loss
                optimizer.zero_grad(set_to_none=True)
                all_reduce_gradients(self.context, parameters)
                optimizer.step()
            masses, energies = self._fit_candidate_masses(
                mine, candidates, masses, likelihood, model
            )
            total, count = all_reduce_sum(self.context, [total, count])
            self.decoder_iterations += 1
            if self.context.is_main:
                log.info(
                    "polish decoder: EM iteration %d/%d, mean weighted energy %.6g over %d images",
                    iteration + 1,
                    iterations,
                    total / max(count, 1),
                    int(count),
                )
        self.module.train(was_training)
        self.save()

    @staticmethod
    def _polish_target(model: MotionModel, batch: dict, other: dict | None, output):
        """(the batch, its normalised images) the polish compares ``model``'s images with:
        the polish dataset's ``other`` where there is one, else ``batch`` itself."""
        if other is None:
            return batch, output.measured
        return other, model.intensity.normalize(other["image"])

    @torch.no_grad()
    def _evaluate_objective(self, indices: np.ndarray) -> float:
        """Mean per-image loss of the phase's own objective over ``indices`` (all processes),
        in eval mode: for objectives that render nothing (regression)."""
        was_training = self.module.training
        self.module.eval()
        mine = np.asarray(indices, dtype=np.int64)[self.context.rank :: self.context.world_size]
        total, count = 0.0, 0
        for batch in self._loader(_batches(mine, self.local_batch), seed=self.settings.seed):
            loss = self.phase.objective(self.module, self._to_device(batch), self.phase)
            total += float(loss.per_image.sum())
            count += len(loss.per_image)
        self.module.train(was_training)
        total, count = all_reduce_sum(self.context, [total, float(count)])
        return total / count if count else float("nan")

    def predict(
        self, indices: np.ndarray, render: bool = False, gather: bool = True, polish: bool = True
    ) -> dict[str, np.ndarray]:
        """Latents and poses of the particles ``indices`` (and their loss with ``render``).

        Each process handles ``indices[rank::world]``; with ``gather`` the results are
        collected on rank 0 (in rank order, with ``index`` telling which particle is which;
        other ranks get {}). Keys: ``latents`` (N, d), ``rotations`` (N, 3, 3), ``shifts``
        (N, 2) Å, ``index`` (N,), ``log_var`` (N, d) for a VAE, and, with ``render``,
        ``loss`` (N,) and ``outside`` (N,), the fraction of each model's atoms outside the
        box (``train.sanity``). An auto-decoder's rows inferred by each process are
        all-gathered into every replica. A pose table takes ``predict_pose_steps`` inner steps per
        particle first (gradients on; the table itself is left as it is); then, with polish
        steps (``models.polish``) and ``polish``, the latents and a pose correction are
        polished jointly, and ``unfitted_latents``, ``unfitted_rotations`` and
        ``unfitted_shifts`` hold the estimates no per-particle fit chose
        (``Polished.unfitted``, at the start pose).
        """
        was_training = self.module.training
        self.module.eval()
        mine = np.asarray(indices, dtype=np.int64)[self.context.rank :: self.context.world_size]
        names = ["latents", "rotations", "shifts", "index"]
        variational = bool(getattr(self.module.inference, "variational", False))
        if variational:
            names.append("log_var")
        if render:
            names += ["loss", "outside"]
            renderer = self.module.renderer
            radius = visible_radius(renderer.box, renderer.pixel_size)
        polishing = polish and (self.polish_settings.steps or self.polish_settings.candidates)
        if polishing:  # the estimates no per-particle fit chose (``Polished.unfitted``)
            names += ["unfitted_latents", "unfitted_rotations", "unfitted_shifts"]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        prior, candidates, masses = (
            self.polish_population(mine) if polishing else (None, None, None)
        )
        likelihood = getattr(self.phase.objective, "real_likelihood", "l2")
        polish_model = self._polish_model(indices) if polishing else self.module
        energies: list[torch.Tensor] = []  # the candidates' energies, per batch, if computed
        if candidates is not None and self.polish_settings.estimate == "mean":
            masses, energies = self._fit_candidate_masses(
                mine, candidates, masses, likelihood, polish_model
            )
        pairs = self._paired_batches(mine, paired=bool(polishing))
        for number, (batch, other) in enumerate(pairs):
            output, estimates, pose = self._prediction_start(batch)
            if polishing:
                target, measured = self._polish_target(polish_model, batch, other, output)
                polished = polish_estimates(
                    polish_model,
                    target,
                    estimates,
                    pose,
                    likelihood,
                    self.polish_settings,
                    prior=prior,
                    measured=measured,
                    candidates=candidates,
                    candidate_masses=masses,
                    energies=energies[number] if energies else None,
                )
                parts["unfitted_latents"].append(polished.unfitted.cpu().numpy())
                parts["unfitted_rotations"].append(pose.rotations.detach().float().cpu().numpy())
                parts["unfitted_shifts"].append(pose.shifts.detach().float().cpu().numpy())
                latents = polished.latents
                estimates = estimates._replace(latents=latents[:, None], mean_latents=latents)
                pose = polished.pose
            if render:
                with torch.no_grad():
                    images, _ = self.module.decode(
                        estimates.latents,
                        pose,
                        batch.get("ctf"),
                        batch.get("optics_group"),
                        output.measured,
                    )
                    objective = self.phase.objective
                    if not isinstance(objective, ReconstructionObjective):
                        objective = ReconstructionObjective()  # e.g. a regression phase
                    loss = objective.image_loss(images, output.measured)
                    coords = self.module.deformation(estimates.mean_latents).coords
                parts["loss"].append(loss.cpu().numpy())
                parts["outside"].append(
                    outside_fraction(coords, renderer.rotation_center, radius).cpu().numpy()
                )
            parts["latents"].append(estimates.mean_latents.detach().cpu().numpy())
            parts["rotations"].append(pose.rotations.detach().float().cpu().numpy())
            parts["shifts"].append(pose.shifts.detach().float().cpu().numpy())
            parts["index"].append(batch["index"].cpu().numpy())
            if variational:
                parts["log_var"].append(estimates.log_var.detach().cpu().numpy())
        # the rows an auto-decoder's inner loop wrote for this process's share, into every
        # replica (so rank 0's checkpoint and the next inference start from them)
        self.module.inference.sync(torch.as_tensor(mine, device=self.context.device))
        self.module.train(was_training)
        d = self.module.deformation.latent_dim
        empty = {
            "latents": (0, d),
            "log_var": (0, d),
            "rotations": (0, 3, 3),
            "shifts": (0, 2),
            "index": (0,),
            "loss": (0,),
            "outside": (0,),
            "unfitted_latents": (0, d),
            "unfitted_rotations": (0, 3, 3),
            "unfitted_shifts": (0, 2),
        }
        arrays = {
            key: np.concatenate(value) if value else np.zeros(empty[key])
            for key, value in parts.items()
        }
        arrays["index"] = arrays["index"].astype(np.int64)
        return gather_arrays(self.context, arrays) if gather else arrays
