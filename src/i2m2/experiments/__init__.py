"""The built-in experiments, one file each; every module here is discovered by :mod:`i2m2.catalog`."""
