"""Analyses of a finished run (``i2m2 analyze RUN_DIR``): entropy, rescue rate, groups, missing modalities."""
