"""Explain: Grad-CAM and its lung share, generated-image quality, memorisation, the report."""
