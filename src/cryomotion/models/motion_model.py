"""The motion model: inference -> deformation -> renderer, in the data's units.

    images ─ normalise ─► inference ─► latents z, pose ─► deformation(z) ─► points ─►
    renderer(points, pose, CTF) ─► × gain ─► rendered images (normalised data units)

It knows no loss: objectives (``models.objectives``) compare what it renders with the
normalised images. With a pose table (``--pose-mode refine``) each particle's pose is the
inference's composed with a per-particle correction (rotation vector, shift) that
``refine_poses`` updates by a few gradient steps on the image loss after each outer step;
the deformed models are then superposed onto the reference before they are posed, so that
a deformation able to turn the whole model (segments moving together) cannot trade global
rotations with the pose (``geometry.superposition``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from cryomotion.deform.base import Deformation
from cryomotion.geometry.superposition import superpose_onto
from cryomotion.imaging.pose import Pose
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.inference import AmortizedEncoder, Estimates, Inference
from cryomotion.models.intensity import IntensityScale, fitted_scale
from cryomotion.models.per_particle import ParticleState
from cryomotion.models.pose import compose_pose

# pose table columns: rotation vector (3, radians), shift (2, Å)
POSE_WIDTH = 5


class Reconstruction(NamedTuple):
    """``images`` (B, S, D, D) rendered from ``estimates`` (S samples per image) and
    ``measured`` (B, D, D), the input images, both in normalised data units
    (``IntensityScale``); ``pose`` (B,) rendered with; ``regularization`` the deformation's
    weighted terms. ``images`` is None when nothing was rendered."""

    images: torch.Tensor | None
    measured: torch.Tensor
    estimates: Estimates
    pose: Pose
    regularization: dict[str, torch.Tensor]


def scale_motion(points: torch.Tensor, rest: torch.Tensor, scale: float) -> torch.Tensor:
    """x_ref + α (x − x_ref): ``points`` (..., P, 3), ``rest`` (P, 3) Å -> (..., P, 3);
    the motion scale of ``train.motion_scale`` (α = ``scale``; 1: ``points`` as they are)."""
    if scale == 1.0:
        return points
    rest = rest.to(points)
    return rest + scale * (points - rest)


class MotionModel(nn.Module):
    """``inference`` + ``deformation`` + ``renderer`` + ``intensity`` (+ an optional pose
    table of ``n_particles`` rows with step sizes ``pose_steps`` (rotation radians, shift Å)).

    The renderer receives points (B·S, P, 3) Å, rotations (B·S, 3, 3), shifts (B·S, 2) Å and
    CTF parameters (B·S, 8); the deformation and the renderer run in float32.
    """

    def __init__(
        self,
        inference: Inference,
        deformation: Deformation,
        renderer: nn.Module,
        intensity: IntensityScale | None = None,
        pose_table: ParticleState | None = None,
    ):
        super().__init__()
        self.inference = inference
        self.deformation = deformation
        self.renderer = renderer
        self.intensity = intensity if intensity is not None else IntensityScale(mode="none")
        self.pose_table = pose_table
        # α of train.motion_scale: the rendered models x_ref + α (x(z) − x_ref) (1: as is)
        self.motion_scale = 1.0

    @classmethod
    def with_encoder(
        cls,
        encoder,
        deformation: Deformation,
        renderer: nn.Module,
        variational: bool = False,
        mixed_precision: bool = False,
        intensity: IntensityScale | None = None,
        pose_table: ParticleState | None = None,
    ) -> MotionModel:
        """An amortized model: ``encoder`` (an ``ImageEncoder`` with heads ``shifts``,
        ``latents`` and for a VAE ``latent_log_var``) in front of ``deformation``."""
        inference = AmortizedEncoder(
            encoder,
            deformation.latent_dim,
            latent_scale=deformation.latent_scale,
            variational=variational,
            mixed_precision=mixed_precision,
        )
        return cls(inference, deformation, renderer, intensity, pose_table)

    # -- parameters -------------------------------------------------------------------
    def drawn_with(self, renderer: AtomRenderer, intensity: IntensityScale) -> MotionModel:
        """A view of this model that draws its images with ``renderer`` and ``intensity``
        (e.g. on the full images of a run trained on Fourier crops) and shares everything
        else: the inference, the deformation, the pose table, their parameters."""
        view = copy.copy(self)
        view._modules = dict(self._modules)  # a shallow copy shares the dict of submodules
        view.renderer = renderer
        view.intensity = intensity
        return view

    def parameter_groups(self, lr: float) -> list[dict]:
        """Named optimizer groups ("inference", "intensity", then the deformation's), each a
        dict with ``name``, ``params`` and ``lr``; parameters that do not train are left out."""
        groups = []
        for name, module in (("inference", self.inference), ("intensity", self.intensity)):
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                groups.append({"name": name, "params": params, "lr": lr})
        groups += self.deformation.parameter_groups(lr)
        return groups

    def per_particle_buffers(self) -> list[str]:
        """Buffers holding per-particle state (kept in step by the trainer, not by DDP)."""
        names = [f"inference.{n}" for n in self.inference.per_particle_state()]
        if self.pose_table is not None:
            names += [f"pose_table.{n}" for n, _ in self.pose_table.named_buffers()]
        return names

    # -- the forward model ------------------------------------------------------------
    def eckart_frame(self, points: torch.Tensor) -> torch.Tensor:
        """Deformed points (..., P, 3) as rendered: superposed onto the undeformed ones when
        poses are refined (their global rotation is the pose's), else as they are."""
        if self.pose_table is None or not self.deformation.points_are_atoms:
            return points
        return superpose_onto(points, self.deformation.rest().points.to(points.dtype))

    def scaled_motion(self, points: torch.Tensor) -> torch.Tensor:
        """``points`` (..., P, 3) moved toward the rest points by ``motion_scale``."""
        if self.motion_scale == 1.0 or not self.deformation.points_are_atoms:
            return points
        return scale_motion(points, self.deformation.rest().points, self.motion_scale)

    def pose_of(self, estimates: Estimates, index: torch.Tensor, table_rows=None) -> Pose:
        """The inference's pose, composed with the pose table's correction if there is one."""
        if self.pose_table is None:
            return estimates.pose
        rows = self.pose_table.rows(index) if table_rows is None else table_rows
        return compose_pose(estimates.pose, rows[:, :3], rows[:, 3:])

    def decode(
        self,
        latents: torch.Tensor,
        pose: Pose,
        ctf: torch.Tensor | None,
        optics_groups: torch.Tensor | None = None,
        measured: torch.Tensor | None = None,
        use_conformation: bool = True,
        max_frequency: float | None = None,
        spectra: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Latents (B, S, d), pose (B,), CTF (B, 8) -> images (B, S, D, D) in normalised
        data units and the deformation's regularisation. ``measured`` (B, D, D) is needed
        for a per-image intensity scale; ``max_frequency`` (1/Å) band-limits the images;
        ``spectra`` returns their half-plane spectra (B, S, D, D//2 + 1) instead, in
        ``torch.fft.rfft2`` layout, with no inverse FFT.

        A pose (B, S1, S2) (``Estimates.sample_pose``) renders each of the S1 conformation
        samples under its own S2 poses: see ``decode_sample_poses``."""
        if pose.rotations.dim() == 5:
            return self.decode_sample_poses(
                latents, pose, ctf, optics_groups, use_conformation, max_frequency, spectra
            )
        batch, samples = latents.shape[:2]
        flat = latents.reshape(batch * samples, latents.shape[-1])
        if use_conformation:
            deformed = self.deformation(flat)
            points = self.scaled_motion(self.eckart_frame(deformed.points))
            regularization = deformed.regularization
            amplitudes = deformed.amplitudes  # per-point (3DFlex's canonical density) or None
        else:
            rest = self.deformation.rest()
            points, regularization, amplitudes = rest.coords, {}, rest.amplitudes
        rotations, shifts = pose.rotations, pose.shifts
        if samples > 1:
            rotations = rotations.repeat_interleave(samples, dim=0)
            shifts = shifts.repeat_interleave(samples, dim=0)
            ctf = None if ctf is None else ctf.repeat_interleave(samples, dim=0)
            if optics_groups is not None:
                optics_groups = optics_groups.repeat_interleave(samples, dim=0)
        if spectra:
            if self.intensity.per_image:
                raise ValueError("a per-image intensity scale needs real-space images")
            rendered = self.renderer.fourier(
                points, rotations, shifts, ctf, amplitudes=amplitudes, max_frequency=max_frequency
            )
        else:
            rendered = self.renderer(
                points, rotations, shifts, ctf, amplitudes=amplitudes, max_frequency=max_frequency
            )
        rendered = self.intensity.scale_rendered(rendered, optics_groups)
        if self.intensity.per_image and measured is not None:
            target = measured.repeat_interleave(samples, dim=0) if samples > 1 else measured
            rendered = rendered * fitted_scale(rendered, target)[:, None, None]
        return rendered.reshape(batch, samples, *rendered.shape[-2:]), regularization

    def decode_sample_poses(
        self,
        latents: torch.Tensor,
        pose: Pose,
        ctf: torch.Tensor | None,
        optics_groups: torch.Tensor | None = None,
        use_conformation: bool = True,
        max_frequency: float | None = None,
        spectra: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Latents (B, S1, d), pose (B, S1', S2) with S1' = S1 or 1, CTF (B, 8) -> images
        (B, S1'·S2, D, D) (or spectra (B, S1'·S2, D, D//2 + 1)), in normalised data units,
        and the deformation's regularisation. The points (B, S1, 1, P, 3) broadcast against
        the poses and the CTF is evaluated once per image (AtomVAE's conformation × pose
        samples); without the conformation the rest points are rendered under every pose."""
        if self.intensity.per_image:
            raise ValueError("a per-image intensity scale is not available with pose samples")
        if use_conformation:
            deformed = self.deformation(latents)
            points = self.scaled_motion(deformed.points)[:, :, None]
            regularization = deformed.regularization
        else:
            points, regularization = self.deformation.rest().points, {}
        ctf = None if ctf is None else ctf[:, None, None]
        rendered = self.renderer.fourier(
            points, pose, ctf=ctf, max_frequency=max_frequency
        )  # (B, S1', S2, D, K)
        if not spectra:
            rendered = torch.fft.irfft2(rendered, s=(self.renderer.box,) * 2)
        batch = rendered.shape[0]
        flat = rendered.reshape(batch, -1, rendered.shape[-1])
        flat = self.intensity.scale_rendered(flat, optics_groups)
        return flat.reshape(batch, -1, *rendered.shape[-2:]), regularization

    def forward(
        self,
        batch: dict,
        samples: int = 1,
        use_conformation: bool = True,
        max_frequency: float | None = None,
        render: bool = True,
        spectra: bool = False,
    ) -> Reconstruction:
        """A batch (``image`` (B, D, D) data units, ``rotation``, ``shift``, ``ctf``,
        ``index``, optionally ``optics_group``) -> ``Reconstruction``."""
        measured = self.intensity.normalize(batch["image"])
        estimates = self.inference(measured, batch, samples)
        pose = self.pose_of(estimates, batch["index"])
        if not render:
            return Reconstruction(None, measured, estimates, pose, {})
        # AtomVAE's pose samples per conformation sample, else the one pose per image
        render_pose = pose if estimates.sample_pose is None else estimates.sample_pose
        images, regularization = self.decode(
            estimates.latents,
            render_pose,
            batch.get("ctf"),
            batch.get("optics_group"),
            measured,
            use_conformation,
            max_frequency,
            spectra,
        )
        return Reconstruction(images, measured, estimates, pose, regularization)

    # -- per-particle pose refinement ---------------------------------------------------
    def refine_poses(
        self,
        batch: dict,
        estimates: Estimates,
        image_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        steps: int,
        write: bool = True,
        measured: torch.Tensor | None = None,
        final_rate: float = 1.0,
    ) -> Pose:
        """``steps`` gradient steps on each particle's pose correction, with its latents
        fixed at ``estimates.mean_latents``; returns the refined poses (B,). The renderer
        and deformation run on this (unwrapped) module; gradients go to the rows alone.
        ``final_rate``: see ``ParticleState.optimize_rows``."""
        assert self.pose_table is not None
        index = batch["index"]
        if measured is None:
            measured = self.intensity.normalize(batch["image"])
        with torch.no_grad():
            latents = estimates.mean_latents.detach()
            points = self.eckart_frame(self.deformation(latents).points).detach()

        given = estimates.pose.detach()

        def loss(rows: torch.Tensor) -> torch.Tensor:
            pose = compose_pose(given, rows[:, :3], rows[:, 3:])
            rendered = self.renderer(points, pose.rotations, pose.shifts, batch.get("ctf"))
            rendered = self.intensity.scale_rendered(rendered, batch.get("optics_group"))
            if self.intensity.per_image:
                rendered = rendered * fitted_scale(rendered, measured)[:, None, None]
            return image_loss(rendered, measured)

        rows = self.pose_table.optimize_rows(index, loss, steps, write, final_rate)
        return compose_pose(given, rows[:, :3], rows[:, 3:])
