"""``train.run.build_model``: the run's config reaches the model it builds."""

from dataclasses import replace

import pytest
import torch

from cryomotion.cli.main import main
from cryomotion.data.dataset import ParticleDataset
from cryomotion.errors import InputError
from cryomotion.models.encoder import ConvEncoder, MLPTrunk
from cryomotion.train.config import RunConfig, load_config, with_overrides, with_system_defaults
from cryomotion.train.results import run_particles
from cryomotion.train.run import BEAD_SIGMA, build_model, check_config
from cryomotion.train.run_dir import RunPaths, read_run_reference


@pytest.fixture(scope="module")
def run(simulate_with_cli, adk_closed_path, tmp_path_factory):
    """A finished one-epoch nma run (all atoms) on 16 AdK particles of 24 px."""
    sim = simulate_with_cli("build_model", adk_closed_path, 2, 16, 24, 4.0)
    folder = tmp_path_factory.mktemp("build_model") / "run"
    assert main([
        "train", "nma", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o",
        str(folder), "--modes", "2", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
        "--no-progress",
    ]) == 0  # fmt: skip
    return folder


def _model(run, system, coarse, **overrides):
    """The model ``build_model`` makes of ``run``'s config, as ``system`` (its default
    settings) with ``model.coarse`` set to ``coarse`` and the other ``overrides``."""
    config = load_config(RunPaths(run).config)
    if system != config.system:
        config = RunConfig(
            system, config.reference, config.data, replace(config.model, latent_dim=None),
            training=config.training,
        )  # fmt: skip
    config = with_system_defaults(with_overrides(config, {"model.coarse": coarse} | overrides))
    table = run_particles(config)
    dataset = ParticleDataset(table, box=config.data.box)
    return build_model(config, RunPaths(run), dataset, table.box_size, table.single_pixel_size)


@pytest.mark.parametrize("system", ["nma", "segments"])
def test_coarse_setting_reaches_the_renderer(run, system):
    reference = read_run_reference(RunPaths(run), load_config(RunPaths(run).config).reference)
    atoms = _model(run, system, coarse=False)
    assert atoms.renderer.n_scatterers == reference.n_atoms
    beads = _model(run, system, coarse=True)
    assert beads.renderer.n_scatterers == reference.n_residues == 214
    # the bead: a normalized Gaussian of std BEAD_SIGMA Å, f(q) = A exp(-2π²σ²|q|²)
    b = beads.renderer.scatterers.form_factor_b
    assert b[0, 0] == pytest.approx(8 * 3.141592653589793**2 * BEAD_SIGMA**2)


def test_mlp_encoder_setting_reaches_the_encoder(run):
    model = _model(run, "segments", coarse=True, **{"model.encoder": "mlp"})
    trunk = model.inference.encoder.features
    assert isinstance(trunk, MLPTrunk)
    linear = [m.out_features for m in trunk.modules() if isinstance(m, torch.nn.Linear)]
    assert linear == [512, 256, 64, 64]  # cryoSPHERE's encoder
    assert isinstance(_model(run, "nma", coarse=False).inference.encoder.features, ConvEncoder)
    with pytest.raises(InputError, match="--encoder 'vgg'"):
        check_config(with_overrides(load_config(RunPaths(run).config), {"model.encoder": "vgg"}))


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("training.lr_schedule", "step", "--lr-schedule 'step': expected one of constant, cosine"),
        ("training.lr_final", 0.0, r"lr final 0.0: expected a fraction in \(0, 1\]"),
    ],
)
def test_a_bad_learning_rate_schedule_is_named(run, setting, value, message):
    with pytest.raises(InputError, match=message):
        check_config(with_overrides(load_config(RunPaths(run).config), {setting: value}))
