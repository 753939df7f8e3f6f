"""The SNN model zoo in PyTorch: LIF neurons, zoo builders, IR interpreter, training, batching."""

from uticompile.threads import prefer_passive_omp_wait

# Before any module of this package imports torch (see uticompile.threads).
prefer_passive_omp_wait()
