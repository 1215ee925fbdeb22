"""A training run from a config: run folder, data, model, trainer, latents.

``train_run`` is what ``cryomotion train`` calls; under ``torchrun`` every process calls
it and rank 0 writes the run folder.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cryomotion.atomic_write import atomic_path
from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.poses import resolve_rotation_center
from cryomotion.data.star import write_star_with_poses
from cryomotion.errors import InputError
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import NORMS, ImageEncoder
from cryomotion.models.inference import AmortizedEncoder
from cryomotion.models.intensity import MODES as INTENSITY_MODES
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.motion_model import POSE_WIDTH, MotionModel
from cryomotion.models.per_particle import ParticleState
from cryomotion.models.polish import ESTIMATES as POLISH_ESTIMATES
from cryomotion.models.polish import PRIORS as POLISH_PRIORS
from cryomotion.models.polish import PolishSettings
from cryomotion.models.pose import PoseMode
from cryomotion.structure.io import read_model
from cryomotion.systems.registry import InferenceInputs, get_system
from cryomotion.train.align import ALIGNMENT_FILE, align_subset
from cryomotion.train.calibrate import calibrate_intensity
from cryomotion.train.config import (
    RunConfig,
    load_config,
    save_config,
    with_overrides,
    with_system_defaults,
)
from cryomotion.train.distributed import (
    DistributedContext,
    barrier,
    broadcast_object,
    init_distributed,
    shutdown,
)
from cryomotion.train.lr_schedule import LR_SCHEDULES
from cryomotion.train.motion_scale import choose_motion_scale, lowest_loss_scale
from cryomotion.train.results import run_particles
from cryomotion.train.run_dir import (
    NewRunFolder,
    RunPaths,
    check_run_folder,
    copy_reference,
    read_run_reference,
)
from cryomotion.train.sanity import check_reference_in_box
from cryomotion.train.split import split_particles
from cryomotion.train.trainer import Trainer, check_refinable

log = logging.getLogger("cryomotion")


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else path


def resolve_paths(config: RunConfig) -> RunConfig:
    """The config with its input files as absolute paths (so a run resumes from anywhere)."""
    data = config.data
    data = replace(
        data,
        particles=_absolute(data.particles),
        poses=_absolute(data.poses),
        ctf=_absolute(data.ctf),
        dataset_dir=_absolute(data.dataset_dir),
    )
    return replace(config, reference=_absolute(config.reference), data=data)


def check_config(config: RunConfig) -> None:
    """``InputError`` for settings no run can use."""
    checks = [
        (config.model.latent_dim >= 0, f"latent dimension {config.model.latent_dim} < 0"),
        (config.model.width > 0, f"--width {config.model.width}: expected > 0"),
        (config.model.norm in NORMS, f"norm {config.model.norm!r}: expected one of {NORMS}"),
        (
            config.model.encoder in ENCODER_TRUNKS,
            f"--encoder {config.model.encoder!r}: expected one of {', '.join(ENCODER_TRUNKS)}",
        ),
        (
            bool(config.model.encoder_widths) and min(config.model.encoder_widths) >= 1,
            f"encoder widths {config.model.encoder_widths}: expected layer sizes >= 1",
        ),
        (
            config.model.intensity_scale in INTENSITY_MODES,
            f"intensity scale {config.model.intensity_scale!r}: expected one of "
            + ", ".join(INTENSITY_MODES),
        ),
        (config.model.polish_steps >= 0, f"polish steps {config.model.polish_steps} < 0"),
        (
            bool(config.model.motion_scales)
            and all(0 <= value <= 1 for value in config.model.motion_scales),
            f"motion scales {config.model.motion_scales}: expected one or more values in [0, 1]",
        ),
        (
            config.model.motion_scale_significance >= 0,
            f"motion scale significance {config.model.motion_scale_significance} < 0",
        ),
        (
            config.model.polish_candidates >= 0,
            f"polish candidates {config.model.polish_candidates} < 0",
        ),
        (
            config.model.polish_prior in POLISH_PRIORS,
            f"polish prior {config.model.polish_prior!r}: expected one of "
            + ", ".join(POLISH_PRIORS),
        ),
        (
            config.model.polish_estimate in POLISH_ESTIMATES,
            f"polish estimate {config.model.polish_estimate!r}: expected one of "
            + ", ".join(POLISH_ESTIMATES),
        ),
        (
            config.model.polish_decoder_iterations >= 0,
            f"--polish-decoder {config.model.polish_decoder_iterations}: expected >= 0",
        ),
        (
            config.model.polish_decoder_lr > 0,
            f"polish decoder lr {config.model.polish_decoder_lr}: expected > 0",
        ),
        (
            config.model.polish_decoder_iterations == 0
            or (config.model.polish_candidates > 0 and config.model.polish_estimate == "mean"),
            f"--polish-decoder {config.model.polish_decoder_iterations}: expected "
            "--polish-candidates K (above 0) and --polish-estimate mean (the posterior the "
            "decoder is fitted under)",
        ),
        (config.training.epochs >= 0, f"--epochs {config.training.epochs}: expected >= 0"),
        (config.training.batch_size >= 1, f"--batch-size {config.training.batch_size} < 1"),
        (config.training.lr > 0, f"--lr {config.training.lr}: expected > 0"),
        (
            config.training.lr_schedule in LR_SCHEDULES,
            f"--lr-schedule {config.training.lr_schedule!r}: expected one of "
            + ", ".join(LR_SCHEDULES),
        ),
        (
            0 < config.training.lr_final <= 1,
            f"lr final {config.training.lr_final}: expected a fraction in (0, 1]",
        ),
        (config.training.seed >= 0, f"--seed {config.training.seed}: expected an integer >= 0"),
        (
            getattr(config.deformation, "segments", 1) >= 1,
            f"--segments {getattr(config.deformation, 'segments', 1)}: expected an integer >= 1",
        ),
        (
            0 <= config.data.test_fraction < 1,
            f"--test-fraction {config.data.test_fraction}: expected a number >= 0 and < 1",
        ),
        (config.training.workers >= -1, f"--workers {config.training.workers}: expected >= -1"),
        (
            config.training.checkpoint_every >= 0,
            f"--checkpoint-every {config.training.checkpoint_every}: expected >= 0",
        ),
        (config.data.box is None or config.data.box >= 8, f"--box {config.data.box} < 8 px"),
        (bool(config.data.particles), "no particle file given"),
        (bool(config.reference), "no reference model given"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def amortized_encoder(
    config: RunConfig, box: int, deformation, variational: bool
) -> AmortizedEncoder:
    """The image encoder of ``config.model`` in front of ``deformation`` (heads: a shift
    correction, the latents, for a VAE their log variance, and a rotation correction where
    the system's ``rotation_correction`` asks for one)."""
    d = config.model.latent_dim
    correction = get_system(config.system).rotation_correction
    rotation_scale = 0.0 if correction is None else correction(config.deformation)
    heads = (
        {"shifts": 2, "latents": d}
        | ({"latent_log_var": d} if variational else {})
        | ({"rotation": 3} if rotation_scale > 0 else {})
    )
    encoder = ImageEncoder(
        box,
        heads,
        width=config.model.width,
        norm=config.model.norm,
        hidden=tuple(config.model.hidden),
        trunk=config.model.encoder,
        mlp_widths=tuple(config.model.encoder_widths),
    )
    if variational:
        encoder.start_output("latent_log_var", config.model.latent_log_var_init)
    return AmortizedEncoder(
        encoder,
        d,
        latent_scale=deformation.latent_scale,
        variational=variational,
        mixed_precision=config.training.mixed_precision,
        rotation_scale=rotation_scale,
    )


# the trunks an amortized encoder may have (``model.encoder``)
ENCODER_TRUNKS = ("conv", "mlp")

# Å, the std of the Gaussian bead per residue of ``--coarse`` (cryoSPHERE's sigma_gmm)
BEAD_SIGMA = 2.0


def _drawn(coarse: bool, scatterers) -> str:
    """What the renderer draws, for the log."""
    if scatterers is not None:
        return "the deformation's own"
    if coarse:
        return f"one Gaussian bead of std {BEAD_SIGMA:g} Å per residue, at its Cα (--coarse)"
    return "every atom, its element's form factor"


def build_model(
    config: RunConfig,
    paths: RunPaths,
    dataset: ParticleDataset,
    table_box: int,
    table_pixel_size: float,
) -> MotionModel:
    """Inference (the system's own, or the amortized encoder), deformation (from the run
    folder), renderer, intensity scale and (with ``--pose-mode refine`` and the amortized
    encoder) the pose table for ``config``. A system that builds its own inference handles
    its pose mode there."""
    system = get_system(config.system)
    reference = read_run_reference(paths, config.reference)
    center = resolve_rotation_center(
        config.data.rotation_center, reference, table_box, table_pixel_size
    )
    torch.manual_seed(config.training.seed)  # the deformation may have parameters too
    deformation = system.build_deformation(
        reference, config.model.latent_dim, config.deformation, paths.root
    )
    if config.model.coarse and not deformation.points_are_atoms:
        raise InputError(
            f"--coarse draws the reference's residues, but the {system.name} system's points "
            "are not its atoms"
        )
    renderer = AtomRenderer.from_model(
        reference,
        dataset.box,
        dataset.pixel_size,
        rotation_center=center,
        coarse=config.model.coarse,
        bead_sigma=BEAD_SIGMA,
    )
    if (scatterers := deformation.scatterers()) is not None:
        # the deformation's points are not the reference's atoms (3DFlex's pseudo-atoms),
        # or are drawn otherwise (AtomVAE's residue beads)
        renderer = AtomRenderer(scatterers, dataset.box, dataset.pixel_size, rotation_center=center)
    drawn = _drawn(config.model.coarse, scatterers)
    log.info("renderer: %d scatterers (%s)", renderer.n_scatterers, drawn)
    pose_mode = PoseMode.parse(config.model.pose_mode)
    if pose_mode.value not in system.pose_modes:
        raise InputError(
            f"--pose-mode {pose_mode.value}: the {system.name} system supports "
            + ", ".join(system.pose_modes)
        )
    if system.build_inference is not None:
        inference = system.build_inference(
            InferenceInputs(
                config,
                paths.root,
                reference,
                deformation,
                dataset.box,
                dataset.pixel_size,
                len(dataset),
            )
        )
    else:
        inference = amortized_encoder(config, dataset.box, deformation, system.variational)
    pose_table = None
    if pose_mode is PoseMode.REFINE and system.build_inference is None:
        rotation_step = np.deg2rad(config.model.pose_rotation_step)
        steps = [rotation_step] * 3 + [config.model.pose_shift_step] * 2
        pose_table = ParticleState(len(dataset), steps)
        assert pose_table.width == POSE_WIDTH
    return MotionModel(
        inference,
        deformation,
        renderer,
        intensity=IntensityScale(dataset.n_optics_groups, config.model.intensity_scale),
        pose_table=pose_table,
    )


def _log_file(path: Path) -> logging.Handler:
    """This module's INFO messages appended to ``path``; returns the handler."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


def _prepare_folder(
    config: RunConfig, paths: RunPaths, resume: bool, command_line: str
) -> logging.Handler:
    """Rank 0: check the folder, copy the reference, save the config, open the log file,
    prepare the system (e.g. compute the modes). Returns the log file's handler."""
    resumed = check_run_folder(paths, config, resume)
    paths.root.mkdir(parents=True, exist_ok=True)
    if not resumed:
        copy_reference(config.reference, paths)
    save_config(config, paths.config, command_line)
    handler = _log_file(paths.log)
    log.info(
        "%s run %s: %s",
        "resuming" if resumed else "starting",
        paths.root,
        command_line or "(library call)",
    )
    try:
        reference = read_run_reference(paths, config.reference)
        get_system(config.system).prepare(
            reference, config.model.latent_dim, config.deformation, paths.root
        )
    except BaseException:
        log.removeHandler(handler)
        handler.close()
        raise
    return handler


# per-particle arrays of latents.npz that only some systems write (besides log_var)
OPTIONAL_LATENT_KEYS = ("aligned", "misfit", "regressed_latents")


def unfitted_predictions(predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``Trainer.predict``'s arrays with the polish's unfitted estimates (``unfitted_*``,
    removed from ``predictions``) as the latents and pose, where it polished; else the
    predictions themselves."""
    if "unfitted_latents" not in predictions:
        return predictions
    unfitted = dict(predictions)
    for key in ("latents", "rotations", "shifts"):
        unfitted[key] = predictions.pop(f"unfitted_{key}")
    return unfitted


def held_out_motion_scale(
    trainer: Trainer,
    predictions: dict[str, np.ndarray],
    test: np.ndarray,
    config: RunConfig,
    detection: dict[str, np.ndarray] | None = None,
) -> float:
    """The motion scale α of ``config.model.motion_scales`` the held-out particles ``test``
    prefer with their ``predictions`` (``train.motion_scale``); 1 when there is no choice to
    make (one value, no held-out particles, or points that are not the reference's
    atoms). With ``detection`` (the held-out particles' estimates that no image's
    likelihood weighed: the encoder's or regressor's) the motion must first show on those
    beyond the noise (α > 0), else the models are the reference (0)."""
    scales = sorted(config.model.motion_scales)
    if scales == [1.0] or len(test) == 0 or not trainer.module.deformation.points_are_atoms:
        return 1.0
    significance = config.model.motion_scale_significance
    if detection is not None:
        detected, losses = choose_motion_scale(trainer, detection, test, scales, significance)
        log.info(
            "motion on the amortized estimates (no image's likelihood weighed them): α %.2f; "
            "the mean held-out loss of %d particles at α = %s",
            detected,
            len(test),
            ", ".join(f"{value:g}: {loss:.6g}" for value, loss in losses.items()),
        )
        if detected == 0.0:
            log.warning(
                "the amortized estimates of the held-out particles show no motion beyond %g "
                "standard errors of the reference's loss: the models are the reference "
                "(motion scale 0), whatever the posterior mean over the candidates shows "
                "(it weighs each image's own likelihood; train.motion_scale)",
                significance,
            )
            return 0.0
    scale, losses = choose_motion_scale(trainer, predictions, test, scales, significance)
    log.info(
        "motion scale %.2f: the mean held-out loss of %d particles at α = %s",
        scale,
        len(test),
        ", ".join(f"{value:g}: {loss:.6g}" for value, loss in losses.items()),
    )
    best = lowest_loss_scale(losses)
    if scale == 0.0 and best != 0.0:
        log.warning(
            "the learned motion (α = %g) lowers the held-out loss by less than %g standard "
            "errors of the reference's: the models are the reference (motion scale 0)",
            best,
            significance,
        )
    elif scale < 1.0:
        log.warning(
            "the held-out images prefer the models moved back toward the reference "
            "(motion scale %.2f of the learned motion; 0 is the reference itself): the "
            "images do not support all of the learned deformation",
            scale,
        )
    return scale


def write_latents(
    path: Path,
    predictions: dict[str, np.ndarray],
    n_particles: int,
    test: np.ndarray,
    motion_scale: float = 1.0,
) -> Path:
    """``latents.npz``, the same keys for every system, in particle order: ``latents``
    (N, d), ``rotations`` (N, 3, 3) and ``shifts`` (N, 2) Å (the poses the models were
    rendered with: the file's, or refined), ``particle_index`` (N,), ``is_test`` (N,) bool,
    and ``log_var`` (N, d) for a VAE; for a system that aligns a subset (DeepHEMNMA) also
    ``aligned`` (N,) bool, ``misfit`` (N,) (NaN where not aligned) and ``regressed_latents``
    (N, d), the regressor's latents of every particle; ``motion_scale`` () the α the models
    are decoded with (``train.motion_scale``)."""
    order = np.argsort(predictions["index"], kind="stable")
    index = predictions["index"][order]
    if not np.array_equal(index, np.arange(n_particles)):
        raise RuntimeError("inference did not return every particle exactly once")
    is_test = np.zeros(n_particles, dtype=bool)
    is_test[test] = True
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            latents=predictions["latents"][order],
            rotations=predictions["rotations"][order],
            shifts=predictions["shifts"][order],
            particle_index=index,
            is_test=is_test,
            motion_scale=np.float64(motion_scale),
            **{
                key: predictions[key][order]
                for key in ("log_var", *OPTIONAL_LATENT_KEYS)
                if key in predictions
            },
        )
    return path


def train_run(
    config: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    command_line: str = "",
    progress: bool = True,
    context: DistributedContext | None = None,
    latents_path: str | Path | None = None,
) -> RunPaths:
    """Train ``config`` into ``run_dir`` (see ``run_dir.RunPaths`` for what it holds).

    With ``resume`` a run already in ``run_dir`` continues from its last checkpoint (a
    finished run with more ``epochs`` trains on). Refuses a folder holding a different
    run. With ``latents_path`` (``polish_run``) a finished run in ``run_dir`` is not
    trained: its checkpoint infers every particle's latents with ``config`` (its polish
    settings), written to ``latents_path``, and the run folder is left as it is. Returns
    the run's paths.
    """
    config = with_system_defaults(resolve_paths(config))
    check_config(config)
    paths = RunPaths(Path(run_dir).resolve())
    predict_only = latents_path is not None
    if predict_only:
        resume = True
        if not (paths.config.is_file() and paths.checkpoint.is_file()):
            raise InputError(
                f"{paths.root}: no config.yaml and checkpoint (expected a run folder written "
                "by 'cryomotion train')"
            )
    own_context = context is None
    context = context or init_distributed(config.training.device)
    handler = None
    new_folder = None  # rank 0 of a new run: undone if the run fails before a checkpoint
    try:
        system = get_system(config.system)
        # the particles first: a bad input fails before the run folder is written
        table = run_particles(config)
        dataset = ParticleDataset(
            table,
            box=config.data.box,
            invert_contrast=config.data.invert_data,
            preload=config.data.preload,
        )
        polish_dataset = None
        polish_box = config.model.polish_box
        polishing = config.model.polish_steps > 0 or config.model.polish_candidates > 0
        if polishing and polish_box is not None and polish_box != dataset.box:
            if polish_box % 2 or not 2 <= polish_box <= table.box_size:
                raise InputError(
                    f"--polish-box {polish_box}: expected an even size of at most the stacks' "
                    f"{table.box_size} px"
                )
            polish_dataset = ParticleDataset(
                table,
                box=polish_box,
                invert_contrast=config.data.invert_data,
                preload=config.data.preload,
            )
        if not (resume and paths.config.is_file()):
            # the user's model, before the run folder is written
            reference = read_model(config.reference)
            center = resolve_rotation_center(
                config.data.rotation_center, reference, table.box_size, table.single_pixel_size
            )
            check_reference_in_box(
                reference.coords, center, table.box_size, table.single_pixel_size, config.reference
            )
        error = None
        if context.is_main:
            if predict_only:  # the run's folder stays as it is: the log goes beside the latents
                handler = _log_file(Path(latents_path).with_suffix(".log"))
                log.info("polishing run %s into %s", paths.root, latents_path)
            else:
                if not (resume and paths.config.is_file()):
                    new_folder = NewRunFolder.begin(paths)
                try:
                    handler = _prepare_folder(config, paths, resume, command_line)
                except InputError as err:
                    error = str(err)
        error = broadcast_object(context, error)
        if error:
            raise InputError(error)
        model = build_model(config, paths, dataset, table.box_size, table.single_pixel_size)
        if config.model.polish_decoder_iterations:
            check_refinable(model.deformation, f"the {config.system}")  # before training
        train, test = split_particles(len(dataset), config.data.test_fraction, config.training.seed)
        calibrate_intensity(
            model,
            dataset,
            train,
            device=context.device,
            use_file_shifts=config.data.use_file_shifts,
            source=str(config.data.particles),
            poses_known=config.model.pose_mode != PoseMode.INFER.value,
        )
        patience = None
        held_out = test  # the particles the motion scale is chosen on
        if system.alignment is not None:  # DeepHEMNMA: align a subset, train on it
            plan = system.alignment(config.deformation, len(dataset), config.training.seed)
            align_subset(
                model,
                dataset,
                plan.aligned,
                paths.root / ALIGNMENT_FILE,
                batch_size=plan.batch_size,
                context=context,
                use_file_shifts=config.data.use_file_shifts,
                progress=progress,
            )
            train, test, patience = plan.train, plan.validation, plan.patience
            # the aligned particles' amplitudes were fitted to their own images (and the
            # regressor stopped on the validation part's): the particles no step of training
            # has seen are the others, when there are any
            unaligned = np.setdiff1d(np.arange(len(dataset)), plan.aligned)
            held_out = unaligned if len(unaligned) else test
        if context.is_main:
            log.info(
                "%d particles (%d train, %d test), box %d px at %.4g Å/px, %d latent dimensions, "
                "device %s, %d process(es)",
                len(dataset),
                len(train),
                len(test),
                dataset.box,
                dataset.pixel_size,
                config.model.latent_dim,
                context.device,
                context.world_size,
            )
        trainer = Trainer(
            model,
            dataset,
            train,
            test,
            config.training,
            context=context,
            checkpoint_path=paths.checkpoint,
            metrics_path=paths.metrics,
            use_file_shifts=config.data.use_file_shifts,
            progress=progress,
            schedule=system.phases(config.deformation, config.training.epochs),
            pose_steps=config.model.pose_steps,
            predict_pose_steps=config.model.pose_predict_steps,
            polish_settings=PolishSettings(
                steps=config.model.polish_steps,
                latent_step=config.model.polish_latent_step,
                rotation_step=config.model.polish_rotation_step,
                shift_step=config.model.polish_shift_step,
                prior=config.model.polish_prior,
                candidates=config.model.polish_candidates,
                estimate=config.model.polish_estimate,
            ),
            polish_dataset=polish_dataset,
            patience=patience,
        )
        if predict_only:
            trainer.restore()
            if trainer.epoch < trainer.epochs:
                raise InputError(
                    f"{paths.checkpoint}: epoch {trainer.epoch} of {trainer.epochs} (the run "
                    "has not finished; finish it with 'cryomotion train ... --resume' first)"
                )
        else:
            trainer.fit(resume=resume)
            iterations = config.model.polish_decoder_iterations - trainer.decoder_iterations
            if iterations > 0 and trainer.epoch >= trainer.epochs:
                trainer.refine_decoder(train, iterations, config.model.polish_decoder_lr)
        predictions = trainer.predict(np.arange(len(dataset)))
        # the posterior mean over the candidates weighs each image's own likelihood: the
        # held-out particles' estimates that nothing weighed must show the motion first
        detection = None
        weighs_images = config.model.polish_candidates and config.model.polish_estimate == "mean"
        if weighs_images and len(held_out):
            detection = trainer.predict(held_out, polish=False)
        if context.is_main:
            # a polish's steps fit each particle's latents to its own image, so its held-out
            # models are held out no more: the motion scale is chosen on the estimates no
            # per-particle fit chose (the posterior mean over the candidates, or the
            # encoder's or regressor's), before the aligned particles take their alignment
            amortized = unfitted_predictions(predictions)
            if system.alignment is not None:  # the aligned particles keep their alignment
                predictions = model.inference.final_predictions(predictions)
            motion_scale = held_out_motion_scale(trainer, amortized, held_out, config, detection)
            written = Path(latents_path) if predict_only else paths.latents
            write_latents(written, predictions, len(dataset), test, motion_scale)
            log.info("wrote %s", written)
            # poses refined by a pose table, estimated by the inference (AtomVAE) or refined
            # by its alignment and regressor (DeepHEMNMA)
            estimated = getattr(model.inference, "pose_mode", PoseMode.GIVEN) != PoseMode.GIVEN
            estimated = estimated or bool(getattr(model.inference, "refine_pose", False))
            if (model.pose_table is not None or estimated) and not predict_only:
                order = np.argsort(predictions["index"], kind="stable")
                write_star_with_poses(
                    paths.refined_poses,
                    table,
                    predictions["rotations"][order],
                    predictions["shifts"][order],
                )
                log.info("wrote %s (%s poses)", paths.refined_poses, config.model.pose_mode)
            if system.save_state is not None and not predict_only:
                system.save_state(trainer.module.deformation.eval(), paths.root)
        barrier(context)
        return paths
    except BaseException:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
            handler = None
        if new_folder is not None:
            new_folder.discard()  # keeps a run that reached a checkpoint (--resume it)
        raise
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        if own_context:
            shutdown(context)


def polish_run(
    run_dir: str | Path,
    overrides: dict[str, object],
    latents_path: str | Path,
    progress: bool = True,
    context: DistributedContext | None = None,
) -> Path:
    """Polish a finished run's particles at inference: every particle's latents and pose
    inferred by the run's checkpoint with its config and the polish settings
    ``overrides`` (``{"model.polish_steps": 30, ...}``; None sets a setting to None), the
    motion scale chosen again, written to ``latents_path`` in ``latents.npz``'s format
    (with a log beside it). The run folder is left as it is. Returns ``latents_path``."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise InputError(f"{run_dir}: no config.yaml (expected a folder written by 'train')")
    unknown = sorted(
        key
        for key in overrides
        if not key.startswith("model.polish_") or key.startswith("model.polish_decoder")
    )
    if unknown:
        # the decoder is refined in training (it changes the run's checkpoint), not here
        raise ValueError(f"polish_run: {', '.join(unknown)} are not per-particle polish settings")
    # the decoder a run was refitted with is in its checkpoint; here it is used, not refitted
    overrides = {**overrides, "model.polish_decoder_iterations": 0}
    config = with_overrides(load_config(paths.config), overrides, skip_none=False)
    train_run(config, paths.root, progress=progress, context=context, latents_path=latents_path)
    return Path(latents_path)
