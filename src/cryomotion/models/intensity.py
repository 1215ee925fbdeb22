"""The intensity scale between the data's units and the renderer's physical units.

Particle images come in arbitrary units: RELION normalises the background to zero mean and
unit variance, other programs do otherwise, and cryomotion's simulator writes the
renderer's units (Å⁻¹ per pixel). Nothing downstream may depend on that choice. So

1. the measured images are *normalised*: each image's background (the corners outside
   the inscribed circle) is brought to zero mean, and all images are divided by one noise
   level σ (data units), the median of the background's standard deviation over a sample
   of particles; and
2. the rendered images are multiplied by a *gain* per optics group (normalised units per
   renderer unit), fitted at the start by least squares of the reference model's
   projections against the normalised images, then learned with the rest.

Both are state of the model (``noise_sigma`` a buffer, ``log_gain`` a parameter), saved in
its checkpoints. Multiplying the data by a constant changes ``noise_sigma`` by the same
constant and nothing else. With ``per_image`` the image loss additionally fits each image's
own scale in closed form (RELION's per-image "scale correction" for ice thickness).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from cryomotion.errors import InputError

log = logging.getLogger(__name__)

# "fitted": global gain per optics group; "per_image": that and a closed-form scale per
# image in the loss; "none": data used as given in the renderer's units (older runs).
MODES = ("fitted", "per_image", "none")

# Least-squares gains whose sign is less certain than this many standard errors are
# reported as "no signal detected".
_SIGNIFICANCE = 3.0


def background_mask(box: int) -> torch.Tensor:
    """(box, box) bool: pixels farther than box/2 from the image centre (box//2, box//2)."""
    axis = torch.arange(box, dtype=torch.float32) - box // 2
    radius = torch.sqrt(axis[:, None] ** 2 + axis[None, :] ** 2)
    return radius > box / 2


def background_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each image's background corners: (B, D, D) -> (B,), (B,)."""
    mask = background_mask(images.shape[-1]).to(images.device)
    corners = images.float()[..., mask]
    return corners.mean(dim=-1), corners.std(dim=-1)


class IntensityScale(nn.Module):
    """Data units <-> renderer units (see the module docstring).

    ``n_groups`` optics groups, indexed 0..n_groups-1 (the dataset's ``optics_group``).
    """

    def __init__(self, n_groups: int = 1, mode: str = "fitted"):
        super().__init__()
        if mode not in MODES:
            raise InputError(f"intensity scale {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        self.register_buffer("noise_sigma", torch.ones(()))
        self.log_gain = nn.Parameter(
            torch.zeros(max(1, int(n_groups))), requires_grad=mode != "none"
        )

    @property
    def per_image(self) -> bool:
        return self.mode == "per_image"

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Measured images (B, D, D), data units -> zero background mean, noise σ ≈ 1."""
        if self.mode == "none":
            return images
        mean, _ = background_statistics(images)
        return (images.float() - mean[:, None, None]) / self.noise_sigma

    def gain(self, groups: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B,) gain of each image's optics group (group 0 where ``groups`` is None)."""
        if groups is None:
            return self.log_gain[:1].exp().expand(batch)
        return self.log_gain.exp().index_select(0, groups.long())

    def scale_rendered(self, rendered: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """Rendered images (B, D, D) in the renderer's units -> normalised data units."""
        if self.mode == "none":
            return rendered
        return rendered * self.gain(groups, rendered.shape[0])[:, None, None]

    def _set_noise_sigma(self, measured: torch.Tensor, source: str) -> float:
        """σ (data units): the median background standard deviation of ``measured``."""
        _, sigma = background_statistics(measured)
        noise_sigma = float(torch.median(sigma))
        if not math.isfinite(noise_sigma) or noise_sigma <= 0:
            raise InputError(
                f"{source}: the images' background has standard deviation {noise_sigma:.3g} "
                "(expected noisy particle images, not blank or constant ones)"
            )
        self.noise_sigma.fill_(noise_sigma)
        return noise_sigma

    @torch.no_grad()
    def for_images(self, measured: torch.Tensor, source: str) -> IntensityScale:
        """This scale for other images of the same particles (another Fourier crop of the
        same stacks, whose pixel values keep their meaning): their own noise σ' measured on
        ``measured`` (B, D', D'), and the gains converted so that a rendered image lands in
        their normalised units, gain · σ/σ' (the images in data units are gain · σ times
        the renderer's, whatever the crop)."""
        scale = type(self)(len(self.log_gain), self.mode).to(self.log_gain.device)
        scale.load_state_dict(self.state_dict())
        if self.mode == "none":
            return scale
        sigma = scale._set_noise_sigma(measured, source)
        scale.log_gain.add_(math.log(float(self.noise_sigma) / sigma))
        return scale

    @torch.no_grad()
    def calibrate(
        self,
        measured: torch.Tensor,
        rendered: torch.Tensor,
        groups: torch.Tensor,
        source: str = "the particles",
    ) -> None:
        """Set σ and the gains from a sample: measured (B, D, D) data units, the reference's
        projections with the particles' own poses and CTFs (B, D, D) renderer units, groups (B,).

        ``InputError`` when the data anticorrelate with the reference (inverted contrast), or
        a group's signal cannot be detected at all; both name ``source``.
        """
        if self.mode == "none":
            return
        noise_sigma = self._set_noise_sigma(measured, source)
        normalized = self.normalize(measured).double()
        rendered = rendered.double()
        for group in range(self.log_gain.shape[0]):
            chosen = groups == group
            if not bool(chosen.any()):
                continue
            y, r = normalized[chosen].flatten(1), rendered[chosen].flatten(1)
            power = float(r.square().sum())
            if power <= 0:
                raise InputError(
                    f"{source}: the reference model renders an empty image for optics group "
                    f"{group + 1} (is the model inside the particles' box?)"
                )
            gain = float((y * r).sum()) / power
            # per-image dot products are independent: their spread gives the standard error
            dots = (y * r).sum(dim=1)
            error = float(dots.std()) * math.sqrt(len(dots)) / power if len(dots) > 1 else 0.0
            significance = gain / error if error > 0 else math.inf
            if significance < -_SIGNIFICANCE:
                raise InputError(
                    f"{source}: the images anticorrelate with the reference model's projections "
                    f"(optics group {group + 1}, {significance:.1f} standard errors): the "
                    "particles look dark; pass --invert-data"
                )
            if significance < _SIGNIFICANCE:
                log.warning(
                    "optics group %d: the reference model's projections explain no detectable "
                    "signal in %d images (gain %.3g ± %.3g); starting from the noise level",
                    group + 1,
                    len(dots),
                    gain,
                    error,
                )
                # a signal at about the noise level per pixel: a neutral start
                gain = 1.0 / max(float(r.square().mean().sqrt()), 1e-30)
            self.log_gain[group] = math.log(gain)
        log.info(
            "intensity scale: noise σ %.4g (data units, at the training box: Fourier cropping "
            "lowers it); gain %s per renderer unit",
            noise_sigma,
            ", ".join(f"{g:.4g}" for g in self.log_gain.exp().tolist()),
        )

    @torch.no_grad()
    def calibrate_power(
        self,
        measured: torch.Tensor,
        rendered: torch.Tensor,
        groups: torch.Tensor,
        source: str = "the particles",
    ) -> None:
        """Set σ and the gains when the particles' poses are unknown (inferred poses):
        measured (B, D, D) data units, the reference's projections under random poses with
        the particles' CTFs (B, D, D) renderer units, groups (B,). σ as in ``calibrate``;
        each group's gain matches powers, gain² = (mean y² − 1) / mean r² for the normalised
        images y (white noise of variance 1 there) and the projections r, which needs no
        pose. A group whose images hold no power above the noise starts at the noise level.
        """
        if self.mode == "none":
            return
        noise_sigma = self._set_noise_sigma(measured, source)
        normalized = self.normalize(measured).double()
        rendered = rendered.double()
        for group in range(self.log_gain.shape[0]):
            chosen = groups == group
            if not bool(chosen.any()):
                continue
            signal = float(normalized[chosen].square().mean()) - 1.0
            power = float(rendered[chosen].square().mean())
            if power <= 0:
                raise InputError(
                    f"{source}: the reference model renders an empty image for optics group "
                    f"{group + 1} (is the model inside the particles' box?)"
                )
            if signal <= 0:
                log.warning(
                    "optics group %d: no power above the noise in %d images; starting the "
                    "gain at the noise level",
                    group + 1,
                    int(chosen.sum()),
                )
                signal = 1.0
            self.log_gain[group] = 0.5 * math.log(signal / power)
        log.info(
            "intensity scale (poses unknown, by power): noise σ %.4g (data units); gain %s "
            "per renderer unit",
            noise_sigma,
            ", ".join(f"{g:.4g}" for g in self.log_gain.exp().tolist()),
        )

    def extra_repr(self) -> str:
        return f"mode={self.mode}, groups={self.log_gain.shape[0]}"


def fitted_scale(rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Per image, the least-squares scale a ≥ 0 of ``rendered`` onto ``measured``:
    (B, D, D), (B, D, D) -> (B,)."""
    rendered, measured = rendered.float().flatten(1), measured.float().flatten(1)
    power = rendered.square().sum(dim=1).clamp_min(1e-12)
    return ((rendered * measured).sum(dim=1) / power).clamp_min(0.0)
