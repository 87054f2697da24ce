"""Training: data, model and training loop (PyTorch). Imports neither export nor serve."""
