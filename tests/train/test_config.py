"""Run configuration: YAML round trip, strict keys and types, overrides, differences."""

import pytest
import yaml

from cryomotion import __version__
from cryomotion.errors import InputError
from cryomotion.systems.nma import NormalModeSettings
from cryomotion.train.config import (
    RunConfig,
    config_differences,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_setting,
    save_config,
    with_overrides,
    with_settings,
)


def test_yaml_round_trip_with_metadata(tmp_path):
    config = RunConfig(system="nma", reference="/x/ref.pdb")
    config.data.particles = "/x/particles.star"
    config.data.box = 64
    config.model.latent_dim = 1
    config.deformation.cutoff = 12.0
    config.training.lr = 3e-4
    path = save_config(config, tmp_path / "config.yaml", command_line="cryomotion train nma")
    record = yaml.safe_load(path.read_text())
    assert record["cryomotion_version"] == __version__
    assert record["command_line"] == "cryomotion train nma"
    assert "created" in record
    loaded = load_config(path)
    assert config_to_dict(loaded) == config_to_dict(config)
    assert isinstance(loaded.deformation, NormalModeSettings)
    assert loaded.deformation.cutoff == 12.0


def test_unknown_keys_are_errors(tmp_path):
    data = config_to_dict(RunConfig())
    data["training"]["learning_rate"] = 0.1
    with pytest.raises(InputError, match="unknown setting training.learning_rate"):
        config_from_dict(data)
    data = config_to_dict(RunConfig())
    data["deformation"]["cutof"] = 10
    with pytest.raises(InputError, match="unknown setting deformation.cutof"):
        config_from_dict(data)
    path = tmp_path / "bad.yaml"
    path.write_text("colour: blue\n")
    with pytest.raises(InputError, match="bad.yaml: unknown setting colour"):
        load_config(path)
    with pytest.raises(InputError, match="unknown system"):
        config_from_dict({"system": "magic"})


def test_types_are_checked():
    with pytest.raises(InputError, match="training.epochs"):
        config_from_dict({"training": {"epochs": "ten"}})
    with pytest.raises(InputError, match="data.invert_data"):
        config_from_dict({"data": {"invert_data": "yes"}})
    config = config_from_dict({"training": {"lr": 1}, "data": {"box": None}})
    assert config.training.lr == 1.0 and isinstance(config.training.lr, float)


def test_overrides_and_differences():
    base = RunConfig()
    changed = with_overrides(base, {"training.epochs": 40, "model.width": 1.0, "data.box": None})
    assert changed.training.epochs == 40 and changed.model.width == 1.0
    assert base.training.epochs == 20
    assert config_differences(base, changed) == ["model.width"]
    assert config_differences(base, changed, ignore=()) == ["model.width", "training.epochs"]
    with pytest.raises(InputError, match="unknown setting"):
        with_overrides(base, {"training.nope": 1})


def test_set_parses_each_value_to_its_field_type():
    base = RunConfig()
    assert parse_setting(base, "training.lr=3e-4") == ("training.lr", 3e-4)
    assert parse_setting(base, "training.epochs=7") == ("training.epochs", 7)
    assert parse_setting(base, "data.invert_data=true") == ("data.invert_data", True)
    assert parse_setting(base, "data.box=none") == ("data.box", None)  # int | None
    assert parse_setting(base, "data.box=64") == ("data.box", 64)
    assert parse_setting(base, "model.hidden=128,64") == ("model.hidden", [128, 64])
    assert parse_setting(base, "model.hidden=[32]") == ("model.hidden", [32])
    assert parse_setting(base, "data.rotation_center=1,2,3") == ("data.rotation_center", "1,2,3")
    assert parse_setting(base, "deformation.cutoff=12") == ("deformation.cutoff", 12.0)
    segments = RunConfig(system="segments")
    assert parse_setting(segments, "deformation.segments=4") == ("deformation.segments", 4)
    changed = with_settings(base, ["data.box=64", "training.epochs=3", "data.box=none"])
    assert changed.data.box is None and changed.training.epochs == 3  # the last one wins
    assert isinstance(changed.deformation, NormalModeSettings)
    assert base.training.epochs == 20


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("training.lr=fast", r"--set training.lr=fast: 'fast' is not a number"),
        ("training.epochs=2.5", r"training.epochs=2.5: '2.5' is not an integer"),
        ("data.invert_data=1", r"'1' is not true/false"),
        ("model.hidden=64,x", r"model.hidden\[1\]: 'x' is not an integer"),
        ("training.speed=2", r"unknown setting training.speed \(expected one of batch_size"),
        ("optimizer.lr=2", r"unknown section optimizer \(expected one of data, deformation"),
        ("deformation.segments=4", r"unknown setting deformation.segments"),  # nma has none
        ("data.box.size=4", r"unknown section data.box \(not a section\)"),
        ("reference=x.pdb", r"expected SECTION.KEY=VALUE"),
        ("training.lr", r"expected SECTION.KEY=VALUE"),
    ],
)
def test_set_rejects_unknown_settings_and_bad_values_in_one_line(assignment, message):
    with pytest.raises(InputError, match=message) as error:
        parse_setting(RunConfig(), assignment)
    assert "\n" not in str(error.value)
