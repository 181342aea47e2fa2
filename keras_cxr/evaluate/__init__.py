"""Evaluate: the (method, seed) matrix, its per-cell result files, and their summary."""
