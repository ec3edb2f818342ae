"""Training with Lightning: the LightningModule, DataModule, two-stage recipe and experiment runner."""
