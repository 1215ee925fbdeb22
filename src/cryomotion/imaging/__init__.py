"""imaging layer: projection of atoms, CTF, Fourier shifts and cropping, noise, the renderer.

Modules: ``fourier`` (DFT grids, phase ramps, ``fourier_shift``, ``fourier_crop``), ``ctf``
(RELION-convention CTF), ``projection`` (per-type Fourier-space projection of atoms),
``noise`` (white noise at an SNR), ``renderer`` (``AtomRenderer``: pose, projection, shift,
CTF).
"""
