"""Per-particle polish: refine what the inference proposes by gradient steps on each image.

An amortized encoder gives every particle its latents from one forward pass; the decoder
then says how well they explain the image. Polishing takes a few Adam steps per particle
from the encoder's estimate, jointly over

- the latents z (d),
- a correction to the pose it starts from: with a pose table (``--pose-mode refine``) a
  rotation vector and a shift, R = R_start · exp([Δω]×), t = t_start + Δt (the start is
  then the pose refined with the latents fixed), otherwise a shift alone (the encoder's
  shift head is the least certain part of a given pose),

minimising the particle's negative log posterior in normalised data units (noise σ ≈ 1,
``models.intensity``):

- the data term: for the L2 likelihood the Gaussian −log p(y | ŷ) = |y − ŷ|²/2; for the
  correlation likelihood (blind to the scale) the same with the best scale profiled out,
  −ρ² |y|²/2 (ρ the correlation of y and ŷ);
- the prior of the latents, a Gaussian N(μ, Σ) fitted to the population
  (``LatentPrior.empirical``: the encoder's latents of the particles being predicted, plus
  a VAE's mean posterior variance), (z − μ)ᵀ Σ⁻¹ (z − μ)/2.

Without a prior the likelihood alone is too flat in d dimensions at low SNR: measured on
AdK at −10 dB (64 px, d = 16), the maximum-likelihood polish *raised* the median Cα-RMSD
from 1.48 to 1.6–1.8 Å. The rows live in a throw-away ``ParticleState``
(``models.per_particle``): gradients go to them alone, nothing in the model changes.

Gradient steps only find the nearest minimum. With ``candidates`` > 0 each particle first
starts from the best of its encoder's latents and that many latents spread over the
population (``latent_candidates``: k-means centres of the encoder's latents of the particles
being predicted), scored by the same negative log posterior: a global search over what the
decoder has learned, for an encoder that puts a particle on the wrong side of the landscape.

With ``estimate`` "mean" the search returns instead each particle's posterior mean over
the candidates: the population's k-means centres are a discrete prior, the likelihood
weighs them (``posterior_mean``). The prior's masses start at the fraction of particles
nearest each centre and are refitted to the images of the whole population by EM
(``fit_candidate_masses``: empirical Bayes, the mixing weights that best explain all the
images, not the noisy encoder's histogram). Steps after it use the settings' prior. The
median Cα-RMSD is smallest for the posterior mean, not the most probable point, and a
discrete prior drawn from the population keeps the estimate on what the decoder has
learned instead of fitting the noise in d dimensions (measured on the hinge path at
−20 dB, segments after 48 epochs: encoder 1.45 Å, best of 64 candidates 1.38 Å, their
posterior mean 1.27 Å, 1.26 Å with the refitted masses; but in one of three training seeds
every candidate-based estimate was worse than the encoder, 1.88 against 1.68 Å:
docs/results.md, information_limit).

Latent steps are in units of the deformation's ``latent_scale`` (for normal modes 1 Å RMS
of the atoms; for a VAE one prior standard deviation); rotation steps degrees, shifts Å.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from cryomotion.imaging.pose import Pose
from cryomotion.models.inference import Estimates
from cryomotion.models.per_particle import ParticleState
from cryomotion.models.pose import compose_pose

LIKELIHOODS = ("l2", "correlation")
PRIORS = ("empirical", "none")
ESTIMATES = ("map", "mean")


@dataclass(frozen=True)
class PolishSettings:
    """``steps`` Adam steps per particle (0: off; with ``candidates`` > 0 the search alone);
    ``candidates`` population latents each particle may start from instead of its own
    (0: its own); step sizes ``latent_step`` (× the
    deformation's latent scale), ``rotation_step`` (degrees) and ``shift_step`` (Å),
    shrinking geometrically to ``final_rate`` of themselves by the last step; ``prior``:
    "empirical" (a Gaussian fitted to the population's latents) or "none" (maximum
    likelihood); ``estimate``: what the candidate search returns, "map" (the best start)
    or "mean" (the posterior mean over the candidates, with a refitted discrete prior)."""

    steps: int = 0
    latent_step: float = 0.05
    rotation_step: float = 0.5
    shift_step: float = 0.2
    final_rate: float = 0.1
    prior: str = "empirical"
    candidates: int = 0
    estimate: str = "map"

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"polish steps {self.steps}: expected >= 0")
        if self.candidates < 0:
            raise ValueError(f"polish candidates {self.candidates}: expected >= 0")
        if min(self.latent_step, self.rotation_step, self.shift_step) < 0:
            raise ValueError("polish step sizes must be >= 0")
        if not 0 < self.final_rate <= 1:
            raise ValueError(f"polish final rate {self.final_rate}: expected in (0, 1]")
        if self.prior not in PRIORS:
            raise ValueError(f"polish prior {self.prior!r}: expected one of {PRIORS}")
        if self.estimate not in ESTIMATES:
            raise ValueError(f"polish estimate {self.estimate!r}: expected one of {ESTIMATES}")


class LatentPrior(NamedTuple):
    """A Gaussian prior on the latents: ``mean`` (d,) and ``precision`` (d, d) = Σ⁻¹."""

    mean: torch.Tensor
    precision: torch.Tensor

    @classmethod
    def empirical(
        cls, latents: torch.Tensor, variances: torch.Tensor | None = None, ridge: float = 1e-3
    ) -> LatentPrior:
        """N(μ, Σ) of a population: ``latents`` (n, d) point estimates (a VAE's posterior
        means), ``variances`` (n, d) their posterior variances if any. Σ is the spread of
        the estimates plus the mean posterior variance (the law of total variance), with a
        ridge of ``ridge`` × its mean diagonal so that it inverts."""
        latents = latents.double()
        mean = latents.mean(dim=0)
        centred = latents - mean
        covariance = centred.T @ centred / max(len(latents) - 1, 1)
        if variances is not None:
            covariance = covariance + torch.diag(variances.double().mean(dim=0))
        d = covariance.shape[0]
        level = covariance.diagonal().mean().clamp_min(1e-12) if d else torch.tensor(1.0)
        covariance = covariance + ridge * level * torch.eye(d, dtype=covariance.dtype)
        return cls(mean.float(), torch.linalg.inv(covariance).float())

    def to_device(self, device: torch.device | str) -> LatentPrior:
        return LatentPrior(self.mean.to(device), self.precision.to(device))

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        """(z − μ)ᵀ Σ⁻¹ (z − μ)/2 per row: (B, d) -> (B,)."""
        centred = latents - self.mean.to(latents)
        return 0.5 * ((centred @ self.precision.to(latents)) * centred).sum(dim=1)


def latent_candidates(
    latents: torch.Tensor, count: int, iterations: int = 20, seed: int = 0
) -> torch.Tensor:
    """(min(count, n), d) k-means centres of a population's latents (n, d): k-means++
    seeding, then ``iterations`` Lloyd steps; deterministic for a given ``seed``."""
    latents = latents.detach().float()
    n = len(latents)
    count = min(int(count), n)
    if count <= 0:
        return latents[:0]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    points = latents.cpu()
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    nearest = (points - points[chosen[0]]).square().sum(dim=1)
    for _ in range(count - 1):
        weights = nearest / nearest.sum() if nearest.sum() > 0 else torch.full((n,), 1.0 / n)
        chosen.append(int(torch.multinomial(weights, 1, generator=generator)))
        nearest = torch.minimum(nearest, (points - points[chosen[-1]]).square().sum(dim=1))
    centres = points[chosen].clone()
    for _ in range(iterations):
        assignment = torch.cdist(points, centres).argmin(dim=1)
        for k in range(count):
            members = points[assignment == k]
            if len(members):
                centres[k] = members.mean(dim=0)
    return centres.to(latents.device)


def negative_log_likelihood(
    rendered: torch.Tensor, measured: torch.Tensor, likelihood: str
) -> torch.Tensor:
    """−log p(measured | rendered) up to a constant, noise σ = 1: (B, D, D) x2 -> (B,).
    "l2": |y − ŷ|²/2; "correlation": −ρ²|y|²/2, the Gaussian with ŷ's scale profiled out."""
    rendered, measured = rendered.float().flatten(1), measured.float().flatten(1)
    if likelihood == "l2":
        return 0.5 * (rendered - measured).square().sum(dim=1)
    if likelihood == "correlation":
        dot = (rendered * measured).sum(dim=1)
        return -0.5 * dot.square() / rendered.square().sum(dim=1).clamp_min(1e-12)
    raise ValueError(f"likelihood {likelihood!r}: expected one of {LIKELIHOODS}")


@torch.no_grad()
def candidate_energies(
    model,
    batch: dict,
    pose: Pose,
    candidates: torch.Tensor,
    likelihood: str,
    measured: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, K) the negative log likelihood of each image of ``batch`` at each latent of
    ``candidates`` (K, d), rendered with ``pose`` (B,) on ``model`` (an unwrapped
    ``MotionModel``)."""
    if measured is None:
        measured = model.intensity.normalize(batch["image"])
    ctf, groups = batch.get("ctf"), batch.get("optics_group")
    energies = []
    for candidate in candidates:
        latents = candidate.expand(len(measured), -1)[:, None]
        rendered, _ = model.decode(latents, pose, ctf, groups, measured)
        energies.append(negative_log_likelihood(rendered[:, 0], measured, likelihood))
    return torch.stack(energies, dim=1)


def fit_candidate_masses(
    energies: torch.Tensor, masses: torch.Tensor | None = None, iterations: int = 200
) -> torch.Tensor:
    """(K,) the prior masses of K candidates that best explain a population's images:
    ``iterations`` EM steps (m_k ← the mean over particles of their posterior on k) from
    ``masses`` (None: equal), on ``energies`` (N, K), each particle's negative log
    likelihood of each candidate. The masses of the nearest particles' latents are a noisy
    encoder's; these are the mixing weights of the images themselves (an empirical-Bayes,
    nonparametric maximum-likelihood prior on the candidates)."""
    k = energies.shape[1]
    masses = torch.full((k,), 1.0 / k) if masses is None else masses.double().cpu()
    masses = masses.to(energies.device).clamp_min(1e-12)
    for _ in range(iterations):
        masses = candidate_posterior(energies, masses).mean(dim=0).clamp_min(1e-12)
    return (masses / masses.sum()).float()


def candidate_posterior(energies: torch.Tensor, masses: torch.Tensor | None) -> torch.Tensor:
    """(B, K) float64 each particle's posterior over K candidates: its negative log
    likelihood of them ``energies`` (B, K) (noise σ = 1, so exp(−energy) is the likelihood
    itself) and their prior ``masses`` (K,) (None: equal)."""
    log_posterior = -energies.double()
    if masses is not None:
        log_posterior = log_posterior + masses.to(log_posterior).clamp_min(1e-30).log()
    return torch.softmax(log_posterior, dim=1)


def posterior_mean(
    energies: torch.Tensor, candidates: torch.Tensor, masses: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, d) the posterior mean of the latents over a discrete prior: ``candidates``
    (K, d) with prior ``masses`` (K,), given each particle's ``energies`` (B, K)
    (``candidate_posterior``)."""
    weights = candidate_posterior(energies, masses)
    return (weights @ candidates.double()).to(candidates.dtype)


