"""experiments/cgan/table.py `screen`: the pre-registered choice rule of issue 23's screen
(experiments/results/cgan/choice_rule.md) applied by code, not by eye."""

import runpy

import pytest

from tests.conftest import REPO

TABLE = runpy.run_path(str(REPO / "experiments" / "cgan" / "table.py"))
SETTINGS = {"base": [], "balanced": ["gan.real_sampling=balanced"], "ttur": ["gan.d_learning_rate=4e-4"],
            "resize": ["gan.upsample=resize"], "proj_sn": ["p=1", "s=1"], "transition": ["t=1"]}


def _rows(ratios: dict, extractor: str = "aaaa") -> list[dict]:
    """{variant: [(raw, ema) per GAN seed]} as table.py's run rows, all tracked under one extractor."""
    return [{"variant": v, "gan_seed": k, "minority_pct": 25, "extractor": extractor,
             "tracked": {"raw": {"frechet_ratio": raw}, "ema": {"frechet_ratio": ema}}}
            for v, seeds in ratios.items() for k, (raw, ema) in enumerate(seeds)]


NONE = {v: [(10.0, 10.0), (12.0, 12.0)] for v in SETTINGS}


def test_the_worse_seed_must_beat_bases_by_the_factor_and_the_better_read_wins():
    ratios = {**NONE, "balanced": [(1.0, 5.0), (8.0, 5.0)],  # raw worse 8.0: 12 / 8 = 1.5, promising
              "resize": [(7.0, 2.0), (13.0, 7.0)]}  # raw worse 13: not; ema worse 7: 12 / 7 >= 1.5
    result = TABLE["screen"](_rows(ratios), SETTINGS)
    assert result["promising"] == {"raw": ["balanced"], "ema": ["balanced", "resize"]}
    # The read whose best promising worse seed is lower: ema (5.0 < 8.0), with all its promising settings.
    assert (result["verdict"], result["read"], result["variants"]) == ("promising", "ema", ["balanced", "resize"])
    assert result["settings"] == ["gan.real_sampling=balanced", "gan.upsample=resize"]
    # One good seed is not enough: the worse seed decides.
    ratios["balanced"], ratios["resize"] = [(0.5, 0.5), (11.0, 11.5)], [(0.5, 0.5), (12.5, 12.5)]
    result = TABLE["screen"](_rows(ratios), SETTINGS)
    assert result["promising"] == {"raw": [], "ema": []}
    # Then the lowest worse seed alone, as a default, not a finding.
    assert (result["verdict"], result["variants"], result["read"]) == ("cannot tell", ["balanced"], "raw")


def test_bases_plain_average_is_left_out_and_a_missing_variant_waits():
    ratios = {**NONE, "base": [(12.0, 40.0), (12.0, 12.0)], "ttur": [(11.0, 7.5), (11.0, 7.5)]}
    result = TABLE["screen"](_rows(ratios), SETTINGS)  # m25 base seed 0's average is the plain one
    assert result["worse_seed"]["base+ema"] == 12.0 and result["promising"]["ema"] == ["ttur"]
    assert TABLE["screen"](_rows({**NONE, "resize": [(1.0, 1.0)]}), SETTINGS) == \
        {"complete": False, "missing": ["resize"]}


def test_runs_under_two_extractors_are_not_screened_and_a_partial_run_is_a_bound():
    rows = _rows(NONE)
    rows[-1]["extractor"] = "bbbb"  # one run tracked under a retrained extractor: another yardstick
    assert TABLE["screen"](rows, SETTINGS) == {"complete": False, "missing": [], "mixed_extractors": ["aaaa", "bbbb"]}
    rows = _rows(NONE)
    rows[6]["partial"] = {"last_epoch": 48, "why": "machine shut down"}  # resize seed 0
    result = TABLE["screen"](rows, SETTINGS)
    assert result["bounds"] == ["resize"] and result["extractor"] == "aaaa"
    assert any(line.startswith("| resize | <= ") for line in TABLE["screen_markdown"](result))


def _measured_rows(arms: dict, instrument: str = "aaaa") -> list[dict]:
    """{variant: [per-extractor raw-G ratios per GAN seed]} as run rows measured under one instrument."""
    return [{"variant": v, "gan_seed": k, "extractor": instrument,
             "measured": {"extractor": instrument, "raw": {"frechet_ratio_per_extractor": ratios, "fidelity_rel": 1.0,
                                                           "near_copies": 0}}}
            for v, seeds in arms.items() for k, ratios in enumerate(seeds)]


