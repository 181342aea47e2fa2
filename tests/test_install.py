"""The package as a user installs it: a wheel (not the editable checkout) in a fresh environment,
run from a folder outside the checkout, on the bundled sample; and its console quiet by default."""

import os
import re
import subprocess
import sys
import sysconfig

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# TensorFlow C++ log lines ("I0000 00:00:... port.cc:153] oneDNN ...", "E0000 ... cuInit") and absl's preamble.
CPP_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)", re.M)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel built from the checkout, installed with --no-deps into a new virtual environment.

    The environment borrows the test interpreter's dependencies (TensorFlow and friends: no
    network at test time) through a .pth line; that folder's own .pth files, the editable
    install's among them, are not processed, so `keras_cxr` can only come from the wheel.
    """
    root = tmp_path_factory.mktemp("install")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "-w", str(root / "wheelhouse"), "-v"], capture_output=True, text=True, cwd=root)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    log = build.stdout + build.stderr
    assert not re.search(r"SetuptoolsDeprecationWarning|Package would be ignored|is not a package|"
                         r"Installing .* as data is deprecated", log), log[-3000:]
    wheel = next((root / "wheelhouse").glob("keras_cxr-*.whl"))
    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, cwd=root)
    assert install.returncode == 0, install.stderr[-3000:]
    work = root / "work"  # outside the checkout
    work.mkdir()
    return env / "bin" / "python", site, work


def _run(python, work, *args):
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    proc = subprocess.run([str(python), *args], capture_output=True, text=True, cwd=work, env=clean)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_wheel_runs_a_tiny_chain_outside_the_checkout(installed):
    python, site, work = installed
    where = _run(python, work, "-c", "import keras_cxr, keras_cxr.config as c; print(keras_cxr.__file__); "
                                     "print(sorted(p.name for p in c.PRESET_DIR.glob('*.yaml'))); "
                                     "print([c.load_preset(n).image_size for n in ('paper', 'quick', 'demo', 'tiny')])")
    assert where.splitlines()[0].startswith(str(site)), where
    assert "['demo.yaml', 'paper.yaml', 'quick.yaml', 'tiny.yaml']\n[128, 64, 32, 32]" in where
    (work / "mine.yaml").write_text("name: mine\nimage_size: 32\ngan: {filters: 8, embedding_dim: 8, batch_size: 8, "
                                    "dcgan_epochs: 1, sample_grid: 4}\nclassifier: {batch_size: 16, epochs: 1}\n")
    console = [
        _run(python, work, "-m", "keras_cxr", "data", "prepare", "--preset", "tiny", "--out", "data"),
        _run(python, work, "-m", "keras_cxr", "train-gan", "--model", "dcgan", "--preset", "tiny",
             "--manifest", "data/manifest.csv", "--out", "run", "--quiet"),
        _run(python, work, "-m", "keras_cxr", "train-classifier", "--method", "dcgan", "--preset", "mine.yaml",
             "--manifest", "data/manifest.csv", "--out", "run", "--quiet"),
        _run(python, work, "-m", "keras_cxr", "generate", "--generator", "run/models/dcgan/1", "--n", "4",
             "--out", "generated"),
    ]
    assert (work / "run" / "cells" / "dcgan__seed0.json").is_file()
    assert len(list((work / "generated").glob("*.png"))) == 4
    assert '"preset": "mine"' in (work / "run" / "cells" / "dcgan__seed0.json").read_text()  # the user's YAML
    assert "keras_cxr/data/sample" in (work / "data" / "summary.json").read_text()  # the installed sample
    for text in console:  # quiet by default: no TensorFlow C++ log lines, one device line per TF command
        assert not CPP_LOG.search(text), text[:2000]
    assert [text.count("device: ") for text in console] == [0, 1, 1, 1]


def test_verbose_lets_tensorflow_speak(installed):
    python, _, work = installed
    text = _run(python, work, "-m", "keras_cxr", "generate", "--generator", str(REPO / "experiments" / "results" /
                "quick" / "models" / "dcgan" / "1"), "--n", "1", "--out", "verbose_png", "--verbose")
    assert CPP_LOG.search(text), text[:2000]  # the check above can fail: these lines exist
