"""Contrast transfer function in RELION's sign convention."""

# Order of the per-particle CTF parameters wherever they travel as one array (N, 8):
# defocus_u (Å), defocus_v (Å), defocus_angle (degrees, from the x axis), voltage (kV),
# spherical_aberration (mm), amplitude_contrast (fraction), phase_shift (degrees),
# b_factor (Å²).
CTF_FIELDS = (
    "defocus_u",
    "defocus_v",
    "defocus_angle",
    "voltage",
    "spherical_aberration",
    "amplitude_contrast",
    "phase_shift",
    "b_factor",
)
