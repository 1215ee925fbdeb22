"""The nma system's defaults: a rotation correction on the encoder and a thermal prior on
the amplitudes (docs/results.md, section nma_hinge); zero for either gives seed 000's."""

import math

import numpy as np
import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.structure.io import read_model
from cryomotion.systems.nma import NormalModeSettings
from cryomotion.systems.registry import get_system

SYSTEM = get_system("nma")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, adk_open_path):
    folder = tmp_path_factory.mktemp("nma")
    SYSTEM.prepare(read_model(adk_open_path), 4, NormalModeSettings(), folder)
    return folder


def test_default_encoder_corrects_the_rotation():
    assert SYSTEM.rotation_correction(NormalModeSettings()) == pytest.approx(math.radians(20))
    assert SYSTEM.rotation_correction(NormalModeSettings(rotation_unit=0)) == 0


def test_default_deformation_has_the_thermal_prior(run_dir, adk_open_path):
    reference = read_model(adk_open_path)
    deformation = SYSTEM.build_deformation(reference, 4, NormalModeSettings(), run_dir)
    stiffness = deformation.stiffness.numpy()
    assert stiffness[0] == pytest.approx(1.0)
    assert np.all(np.diff(stiffness) >= 0)  # the modes' eigenvalues, ascending
    term = deformation(torch.ones(2, 4)).regularization["mode_prior"]
    assert float(term) > 0
    seed000 = NormalModeSettings(rotation_unit=0, prior_weight=0)
    plain = SYSTEM.build_deformation(reference, 4, seed000, run_dir)
    assert plain(torch.ones(2, 4)).regularization == {}


def test_negative_settings_are_refused(run_dir, adk_open_path):
    reference = read_model(adk_open_path)
    with pytest.raises(InputError, match="expected values >= 0"):
        SYSTEM.build_deformation(reference, 4, NormalModeSettings(prior_weight=-1), run_dir)
