"""Use a trained model: load one job of a run with its preprocessing, predict with any modality missing,
export it (ONNX, TorchScript) or serve it (LitServe). The optional dependencies load only when used."""
