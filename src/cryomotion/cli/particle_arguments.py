"""The particle-file flags every verb that reads particles shares, and reading them.

``--poses``/``--ctf`` (cryoDRGN pickles with a stack), ``--pixel-size``, the optics
overrides (``--amplitude-contrast``, ``--voltage``, ``--spherical-aberration``) and
``--dataset-dir``, each with the same meaning and checks in every verb.
"""

from __future__ import annotations

import argparse

from cryomotion.cli.flag_types import real
from cryomotion.data.particles import ParticleTable
from cryomotion.data.readers import read_particles


def add_particle_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--poses", help="cryoDRGN poses.pkl (with a stack as PARTICLES)")
    parser.add_argument("--ctf", help="cryoDRGN ctf.pkl (with a stack as PARTICLES)")
    parser.add_argument(
        "--pixel-size", type=real(above=0), help="pixel size (Å) if the file has none"
    )
    parser.add_argument(
        "--amplitude-contrast",
        type=real(minimum=0, maximum=1),
        help="amplitude contrast (fraction); default the file's, else 0 as RELION",
    )
    parser.add_argument("--voltage", type=real(above=0), help="voltage (kV) if the file has none")
    parser.add_argument("--spherical-aberration", type=real(), help="Cs (mm) if the file has none")
    parser.add_argument("--dataset-dir", help="folder the image paths are relative to")


def read_particles_from(args: argparse.Namespace) -> ParticleTable:
    """The particles ``args.particles`` read with the flags of ``add_particle_arguments``."""
    return read_particles(
        args.particles,
        poses=args.poses,
        ctf=args.ctf,
        pixel_size=args.pixel_size,
        dataset_dir=args.dataset_dir,
        amplitude_contrast=args.amplitude_contrast,
        voltage=args.voltage,
        spherical_aberration=args.spherical_aberration,
    )
