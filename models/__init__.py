"""The SNN model zoo in PyTorch: LIF neurons, zoo builders, IR interpreter, training, datasets."""
