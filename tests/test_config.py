import pytest

from keras_cxr.config import load_preset
from keras_cxr.errors import KerasCXRError


def test_paper_preset_is_the_paper():
    c = load_preset("paper")
    assert c.image_size == 128
    assert (c.gan.batch_size, c.gan.learning_rate, c.gan.beta_1, c.gan.beta_2) == (128, 2e-3, 0.5, 0.999)
    assert (c.gan.dcgan_epochs, c.gan.cdcgan_epochs, c.gan.filters, c.gan.latent_dim) == (160, 48, 128, 100)
    assert c.data.minority_fraction == 0.25


@pytest.mark.parametrize("name, size", [("quick", 64), ("tiny", 32), ("demo", 32)])
def test_smaller_presets(name, size):
    assert load_preset(name).image_size == size


def test_overrides():
    c = load_preset("tiny", ["gan.batch_size=16", "image_size=64", "gan.alphas=[0.1, 0.9]"])
    assert (c.gan.batch_size, c.image_size, c.gan.alphas) == (16, 64, (0.1, 0.9))


@pytest.mark.parametrize("override, message", [
    ("gan.batchsize=4", r"unknown key `batchsize`"),
    ("gan.batch_size=3", r"`batch_size` must be an even number >= 2. Received: batch_size=3"),
    ("gan.batch_size=abc", r"`batch_size` in .* must be int"),
    ("image_size=20", r"`image_size` must be >= 28. Received: image_size=20"),
    ("gan.discriminator=resnet", r"`discriminator` must be one of paper, balde. Received: discriminator='resnet'"),
    ("gan.alphas=[1.5]", r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"),
    ("data.minority_fraction=0.9", r"`minority_fraction` must be in \(0, 0.5\]"),
    ("nonsense", r"--set expects key=value"),
    ("gan.max_loss=0", r"`max_loss` must be > 0. Received: max_loss=0.0"),
    ("gan.precision=float16", r"`gan.precision` must be one of float32, mixed_float16, mixed_bfloat16, auto. Received: 'float16'"),
    ("classifier.precision=fp32", r"`classifier.precision` must be one of .* Received: 'fp32'"),
])
def test_bad_overrides(override, message):
    from keras_cxr.pipeline.checks import check

    with pytest.raises(KerasCXRError, match=message):  # parsed by config, checked by each setting's owner
        check(load_preset("tiny", [override]))


def test_unknown_preset():
    with pytest.raises(KerasCXRError, match=r"unknown preset 'huge'.*known: demo, paper, quick, tiny"):
        load_preset("huge")


def test_smote_settings_have_their_own_section_and_the_old_key_still_reads(capsys):
    from keras_cxr.pipeline.cells import _as_today

    assert load_preset("tiny").resample.smote_k_neighbors == 5
    assert load_preset("tiny", ["resample.smote_k_neighbors=3"]).resample.smote_k_neighbors == 3
    old = load_preset("tiny", ["classifier.smote_k_neighbors=4"])
    assert old.resample.smote_k_neighbors == 4 and "smote_k_neighbors" not in old.to_dict()["classifier"]
    assert "note: `classifier.smote_k_neighbors` is now `resample.smote_k_neighbors`" in capsys.readouterr().err
    # A cell recorded before the section existed has the same identity as today's.
    recorded = {"classifier": {"epochs": 1, "smote_k_neighbors": 5}}
    assert _as_today(recorded) == {"classifier": {"epochs": 1}, "resample": {"smote_k_neighbors": 5}}
