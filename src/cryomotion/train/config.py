"""Typed run configuration, saved as YAML next to every run.

A run's ``config.yaml`` holds the cryomotion version, the time, the command line and
every setting, in four sections plus the system name and the reference model:

    system: nma
    reference: ref.pdb
    data:        particles, poses/CTF files, box, ...      (DataConfig)
    model:       latent dimension, encoder width, ...      (ModelConfig)
    deformation: the system's own settings                 (the system's settings class)
    training:    epochs, batch size, learning rate, ...    (TrainingConfig)

Reading a config is strict: an unknown key or a value of the wrong type is an
``InputError`` naming it. On the command line, ``--set section.key=value``
(``parse_setting``: the text parsed to the field's type, as strictly) overrides a loaded
config, and the specific flags override both.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cryomotion import __version__
from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError
from cryomotion.systems.registry import get_system


@dataclass
class DataConfig:
    """Where the particles are and how to present them to the encoder."""

    particles: str = ""  # .star, .cs, or a stack (.mrcs/.txt) with poses/ctf pkl files
    poses: str | None = None  # cryoDRGN poses.pkl
    ctf: str | None = None  # cryoDRGN ctf.pkl
    pixel_size: float | None = None  # Å/px, where the particle file has none
    amplitude_contrast: float | None = None  # where the file has none (RELION's default: 0)
    voltage: float | None = None  # kV, where the particle file has none
    spherical_aberration: float | None = None  # mm, where the particle file has none
    dataset_dir: str | None = None  # folder the image paths are relative to
    invert_data: bool = False  # multiply images by -1 (dark particles, cryoDRGN stacks)
    box: int | None = None  # training box (px): Fourier-crop the images on the fly
    preload: bool = False  # read every image into memory first (refused if it would not fit)
    rotation_center: str = "box"  # "box", "centroid" or "x,y,z" (Å) of the reference model
    use_file_shifts: bool = True  # start from the particle file's shifts, predict corrections
    test_fraction: float = 0.1  # held out from training (seed 000: 10 %)


@dataclass
class ModelConfig:
    """The encoder and the latent space."""

    # d (nma: the number of normal modes, default 16; segments: default 6 x segments);
    # 0 = rigid, shifts only; None: the system's default, fixed when the run starts
    latent_dim: int | None = None
    # the image encoder's trunk: "conv" (seed 000's VGG-like CNN) or "mlp" (linear layers
    # on the flattened image, as cryoSPHERE's encoder; layers ``encoder_widths``)
    encoder: str = "conv"
    encoder_widths: list[int] = field(default_factory=lambda: [512, 256, 64, 64])
    width: float = 0.25  # filters multiplier of the VGG-like encoder (seed: 1.0)
    norm: str = "batch"  # "batch" (seed; SyncBatchNorm under DDP on CUDA) or "group"
    hidden: list[int] = field(default_factory=lambda: [512, 256])  # MLP head sizes
    # the amortized VAE encoder's (segments') initial log variance of q(z|image), the bias
    # of its head. At 0 (σ = 1, the prior's width) a fresh decoder sees mostly noise in z,
    # and at low SNR the image loss shrinks it slowly: -6 (σ 0.05) measured 2.49 -> 1.97 Å
    # at -20 dB (docs/results.md, segments_collapse)
    latent_log_var_init: float = -6.0
    # data units -> renderer units (models/intensity.py): "fitted" (a gain per optics group,
    # fitted at the start and learned), "per_image" (and a least-squares scale per image),
    # "none" (the data are taken to be in the renderer's units, as before 0.2)
    intensity_scale: str = "fitted"
    # render one Gaussian bead of std 2 Å per residue, at its Cα, with the residue's summed
    # f_e(0) as amplitude (cryoSPHERE's density model), instead of every atom's form factor;
    # any system whose points are the reference's atoms (nma, segments, atomvae, deephemnma)
    coarse: bool = False
    # "given": the file's poses (+ the encoder's shift correction); "refine": and a
    # per-particle correction (rotation vector, shift) optimised by inner steps
    pose_mode: str = "given"
    pose_steps: int = 2  # inner steps per batch on each particle's pose correction
    # inner steps per particle when the latents are written (steps shrinking to 1/10)
    pose_predict_steps: int = 40
    pose_rotation_step: float = 0.5  # degrees: the inner Adam's step on the rotation
    pose_shift_step: float = 0.2  # Å: its step on the shift
    # per-particle polish when the latents are written (models/polish.py): Adam steps on
    # each image's loss over its latents and pose correction from the encoder's estimate
    # (0: off); step sizes in latent-scale units, degrees and Å
    polish_steps: int = 0
    polish_latent_step: float = 0.05
    polish_rotation_step: float = 0.5
    polish_shift_step: float = 0.2
    # the latents' prior in the polish: "empirical" (a Gaussian fitted to the encoder's
    # latents of the particles) or "none" (maximum likelihood)
    polish_prior: str = "empirical"
    # before the steps, each particle starts from the best of its encoder's latents and
    # this many k-means centres of the population's latents (0: its own; a global search)
    polish_candidates: int = 0
    # what the search returns: "map" (the most probable start) or "mean" (the posterior
    # mean of the latents over the candidates, with the prior mass of the particles nearest
    # each; Adam steps, if any, start there)
    polish_estimate: str = "map"
    # the box (px) the polish compares models with images at: None, the training box; the
    # stacks' own box to use the frequencies a run trained on Fourier crops never saw
    polish_box: int | None = None
    # the decoder polished to the data after training (Trainer.refine_decoder): EM
    # iterations, each the posterior over the candidates of every training particle (needs
    # polish_candidates and polish_estimate "mean"), then an Adam pass on the decoder's
    # weights at this rate under it, and on segments' segmentation at its rate scaled alike
    # (0: off; systems whose deformation has a decoder)
    polish_decoder_iterations: int = 0
    polish_decoder_lr: float = 1e-4
    # how much of the learned motion the models keep, x_ref + α (x(z) − x_ref): the α of
    # these with the lowest loss on the held-out particles (train/motion_scale.py); [1.0]:
    # the models as learned
    motion_scales: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    # ... unless the best α's gain over the reference (α = 0) is below this many standard
    # errors of the per-particle difference: then the reference (0: the lowest loss alone)
    motion_scale_significance: float = 2.0


@dataclass
class TrainingConfig:
    """Optimisation and execution."""

    epochs: int = 20
    batch_size: int = 256  # global: split evenly across processes under torchrun
    lr: float = 1e-3  # Adam learning rate
    # "constant", or "cosine": each phase's rate falls along a half cosine from lr to
    # lr_final × lr by the phase's last step (less SGD noise left in the final model)
    lr_schedule: str = "constant"
    lr_final: float = 0.1
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1"
    workers: int = -1  # data-loading processes per training process; -1: 0 on CPU, 4 on CUDA
    mixed_precision: bool = True  # bf16 autocast for the encoder on CUDA
    checkpoint_every: int = 0  # also checkpoint every N steps within an epoch (0: epochs only)


@dataclass
class RunConfig:
    """Every setting of a training run."""

    system: str = "nma"
    reference: str = ""  # reference atomic model as given (the run keeps a copy)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    deformation: Any = None  # the system's settings dataclass; its defaults when None
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.deformation is None:
            self.deformation = get_system(self.system).settings_class()


# Settings a resumed run may change; any other difference means a different run.
RESUMABLE = frozenset(
    {"training.epochs", "training.workers", "training.device", "training.checkpoint_every"}
    | {"data.preload"}  # where the images are read from, not what they are
    # inference-time only: a finished run re-writes its latents with other polish settings
    | {
        "model.polish_steps",
        "model.polish_latent_step",
        "model.polish_rotation_step",
        "model.polish_shift_step",
        "model.polish_prior",
        "model.polish_candidates",
        "model.polish_estimate",
        "model.polish_box",
        "model.polish_decoder_iterations",
        "model.polish_decoder_lr",
        "model.motion_scales",
        "model.motion_scale_significance",
    }
)


def with_system_defaults(config: RunConfig) -> RunConfig:
    """``config`` with the settings left to the system filled in: the latent dimension,
    and what the system derives from the rest of the config (``System.complete``)."""
    system = get_system(config.system)
    if config.model.latent_dim is None:
        latent_dim = system.default_latent_dim(config.deformation)
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, latent_dim=latent_dim)
        )
    return config if system.complete is None else system.complete(config)


def config_to_dict(config: RunConfig) -> dict:
    """The config as plain YAML-able data."""
    return dataclasses.asdict(config)


def _check_value(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, where)
            except InputError as err:
                errors.append(err)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise InputError(f"setting {where}: {value!r} is not a list")
        return [_check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is bool:
        if not isinstance(value, bool):
            raise InputError(f"setting {where}: {value!r} is not true/false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"setting {where}: {value!r} is not an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"setting {where}: {value!r} is not a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise InputError(f"setting {where}: {value!r} is not a string")
        return value
    if dataclasses.is_dataclass(annotation):
        return dataclass_from_dict(annotation, value, where)
    return value


def dataclass_from_dict(cls: type, data: Any, where: str = "") -> Any:
    """An instance of dataclass ``cls`` from ``data``; unknown keys and bad types raise."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise InputError(f"setting {where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise InputError(
            f"unknown setting {prefix}{unknown[0]} (expected one of {', '.join(sorted(names))})"
        )
    values = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        if name == "deformation" and cls is RunConfig:
            continue
        values[name] = _check_value(value, hints[name], key)
    if cls is RunConfig:
        system = get_system(values.get("system", "nma"))
        settings = data.get("deformation")
        values["deformation"] = dataclass_from_dict(
            system.settings_class, {} if settings is None else settings, "deformation"
        )
    return cls(**values)


def config_from_dict(data: dict) -> RunConfig:
    """A ``RunConfig`` from a dict: the saved file's ``config`` section or a bare config."""
    return dataclass_from_dict(RunConfig, data)


def save_config(config: RunConfig, path: str | Path, command_line: str = "") -> Path:
    """Write ``config`` with the version, the time and the command line (atomically)."""
    record = {
        "cryomotion_version": __version__,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command_line": command_line,
        "config": config_to_dict(config),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(record, sort_keys=False))
    return path


def load_config(path: str | Path) -> RunConfig:
    """Read a config written by ``save_config``, or a YAML file of bare settings."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of settings")
    if "config" in data:
        data = data["config"]
    try:
        return config_from_dict(data)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"section.key": value}``."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_differences(a: RunConfig, b: RunConfig, ignore=RESUMABLE) -> list[str]:
    """Dotted names of the settings that differ between ``a`` and ``b``, except ``ignore``."""
    flat_a, flat_b = flatten(config_to_dict(a)), flatten(config_to_dict(b))
    return sorted(
        key
        for key in set(flat_a) | set(flat_b)
        if key not in ignore and flat_a.get(key) != flat_b.get(key)
    )


def with_overrides(
    config: RunConfig, overrides: dict[str, Any], skip_none: bool = True
) -> RunConfig:
    """A copy of ``config`` with ``{"section.key": value}`` settings replaced and checked as a
    file's settings are. A None value keeps the setting (a flag not given) unless
    ``skip_none`` is False (``--set data.box=none``: set it to None)."""
    data = config_to_dict(config)
    for key, value in overrides.items():
        if value is None and skip_none:
            continue
        *sections, name = key.split(".")
        target = data
        for section in sections:
            target = target.get(section) if isinstance(target, dict) else None
        if not isinstance(target, dict) or name not in target:
            raise InputError(f"unknown setting {key}")
        target[name] = value
    return config_from_dict(data)


_NONE_WORDS = frozenset({"none", "null", "~"})
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _from_text(text: str, annotation: Any) -> Any:
    """A command-line value as the Python value it spells for a field of type ``annotation``
    (``"3e-4"`` -> 0.0003, ``"512,256"`` -> [512, 256], ``"none"`` -> None where allowed).
    It checks nothing: text that spells no such value stays text, and ``_check_value``
    then rejects it with the setting's name, as it rejects a bad value in a file."""
    origin = typing.get_origin(annotation)
    word = text.strip()
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if type(None) in options and word.lower() in _NONE_WORDS:
            return None
        for option in options:
            if option is type(None):
                continue
            value = _from_text(text, option)
            try:
                return _check_value(value, option, "")
            except InputError:
                continue
        return text
    if origin is list:
        (item,) = typing.get_args(annotation)
        body = word.removeprefix("[").removesuffix("]").strip()
        return [_from_text(part, item) for part in body.split(",")] if body else []
    if annotation is bool:
        return _BOOL_WORDS.get(word.lower(), text)
    if annotation in (int, float):
        try:
            return annotation(word)
        except ValueError:
            return text
    if annotation is str:
        return text
    try:  # any other annotation: the value as YAML reads it
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_setting(config: RunConfig, assignment: str) -> tuple[str, Any]:
    """``"section.key=value"`` (``cryomotion train --set``) as ``("section.key", value)``, the
    value parsed to the type of that field of ``config`` (its ``deformation`` section is the
    system's settings class). An unknown section or key, or a value of the wrong type, is an
    ``InputError`` naming it."""
    key, equals, text = assignment.partition("=")
    key = key.strip()
    *path, name = key.split(".")
    if not equals or not path or not all(path) or not name:
        raise InputError(f"--set {assignment}: expected SECTION.KEY=VALUE, e.g. training.lr=3e-4")
    target: Any = config
    for depth, section in enumerate(path):
        sections = sorted(
            f.name for f in dataclasses.fields(target)
            if dataclasses.is_dataclass(getattr(target, f.name))
        )  # fmt: skip
        if section not in sections:
            where = ".".join(path[: depth + 1])
            expected = f"expected one of {', '.join(sections)}" if sections else "not a section"
            raise InputError(f"--set {assignment}: unknown section {where} ({expected})")
        target = getattr(target, section)
    names = sorted(f.name for f in dataclasses.fields(target) if f.init)
    if name not in names:
        raise InputError(
            f"--set {assignment}: unknown setting {key} (expected one of {', '.join(names)})"
        )
    annotation = typing.get_type_hints(type(target))[name]
    try:
        return key, _check_value(_from_text(text, annotation), annotation, key)
    except InputError as err:
        reason = str(err).removeprefix(f"setting {key}: ")
        raise InputError(f"--set {assignment}: {reason}") from None


def with_settings(config: RunConfig, assignments: list[str] | tuple[str, ...]) -> RunConfig:
    """``config`` with ``--set section.key=value`` assignments applied (the last one of a key
    wins); see ``parse_setting``."""
    overrides = dict(parse_setting(config, assignment) for assignment in assignments)
    return with_overrides(config, overrides, skip_none=False)
