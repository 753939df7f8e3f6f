"""Compiler passes on an imported SNN: PE grouping, workload balancing, pruning, utilization."""
