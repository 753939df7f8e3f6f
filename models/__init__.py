"""The SNN model zoo in PyTorch: LIF neurons, zoo builders, the IR interpreter, training, datasets."""
