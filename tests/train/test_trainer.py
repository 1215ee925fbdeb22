"""The trainer: learning happens, resumed runs equal uninterrupted ones bit for bit."""

import csv

import numpy as np
import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.models.schedule import Phase
from cryomotion.train.checkpoint import load_checkpoint
from cryomotion.train.config import TrainingConfig
from cryomotion.train.trainer import Trainer

TRAIN, TEST = np.arange(8, 64), np.arange(8)


class Killed(Exception):
    """Stands for the process being killed."""


def settings(**changes):
    values = dict(epochs=2, batch_size=16, lr=1e-3, seed=3, workers=0)
    values.update(changes)
    return TrainingConfig(**values)


def parameters(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def run(tiny_problem, tmp_path, seed=0, kill_at=None, resume=False, schedule=None, **changes):
    dataset, make_model = tiny_problem
    model = make_model(seed)

    def on_step(epoch, batch):
        if (epoch, batch) == kill_at:
            raise Killed

    trainer = Trainer(
        model,
        dataset,
        TRAIN,
        TEST,
        settings(**changes),
        checkpoint_path=tmp_path / "c.pt",
        metrics_path=tmp_path / "metrics.csv",
        progress=False,
        on_step=on_step,
        schedule=schedule,
    )
    trainer.fit(resume=resume)
    return trainer


def test_loss_decreases_and_metrics_are_written(tiny_problem, tmp_path):
    trainer = run(tiny_problem, tmp_path, epochs=3, lr=3e-3)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[0]["particles_per_s"]) > 0
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 3
    predicted = trainer.predict(np.arange(64))
    assert predicted["latents"].shape == (64, 2)
    assert sorted(predicted["index"]) == list(range(64))


@pytest.mark.parametrize(("kill_at", "every"), [((1, 1), 0), ((0, 3), 2)])
def test_killed_and_resumed_equals_uninterrupted(tiny_problem, tmp_path, kill_at, every):
    reference = parameters(run(tiny_problem, tmp_path / "a", checkpoint_every=every).module)
    with pytest.raises(Killed):
        run(tiny_problem, tmp_path / "b", kill_at=kill_at, checkpoint_every=every)
    checkpoint = load_checkpoint(tmp_path / "b" / "c.pt")
    assert (checkpoint["epoch"], checkpoint["batch"]) == ((1, 0) if every == 0 else (0, 2))
    # a fresh process: different initial weights, state comes from the checkpoint
    resumed = run(tiny_problem, tmp_path / "b", seed=99, resume=True, checkpoint_every=every)
    assert_same(parameters(resumed.module), reference)
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_resume_extends_a_finished_run(tiny_problem, tmp_path):
    reference = parameters(run(tiny_problem, tmp_path / "a", epochs=3).module)
    run(tiny_problem, tmp_path / "b", epochs=2)
    extended = run(tiny_problem, tmp_path / "b", seed=7, resume=True, epochs=3)
    assert_same(parameters(extended.module), reference)


def test_a_cosine_schedule_ends_each_phase_at_its_final_rate(tiny_problem, tmp_path):
    seen = []

    def record(trainer):
        def on_step(epoch, batch):
            seen.append((trainer.phase_index, trainer.optimizer.param_groups[0]["lr"]))

        return on_step

    dataset, make_model = tiny_problem
    trainer = Trainer(
        make_model(), dataset, TRAIN, TEST, settings(lr_schedule="cosine", lr_final=0.2),
        progress=False, schedule=two_phases(),
    )  # fmt: skip
    trainer.on_step = record(trainer)
    trainer.fit()
    # 56 particles in batches of 16: 4 steps an epoch; phase 0 one epoch, phase 1 two
    assert [phase for phase, _ in seen] == [0] * 4 + [1] * 8
    rates = [lr for _, lr in seen]
    assert rates[0] == pytest.approx(1e-3) and rates[4] == pytest.approx(1e-3)
    assert rates[3] == pytest.approx(2e-4) and rates[-1] == pytest.approx(2e-4)
    assert all(b < a for a, b in zip(rates[4:], rates[5:], strict=False))


def test_a_cosine_run_resumed_mid_phase_equals_an_uninterrupted_one(tiny_problem, tmp_path):
    changes = dict(lr_schedule="cosine", checkpoint_every=2)
    reference = run(tiny_problem, tmp_path / "a", **changes)
    with pytest.raises(Killed):
        run(tiny_problem, tmp_path / "b", kill_at=(1, 1), **changes)
    resumed = run(tiny_problem, tmp_path / "b", seed=99, resume=True, **changes)
    assert_same(parameters(resumed.module), parameters(reference.module))


def test_batch_must_split_across_processes(tiny_problem):
    from cryomotion.train.distributed import DistributedContext

    dataset, make_model = tiny_problem
    with pytest.raises(InputError, match="multiple"):
        Trainer(
            make_model(),
            dataset,
            TRAIN,
            TEST,
            settings(batch_size=15),
            context=DistributedContext(rank=0, world_size=2),
            progress=False,
        )


