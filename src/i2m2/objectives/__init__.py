"""What a method is trained and scored on: the loss, the metrics and the monitored metric.

``Objective`` (single-label classification) is the default; ``MultiTaskObjective`` scores several binary
findings per example (fastMRI), ``VQAObjective`` soft answer targets with the VQA score (VQA-VS). They sit
below ``training/`` so that an experiment can name its objective without importing the trainer.
"""

from i2m2.objectives.classification import CLASSIFICATION, Objective

__all__ = ["CLASSIFICATION", "Objective"]
