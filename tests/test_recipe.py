"""Issue 23's conditional recipe as a method family: `cdcgan_plus_aNNN` rows beside the faithful
`cdcgan_aNNN`, trained with `keras_cxr.gan.settings.RECIPE` over the preset's gan settings."""

import dataclasses
import json

import pytest

from keras_cxr.config import load_preset
from keras_cxr.errors import KerasCXRError
from keras_cxr.gan.record import GeneratorRecord
from keras_cxr.gan.settings import RECIPE
from keras_cxr.methods import GeneratorSpec, get_method, method_names
from keras_cxr.pipeline.cli import main


def test_the_recipe_rows_are_named_known_and_not_among_the_papers():
    assert all("plus" not in name for name in method_names())
    assert [n for n in method_names(extra=True) if "plus" in n] == ["cdcgan_plus_a025", "cdcgan_plus_a050",
                                                                   "cdcgan_plus_a075"]
    spec = get_method("cdcgan_plus_a050").generator
    assert spec == GeneratorSpec("cdcgan", 0.5, recipe=True) and spec.conditional
    assert spec.for_seed(2, per_seed=True).name == "cdcgan_plus_a050_g2"
    assert get_method("cdcgan_plus_a030", (0.3,)).generator.alpha == 0.3  # the rows follow gan.alphas
    with pytest.raises(KerasCXRError, match="the conditional recipe is a cDCGAN's. Received: model='dcgan'"):
        GeneratorSpec("dcgan", recipe=True)


def test_the_recipe_changes_only_its_settings_and_only_for_its_generators():
    config = load_preset("quick")
    plus = config.for_generator(gan_seed=1, recipe=True)
    assert {k: getattr(plus.gan, k) for k in RECIPE} == RECIPE
    changed = {f.name for f in dataclasses.fields(config.gan) if getattr(plus.gan, f.name) != getattr(config.gan, f.name)}
    assert changed <= {*RECIPE, "seed"} and plus.gan.seed == 1
    assert config.for_generator(gan_seed=1) == config.with_gan_seed(1)  # the faithful rows: untouched
    assert plus.classifier == config.classifier and plus.data == config.data


def test_the_record_says_it_is_the_recipe():
    record = GeneratorRecord(kind="cdcgan", latent_dim=8, pixel_range="0_1", image_size=16, alpha=0.5, recipe=True)
    assert GeneratorRecord.from_json(record.to_json()).recipe is True
    assert "recipe" not in dataclasses.replace(record, recipe=False).to_json()  # faithful files unchanged


@pytest.mark.slow
def test_a_recipe_row_trains_its_own_generator_and_the_report_finds_it(tmp_path, capsys):
    out = tmp_path / "matrix"
    assert main(["evaluate-all", "--preset", "tiny", "--out", str(out), "--methods", "cdcgan_plus_a050",
                 "--seeds", "0", "--quiet"]) == 0
    cell = json.loads((out / "cells" / "cdcgan_plus_a050__seed0.json").read_text())
    assert cell["generator"]["path"].endswith("models/cdcgan_plus_a050/1") and cell["generator"]["recipe"] is True
    run = json.loads((out / "cdcgan_plus_a050" / "config.json").read_text())
    assert {k: run["preset"]["gan"][k] for k in RECIPE} == RECIPE
    assert GeneratorRecord.read(out / "models" / "cdcgan_plus_a050" / "1").name == "cdcgan_plus_a050"
    from keras_cxr.pipeline.report import _exported_generators

    assert [s.name for s in _exported_generators(out)] == ["cdcgan_plus_a050"]
    # `train-gan --recipe` names the same run: finished, it is reused, not retrained.
    capsys.readouterr()
    assert main(["train-gan", "--model", "cdcgan", "--recipe", "--preset", "tiny", "--out", str(out),
                 "--manifest", str(out / "data" / "manifest.csv"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["run_dir"].endswith("cdcgan_plus_a050")
    assert "training epochs" not in printed
    # A DCGAN has no recipe.
    assert main(["train-gan", "--model", "dcgan", "--recipe", "--preset", "tiny", "--out", str(tmp_path / "d")]) == 2
    assert "error: the conditional recipe is a cDCGAN's. Received: model='dcgan', recipe=True" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_the_registry_recipe_is_the_one_the_screen_chose():
    """`RECIPE` is a copy (the wheel ships without experiments/); the screen's summary owns the choice."""
    from tests.conftest import REPO

    screen = json.loads((REPO / "experiments" / "results" / "cgan" / "summary.json").read_text())["screen"]
    assert screen["complete"]
    chosen = dict(kv.removeprefix("gan.").split("=", 1) for kv in screen["settings"])
    assert {k: str(v) for k, v in RECIPE.items() if k != "ema"} == chosen
    assert RECIPE["ema"] == (0.0 if screen["read"] == "raw" else 0.999)  # the read: raw G, or run.py's average