@pytest.mark.parametrize("arm", ["translation", "long", "every_epoch"])
def test_each_remedy_is_read_by_its_rule(arm):
    """translation_rule.md and long_rule.md: worse common seed of the mean measured raw-G ratio, 1.5x to be
    promising, one instrument, targets per seed under every extractor; one remedy's runs never read as another's."""
    other = next(a for a in TABLE["REMEDIES"] if a != arm)
    recipe = [[5.0, 2.5, 6.5], [7.5, 6.0, 7.5], [10.0, 6.0, 12.0]]  # worse common seed (0, 1): 7.0
    rows = _measured_rows({"recipe": recipe, arm: [[1.5, 1.9, 1.0], [4.0, 5.0, 6.0]],  # worse: 5.0
                           other: [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]})
    result = TABLE["next_remedy"](rows, arm)
    assert result["seeds"] == [0, 1] and result["worse_seed"] == {"recipe": 7.0, arm: 5.0}
    assert result["worse_seed_unpicked"] == {"recipe": 6.75, arm: 5.5}  # extractor seeds 1 and 2 only
    assert result["verdict"] == "cannot tell" and result["targets"][0] == {"frechet": True, "fidelity": True,
                                                                           "near_copies": True}
    assert not all(result["targets"][1].values())
    rows = _measured_rows({"recipe": recipe, arm: [[1.5, 1.9, 1.0], [4.0, 5.0, 5.0]]})  # 4.67: 1.5x
    assert TABLE["next_remedy"](rows, arm)["verdict"] == "promising"
    rows[-1]["measured"]["extractor"] = "bbbb"  # measured under a retrained extractor: not one yardstick
    assert TABLE["next_remedy"](rows, arm)["reason"].startswith("not comparable")
    assert not TABLE["next_remedy"](_measured_rows({"recipe": recipe, arm: [[1.0, 1.0, 1.0]]}), arm)["complete"]
    assert not TABLE["next_remedy"](_measured_rows({"recipe": recipe, other: [[1.0] * 3] * 2}), arm)["complete"]


def test_reference_generators_are_read_only_on_the_same_split_and_from_their_cache(tmp_path, monkeypatch):
    """The answer matrix's generators are measured under a split's extractors only when the answer's
    manifest is that split's, byte for byte; a cached measurement of the same generator bytes is
    read back without building the split (no extractor, no generator run); the exported epoch's grid
    is copied beside the table."""
    import json

    from keras_cxr.identity import folder_sha256

    references = TABLE["references"]
    monkeypatch.setitem(references.__globals__, "ANSWER", tmp_path / "answer")
    split, answer = tmp_path / "m25", tmp_path / "answer" / "minority25"
    generator = answer / "models" / "dcgan_g0" / "1"
    generator.mkdir(parents=True)
    (generator / "saved_model.pb").write_bytes(b"not a real model")
    (generator / "assets.extra").mkdir()
    (generator / "assets.extra" / "keras_cxr.json").write_text(json.dumps({"export_epoch": 250}))
    (answer / "dcgan_g0" / "samples").mkdir(parents=True)
    (answer / "dcgan_g0" / "samples" / "epoch-0250.png").write_bytes(b"png")  # the exported epoch's grid
    (answer / "dcgan_g0" / "samples" / "epoch-0249.png").write_bytes(b"other")
    for folder, text in ((split, "a,b\n"), (answer, "a,c\n")):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "manifest.csv").write_text(text)
    assert references(split) == []  # another split: nothing measured, nothing built
    (answer / "data" / "manifest.csv").write_text("a,b\n")
    (split / "reference").mkdir()
    cached = {"generator": "dcgan_g0", "generator_sha256": folder_sha256(generator), "extractor": "aaaa",
              "export_epoch": 250, "frechet_ratio_per_extractor": [1.0, 2.0, 3.0], "fidelity_rel": 1.0, "near_copies": 0}
    (split / "reference" / "dcgan_g0.json").write_text(json.dumps(cached))
    assert references(split) == [cached]
    assert [p.name for p in (split / "grids").iterdir()] == ["reference_dcgan_g0.png"]
    assert (split / "grids" / "reference_dcgan_g0.png").read_bytes() == b"png"
    md = "\n".join(TABLE["references_markdown"]([cached], split))
    assert "| dcgan_g0 | aaaa | 250 | 1.00 / 2.00 / 3.00 | 2.00 | 1.00 | 0 |" in md
    assert "![reference_dcgan_g0](grids/reference_dcgan_g0.png)" in md
