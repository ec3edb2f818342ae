"""The paper's model configurations as small builder functions (hyperparameters live here, not in classes)."""
