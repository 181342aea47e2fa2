"""The best-epoch rule of `gan.export: best`."""

from keras_cxr.gan.selection import best_row, relative_fidelity


def _row(epoch, fd="", f0="", f1=""):
    return {"epoch": str(epoch), "fd": str(fd), "fidelity_label0": str(f0), "fidelity_label1": str(f1)}


def test_dcgan_best_is_the_lowest_frechet_and_ties_keep_the_earlier_epoch():
    rows = [_row(1, 9.0), _row(2), _row(3, 4.0), _row(4, 4.0), _row(5, 6.0)]
    assert best_row(rows, conditional=False, min_fidelity=0.9)["epoch"] == "3"
    assert best_row([_row(1), _row(2)], conditional=False, min_fidelity=0.9) is None


def test_cdcgan_needs_label_fidelity_before_frechet_counts():
    rows = [_row(5, 2.0, 0.95, 0.60), _row(10, 5.0, 0.92, 0.91), _row(15, 4.0, 0.99, 0.90), _row(20, 1.0, 0.5, 0.99)]
    assert best_row(rows, conditional=True, min_fidelity=0.9)["epoch"] == "15"


def test_cdcgan_without_an_eligible_epoch_takes_the_best_worse_label():
    rows = [_row(5, 2.0, 0.95, 0.60), _row(10, 9.0, 0.70, 0.80), _row(15, 1.0, 0.99, 0.10)]
    assert best_row(rows, conditional=True, min_fidelity=0.9)["epoch"] == "10"


def test_a_non_finite_frechet_is_never_best():
    rows = [_row(1, "nan"), _row(2, 50.0)]
    assert best_row(rows, conditional=False, min_fidelity=0.9)["epoch"] == "2"


def test_cdcgan_gate_is_read_relative_to_real_images_fidelity():
    # The extractor calls 70% of real normal images normal: generated ones at 0.65 pass a 0.9
    # gate relative to that (0.93), and the fallback ranks the worse label's relative fidelity.
    rows = [_row(5, 2.0, 0.65, 0.95), _row(10, 5.0, 0.95, 0.95), _row(15, 1.0, 0.60, 1.0)]
    assert best_row(rows, conditional=True, min_fidelity=0.9)["epoch"] == "10"
    assert best_row(rows, conditional=True, min_fidelity=0.9, real_fidelity=(0.7, 1.0))["epoch"] == "5"
    assert relative_fidelity(rows[0], (0.7, 1.0)) == (0.65 / 0.7, 0.95)
    # Worse label: 0.50 vs 0.30 absolute; relative to (0.4, 1.0): 0.60 vs 0.75.
    fallback = [_row(5, 2.0, 0.50, 0.60), _row(10, 5.0, 0.30, 0.80)]
    assert best_row(fallback, conditional=True, min_fidelity=0.9)["epoch"] == "5"
    assert best_row(fallback, conditional=True, min_fidelity=0.9, real_fidelity=(0.4, 1.0))["epoch"] == "10"
