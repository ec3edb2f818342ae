"""Model code: plain torch.nn, no training framework."""
