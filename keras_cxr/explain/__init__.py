"""Explain: Grad-CAM and its lung share, memorisation (nearest training images), and figures."""
