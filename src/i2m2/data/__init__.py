"""Datasets: every example is ``(dict[modality, Tensor], label)``."""
