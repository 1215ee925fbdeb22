"""Particle data: stacks, RELION/cryoSPARC/cryoDRGN metadata, pose conventions, Dataset."""

from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.particles import ParticleTable
from cryomotion.data.readers import read_particles
from cryomotion.data.stack import StackWriter
from cryomotion.data.star import write_star, write_star_subset

__all__ = [
    "ParticleDataset",
    "ParticleTable",
    "StackWriter",
    "read_particles",
    "write_star",
    "write_star_subset",
]
