"""The bundled sample: a few hundred real Kermany images shipped inside the package (CC BY 4.0)."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"


def default_data_path(path=None) -> Path:
    """The given data path, or the bundled sample when none is given."""
    return Path(path) if path else SAMPLE_DIR
