"""`classifier.generator_per_seed`: a GAN cell of seed s streams from a generator trained with
gan.seed = s, so every paired difference includes GAN training variance (issue 24)."""

import json

import pytest

from keras_cxr.config import load_preset
from keras_cxr.methods import GeneratorSpec, get_method
from keras_cxr.pipeline.cli import main

pytestmark = pytest.mark.slow


def test_names_and_the_default_are_unchanged():
    spec = GeneratorSpec("cdcgan", 0.5)
    assert spec.name == "cdcgan_a050" and spec.for_seed(3, per_seed=False) is spec
    assert spec.for_seed(3, per_seed=True).name == "cdcgan_a050_g3"
    assert get_method("dcgan").generator_for(1, load_preset("tiny")).name == "dcgan"
    assert get_method("dcgan").generator_for(1, load_preset("quick")).name == "dcgan_g1"  # quick: on
    assert load_preset("paper").classifier.generator_per_seed is False


def test_each_seed_streams_from_its_own_generator(tmp_path, capsys):
    out = tmp_path / "matrix"
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(out), "--methods", "dcgan", "--seeds", "0", "1",
                 "--set", "classifier.generator_per_seed=true", "--quiet"]) == 0
    cells = {s: json.loads((out / "cells" / f"dcgan__seed{s}.json").read_text()) for s in (0, 1)}
    for s, cell in cells.items():
        g = cell["generator"]
        assert g["path"].endswith(f"models/dcgan_g{s}/1") and g["gan_seed"] == s
        run = json.loads((out / f"dcgan_g{s}" / "config.json").read_text())
        assert run["preset"]["gan"]["seed"] == s
    assert cells[0]["generator"]["sha256"] != cells[1]["generator"]["sha256"]
    # The report finds both generators by their metadata.
    from keras_cxr.pipeline.report import _exported_generators

    assert [s.name for s in _exported_generators(out)] == ["dcgan_g0", "dcgan_g1"]
