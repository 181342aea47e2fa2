"""`keras_cxr.methods`: the one place that knows every method; the preset's `gan.alphas` are the
cDCGAN rows of the matrix, the generators `make train-gan` trains and the report's."""

import subprocess

import numpy as np
import pytest

from keras_cxr.config import load_preset
from keras_cxr.errors import KerasCXRError
from keras_cxr.methods import CLASSIC, GeneratorSpec, get_method, matrix_methods, method_names, registry
from keras_cxr.pipeline.checks import check
from keras_cxr.pipeline.matrix import generators_of
from tests.conftest import REPO

PAPER_ROWS = ("baseline", "class_weights", "undersample", "oversample", "smote", "borderline_smote", "adasyn",
              "dcgan", "cdcgan_a025", "cdcgan_a050", "cdcgan_a075")


def test_default_rows_are_the_papers_eleven():
    assert method_names() == PAPER_ROWS
    assert matrix_methods(load_preset("paper")) == PAPER_ROWS  # `classifier.methods` empty: every default row
    assert [m.name for m in registry().values() if m.gradcam] == ["baseline", "dcgan", "cdcgan_a050"]  # paper 5.3


def test_alphas_setting_is_the_source_of_the_cdcgan_rows():
    config = load_preset("tiny", ["gan.alphas=[0.3, 0.9]"])
    assert matrix_methods(config)[-3:] == ("dcgan", "cdcgan_a030", "cdcgan_a090")
    assert [(s.kind, s.alpha) for s in generators_of(config, matrix_methods(config))] == \
        [("dcgan", None), ("cdcgan", 0.3), ("cdcgan", 0.9)]
    assert get_method("cdcgan_a030", config.gan.alphas).generator == GeneratorSpec("cdcgan", 0.3)
    with pytest.raises(KerasCXRError, match=r"unknown method\(s\) \['cdcgan_a025'\]"):
        check(load_preset("tiny", ["gan.alphas=[0.3]", "classifier.methods=[cdcgan_a025]"]))
    with pytest.raises(KerasCXRError, match="name the same cDCGAN twice"):
        check(load_preset("tiny", ["gan.alphas=[0.5, 0.501]"]))


def test_generator_spec_names_and_checks():
    assert GeneratorSpec("dcgan", 0.7).name == "dcgan" and GeneratorSpec("dcgan", 0.7).alpha is None
    assert GeneratorSpec("cdcgan", 1).name == "cdcgan_a100" and GeneratorSpec("cdcgan", 1).alpha == 1.0
    with pytest.raises(KerasCXRError, match=r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"):
        GeneratorSpec("cdcgan", 1.5)
    with pytest.raises(KerasCXRError, match="`model` must be one of dcgan, cdcgan. Received: model='wgan'"):
        GeneratorSpec("wgan")


def test_every_classic_method_builds_its_resampler():
    config = load_preset("tiny")
    labels = np.array([0] * 30 + [1] * 10)
    images = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    for method in CLASSIC:
        rs = method.resampler(0, config).fit_resample(images, labels)
        counts = rs.class_counts(labels)
        assert sum(counts) > 0, method.name
        if method.name in ("baseline", "class_weights"):
            assert counts == [30, 10]
        elif method.name != "adasyn":
            assert counts[0] == counts[1], (method.name, counts)


def test_gan_method_needs_its_exported_generator(tmp_path):
    with pytest.raises(KerasCXRError, match=r"method 'cdcgan_a050': no generator at .*cdcgan_a050/1"):
        get_method("cdcgan_a050").resampler(0, load_preset("tiny"), tmp_path)


def test_make_train_gan_reads_the_registry_not_a_list_of_alphas():
    dry = subprocess.run(["make", "-n", "train-gan", "PRESET=tiny"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert "evaluate-all --only-generators --preset tiny" in dry and "--alpha" not in dry
