"""The paper's experiments (and the synthetic demo) as :class:`Experiment` definitions."""