class Polished(NamedTuple):
    """``latents`` (B, d) and ``pose`` (B,) after polishing; ``loss_before`` and
    ``loss_after`` (B,) the negative log posterior at the start and at the end;
    ``unfitted`` (B, d) the latents no per-particle fit chose, at the start pose: the
    posterior mean over the candidates (estimate "mean"), else the encoder's
    (``train.motion_scale`` chooses on them). No gradient step fitted them to the image;
    the posterior mean does weigh the candidates by the image's own likelihood, a soft
    choice among K (docs/results.md, information_limit: at −30 dB with the 64-px box the
    held-out images preferred models further from the truth than the reference, on this
    loss and on the candidate mixture's predictive likelihood alike), so whether there is
    motion at all is decided on the encoder's estimates first (``train.motion_scale``)."""

    latents: torch.Tensor
    pose: Pose
    loss_before: torch.Tensor
    loss_after: torch.Tensor
    unfitted: torch.Tensor


def polish(
    model,
    batch: dict,
    estimates: Estimates,
    pose: Pose,
    likelihood: str,
    settings: PolishSettings,
    prior: LatentPrior | None = None,
    measured: torch.Tensor | None = None,
    candidates: torch.Tensor | None = None,
    candidate_masses: torch.Tensor | None = None,
    energies: torch.Tensor | None = None,
) -> Polished:
    """Polish the ``estimates`` of ``batch`` on ``model`` (an unwrapped ``MotionModel``).

    ``likelihood``: "l2" or "correlation" (the objective's); ``prior`` the latents' prior
    (None: none); ``pose`` (B,) where the pose starts; ``candidates`` (K, d) latents each
    particle may start from instead of its encoder's (``latent_candidates``), or None;
    ``energies`` (B, K) their ``candidate_energies`` at ``pose`` where already computed.
    Returns the polished latents and pose, and the losses (``loss_before`` at the encoder's
    estimate); a particle whose loss would rise keeps its start.
    """
    if measured is None:
        measured = model.intensity.normalize(batch["image"])
    deformation = model.deformation
    d = deformation.latent_dim
    start = estimates.mean_latents.detach().float()
    batch_size = start.shape[0]
    given = Pose(pose.rotations.detach(), pose.shifts.detach())
    rotate = model.pose_table is not None
    rates = [settings.latent_step * deformation.latent_scale] * d
    rates += [math.radians(settings.rotation_step)] * 3 if rotate else []
    rates += [settings.shift_step] * 2
    pose_start = torch.zeros(batch_size, 5 if rotate else 2, device=start.device)
    ctf, groups = batch.get("ctf"), batch.get("optics_group")

    def pose_of(rows: torch.Tensor) -> Pose:
        if rotate:
            return compose_pose(given, rows[:, d : d + 3], rows[:, d + 3 :])
        return compose_pose(given, None, rows[:, d:])

    def loss(rows: torch.Tensor) -> torch.Tensor:
        latents = rows[:, :d]
        # the model's own decoder: deformation, Eckart frame, any per-point amplitudes,
        # renderer and intensity scale, as in training
        rendered, _ = model.decode(latents[:, None], pose_of(rows), ctf, groups, measured)
        total = negative_log_likelihood(rendered[:, 0], measured, likelihood)
        if prior is not None:
            total = total + prior.energy(latents)
        return total

    table = ParticleState(batch_size, rates).to(start.device)
    rows = torch.cat([start, pose_start], dim=1)
    table.values.copy_(rows)
    index = torch.arange(batch_size, device=start.device)
    unfitted = start.clone()
    with torch.no_grad():
        before = loss(rows)
        start_loss = before
        if candidates is not None and len(candidates):
            candidates = candidates.to(rows)
            if energies is None:
                energies = candidate_energies(
                    model, batch, pose_of(rows), candidates, likelihood, measured
                )
            energies = energies.to(rows)
            if settings.estimate == "mean":
                rows = rows.clone()
                rows[:, :d] = posterior_mean(energies, candidates, candidate_masses)
                unfitted = rows[:, :d].clone()
                start_loss = loss(rows)
            else:
                if prior is not None:
                    energies = energies + prior.energy(candidates)[None]
                value, best = energies.min(dim=1)
                trial = rows.clone()
                trial[:, :d] = candidates[best]
                better = value < start_loss
                rows = torch.where(better[:, None], trial, rows)
                start_loss = torch.where(better, value, start_loss)
        table.values.copy_(rows)
    polished = table.optimize_rows(index, loss, settings.steps, final_rate=settings.final_rate)
    with torch.no_grad():
        after = loss(polished)
    # a particle whose loss rose (a step too far on a flat or noisy loss) keeps its start
    worse = after > start_loss
    polished = torch.where(worse[:, None], rows, polished)
    after = torch.where(worse, start_loss, after)
    return Polished(polished[:, :d], pose_of(polished), before, after, unfitted)
