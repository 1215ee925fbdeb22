"""cryomotion: motions of macromolecules from cryo-EM particle images, as atomic models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryomotion")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
