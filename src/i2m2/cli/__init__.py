"""The ``i2m2`` command. Every command's options are parsed by jsonargparse (typed, YAML configs, one-line
errors); ``fit/validate/test/predict-batches`` are Lightning's own CLI over any experiment."""

from i2m2.cli.main import main

__all__ = ["main"]
