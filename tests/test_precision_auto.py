"""`precision: auto`: bfloat16 only where the device computes it natively and the precision
experiment showed it keeps that part's results; the CLI resolves it once, so records say what ran."""

import argparse
import json
from pathlib import Path

import pytest

from keras_cxr import precision
from keras_cxr.config import load_preset
from keras_cxr.errors import KerasCXRError

SUMMARY = Path(__file__).resolve().parents[1] / "experiments" / "results" / "precision" / "summary.json"


@pytest.fixture
def device(monkeypatch):
    """Sets what the device computes natively and what the experiment found, for one test."""

    def set_(native, keeps):
        monkeypatch.setattr(precision, "native_bfloat16", lambda: native)
        monkeypatch.setattr(precision, "BFLOAT16_KEEPS_RESULTS", {"classifier": keeps[0], "gan": keeps[1]})

    return set_


@pytest.mark.parametrize("native, keeps, expected", [
    ("amx_bf16", (True, True), ("mixed_bfloat16", "mixed_bfloat16")),
    ("amx_bf16", (True, False), ("mixed_bfloat16", "float32")),
    (None, (True, True), ("float32", "float32")),  # emulated bfloat16 is slower: never chosen
    ("compute capability 8.0", (False, False), ("float32", "float32")),
])
def test_auto_takes_bfloat16_only_where_native_and_measured(device, native, keeps, expected):
    device(native, keeps)
    assert (precision.resolve("auto", "classifier"), precision.resolve("auto", "gan")) == expected
    config = precision.resolve_config(load_preset("tiny", ["classifier.precision=auto", "gan.precision=auto"]))
    assert (config.classifier.precision, config.gan.precision) == expected


def test_explicit_settings_pass_through_and_policies_refuse_auto(device):
    device("amx_bf16", (True, True))
    for p in precision.PRECISIONS:
        assert precision.resolve(p, "gan") == p
    with pytest.raises(KerasCXRError, match=r"resolve.*Received: precision='auto'"):
        with precision.dtype_policy("auto"):
            pass


def test_decision_is_the_experiments(tmp_path):
    """The constant `auto` trusts is what experiments/results/precision/summary.json decided."""
    decision = json.loads(SUMMARY.read_text())["decision"]
    assert decision == precision.BFLOAT16_KEEPS_RESULTS


def test_cli_records_what_auto_resolved_to(device, capsys):
    from keras_cxr.pipeline.cli import _config

    device("amx_bf16", (False, True))
    args = argparse.Namespace(preset="tiny", set=["gan.precision=auto", "classifier.precision=auto"])
    config = _config(args)
    assert (config.classifier.precision, config.gan.precision) == ("float32", "mixed_bfloat16")
    assert "precision: auto -> classifier float32, gan mixed_bfloat16" in capsys.readouterr().out


def test_extractor_is_float32_whatever_the_classifier_precision():
    """The quality instrument must not move with the classifier's precision."""
    from keras_cxr.pipeline.extractor import instrument_config, recipe

    bf16 = load_preset("tiny", ["classifier.precision=mixed_bfloat16"])
    assert instrument_config(bf16).classifier.precision == "float32"
    assert recipe(bf16) == recipe(load_preset("tiny"))

