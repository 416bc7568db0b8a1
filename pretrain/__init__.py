"""Tubelet: masked-video-autoencoder pretraining from one CPU to a Ray cluster."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tubelet")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
