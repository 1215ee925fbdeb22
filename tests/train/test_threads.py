"""Threads chosen at start-up: the cores other processes leave free, or what the user says."""

import os
import subprocess
import sys

from cryomotion.train.threads import busy_cores, choose_threads, usable_cores


def test_threads_fill_the_free_cores_and_never_drop_below_one():
    assert choose_threads(2, 0.0) == 2
    assert choose_threads(2, 0.9) == 1  # one core taken by another process
    assert choose_threads(2, 3.5) == 1
    assert choose_threads(16, 4.2) == 12


def test_the_environment_variable_wins_when_it_is_a_positive_integer(caplog):
    assert choose_threads(2, 2.0, "4") == 4
    assert choose_threads(2, 0.0, "zero") == 2
    assert "expected a positive integer" in caplog.text


def test_busy_cores_is_measured_on_this_machine():
    busy = busy_cores(window=0.05)
    assert 0.0 <= busy <= (os.cpu_count() or 1) + 0.5
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_the_command_sets_the_threads():
    code = (
        "import sys; sys.argv = ['cryomotion', 'nma', '--help'];"
        "from cryomotion.cli.main import console\n"
        "try:\n    console()\nexcept SystemExit:\n    pass\n"
        "import torch; print(torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["CRYOMOTION_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    # --help runs no verb: nothing is configured (PyTorch's default: one thread per core)
    assert int(out.stdout.split()[-1]) == (os.cpu_count() or 1) or (os.cpu_count() or 1) == 1
    code = code.replace("'nma', '--help'", "'nma', 'missing.pdb', '-o', 'x.npz'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split()[-1] == "1"
