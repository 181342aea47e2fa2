"""Evaluate: the numbers, without files: generated-image quality (Frechet, KID, PRDC, label
fidelity), the paired statistics of the call rule, and the threshold controls."""