def test_a_run_whose_models_leave_the_box_stops_with_a_clear_message(tiny_problem, tmp_path):
    """Amplitudes scaled 10⁶× put every test particle's atoms far outside the box."""
    from cryomotion.train.trainer import TrainingDiverged

    dataset, make_model = tiny_problem
    model = make_model()
    model.inference.latent_scale *= 1e6
    trainer = Trainer(
        model, dataset, TRAIN, TEST, settings(epochs=3), progress=False,
        checkpoint_path=tmp_path / "last.pt", metrics_path=tmp_path / "metrics.csv",
    )  # fmt: skip
    with pytest.raises(TrainingDiverged, match="left the box") as info:
        trainer.fit()
    assert "\n" not in str(info.value) and "last.pt" in str(info.value)
    assert trainer.epoch == 1  # stopped after the first epoch, its checkpoint written
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert float(rows[0]["outside_box"]) == 1.0


def test_models_in_the_box_are_reported_as_such(tiny_problem, tmp_path):
    dataset, make_model = tiny_problem
    trainer = Trainer(
        make_model(), dataset, TRAIN, TEST, settings(epochs=1), progress=False,
        metrics_path=tmp_path / "metrics.csv",
    )  # fmt: skip
    (row,) = trainer.fit()
    assert row["outside_box"] == 0.0


def two_phases():
    """Phase "encoder" trains the inference only (the gain is frozen), then "all"."""
    objective = ReconstructionObjective("l2")
    return [
        Phase("encoder", 1, objective, train=("inference",)),
        Phase("all", 2, objective),
    ]


def test_a_phase_trains_only_its_groups(tiny_problem, tmp_path):
    from cryomotion.models.intensity import IntensityScale

    dataset, make_model = tiny_problem
    model = make_model()
    model.intensity = IntensityScale(1, "fitted")
    before = parameters(model)
    trainer = Trainer(
        model, dataset, TRAIN, TEST, settings(), progress=False,
        schedule=[Phase("encoder", 1, ReconstructionObjective(), train=("inference",))],
    )  # fmt: skip
    trainer.fit()
    after = parameters(trainer.module)
    assert torch.equal(after["intensity.log_gain"], before["intensity.log_gain"])
    assert not torch.equal(
        after["inference.encoder.heads.latents.mlp.4.weight"],
        before["inference.encoder.heads.latents.mlp.4.weight"],
    )
    with pytest.raises(InputError, match="trains no parameters"):
        nothing = Phase("none", 1, ReconstructionObjective(), train=("nothing",))
        Trainer(model, dataset, TRAIN, TEST, settings(), progress=False, schedule=[nothing])


@pytest.mark.parametrize("kill_at", [(1, 2), (2, 0)])
def test_two_phases_resumed_mid_phase_equal_an_uninterrupted_run(tiny_problem, tmp_path, kill_at):
    reference = run(tiny_problem, tmp_path / "a", schedule=two_phases(), checkpoint_every=2)
    with pytest.raises(Killed):
        run(tiny_problem, tmp_path / "b", kill_at=kill_at, schedule=two_phases(),
            checkpoint_every=2)  # fmt: skip
    assert load_checkpoint(tmp_path / "b" / "c.pt")["phase"] == 1
    resumed = run(tiny_problem, tmp_path / "b", seed=99, resume=True, schedule=two_phases(),
                  checkpoint_every=2)  # fmt: skip
    assert_same(parameters(resumed.module), parameters(reference.module))
    assert resumed.phase_index == 1 and resumed.epoch == 3


def test_a_checkpoint_from_before_phases_reads_as_phase_0(tiny_problem, tmp_path):
    """cryomotion 0.1 checkpoints: no phase, the encoder's keys without "inference."."""
    run(tiny_problem, tmp_path / "a", epochs=1)
    checkpoint = tmp_path / "a" / "c.pt"
    payload = load_checkpoint(checkpoint)
    del payload["phase"]
    payload["model"] = {
        k.removeprefix("inference."): v
        for k, v in payload["model"].items()
        if not k.startswith("intensity.")
    }
    torch.save(payload, checkpoint)
    resumed = run(tiny_problem, tmp_path / "a", seed=5, resume=True, epochs=2)
    assert resumed.epoch == 2 and resumed.phase_index == 0


def test_a_decoder_refit_moves_each_group_at_its_training_rate_scaled_alike():
    """segments: the decoder at the refit's rate, the segmentation at its own (faster)
    training rate times the same factor; a fixed basis has nothing to refit."""
    from cryomotion.deform.normal_modes import NormalModeDeformation
    from cryomotion.deform.segments import SegmentDeformation
    from cryomotion.train.trainer import refit_groups

    rng = np.random.default_rng(0)
    centers = np.cumsum(rng.normal(0, 2, (12, 3)), axis=0)
    segments = SegmentDeformation(
        reference=centers,
        residue_index=np.arange(12),
        residue_chain=np.array(["A"] * 12),
        residue_centers=centers,
        latent_dim=2,
        n_segments=3,
        segmentation_lr=0.01,
    )
    groups = {group["name"]: group for group in refit_groups(segments, 1e-4, 3e-4)}
    assert set(groups) == {"decoder", "segmentation"}
    assert groups["decoder"]["lr"] == pytest.approx(1e-4)
    assert groups["segmentation"]["lr"] == pytest.approx(0.01 / 3)
    assert {id(p) for p in groups["decoder"]["params"]} == {
        id(p) for p in segments.decoder.parameters()
    }
    modes = NormalModeDeformation(centers, rng.normal(size=(2, 12, 3)))
    assert refit_groups(modes, 1e-4, 3e-4) == []
