"""DICOM files written by pydicom from real Kermany images read back to the PNG path's pixels."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_cxr.data import SAMPLE_DIR, scan_dataset
from keras_cxr.data.dicom import window
from keras_cxr.data.images import ImageError, decode, read_grayscale

pydicom = pytest.importorskip("pydicom", reason="pydicom is the optional dicom extra (pip install 'keras_cxr[dicom]')")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

PNGS = sorted((SAMPLE_DIR / "train" / "PNEUMONIA").glob("*.png"))[:2] + sorted((SAMPLE_DIR / "train" / "NORMAL").glob("*.png"))[:2]


def write_dicom(path: Path, stored: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 12, **attrs) -> Path:
    """A one-frame uncompressed DICOM (Computed Radiography) with `stored` as its pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CR", "anon"
    ds.Rows, ds.Columns = stored.shape[:2]
    ds.SamplesPerPixel = 1 if stored.ndim == 2 else stored.shape[-1]
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(stored.astype(np.uint8 if bits <= 8 else np.uint16)).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def png(path: Path) -> np.ndarray:
    return read_grayscale(path, size=None)


@pytest.mark.parametrize("source", PNGS, ids=lambda p: p.name)
def test_twelve_bit_monochrome2_without_window_scales_by_its_bit_depth(tmp_path, source):
    p = png(source)
    stored = np.round(p.astype(np.float64) * 4095 / 255)  # 12-bit, as a scanner would store it
    pixels, mode, size = decode(write_dicom(tmp_path / "a.dcm", stored))
    np.testing.assert_array_equal(pixels, p)
    assert mode == "DICOM MONOCHROME2 12-bit" and size == (p.shape[1], p.shape[0])


@pytest.mark.parametrize("source", PNGS, ids=lambda p: p.name)
def test_monochrome1_with_rescale_and_window_is_inverted_back(tmp_path, source):
    p = png(source).astype(np.int64)
    # Modality values m = 16 * (255 - p): MONOCHROME1 stores bright bone as low values. Stored
    # s = (m - intercept) / slope; the window (2040.5, 4081) maps m in [0, 4080] onto [0, 255].
    modality = 16 * (255 - p)
    stored = (modality + 1024) // 2
    path = write_dicom(tmp_path / "b.dcm", stored, "MONOCHROME1", RescaleSlope=2, RescaleIntercept=-1024,
                       WindowCenter=2040.5, WindowWidth=4081)
    pixels, mode, _ = decode(path)
    np.testing.assert_array_equal(pixels, p)
    assert mode == "DICOM MONOCHROME1 12-bit"


def test_voi_lut_is_preferred_to_the_window(tmp_path):
    p = png(PNGS[0]).astype(np.int64)
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]  # entries, first mapped value, bits per entry
    # m = 16 p -> 257 p, i.e. p / 255 of the 16-bit output range (LUTData is OW: raw bytes)
    lut.LUTData = np.round(np.arange(4096) / 16 * 257).astype(np.uint16).tobytes()
    path = write_dicom(tmp_path / "c.dcm", 16 * p, VOILUTSequence=[lut], WindowCenter=100, WindowWidth=10)
    np.testing.assert_array_equal(decode(path)[0], p)


def test_eight_bit_file_passes_through(tmp_path):
    p = png(PNGS[1])
    np.testing.assert_array_equal(decode(write_dicom(tmp_path / "d.dcm", p, bits=8))[0], p)


def test_window_functions_follow_the_standard():
    x = np.array([0.0, 99.0, 100.0, 101.0, 200.0])
    # LINEAR, center 100 width 11: [94.5, 105.5) maps onto [0, 1]
    np.testing.assert_allclose(window(x, 100, 11), [0, 0.45, 0.55, 0.65, 1])
    np.testing.assert_allclose(window(x, 100, 10, "LINEAR_EXACT"), [0, 0.4, 0.5, 0.6, 1])
    np.testing.assert_allclose(window(np.array([100.0]), 100, 10, "SIGMOID"), [0.5])


def test_multi_frame_colour_and_bad_files_are_clear_errors(tmp_path):
    p = png(PNGS[0])
    frames = write_dicom(tmp_path / "frames.dcm", np.stack([p, p]).reshape(2 * p.shape[0], p.shape[1]), bits=8,
                         NumberOfFrames=2, Rows=p.shape[0])
    with pytest.raises(ImageError, match=r"multi-frame DICOM \(2 frames\).*frames\.dcm"):
        decode(frames)
    rgb = write_dicom(tmp_path / "rgb.dcm", np.repeat(p[..., None], 3, -1), "RGB", bits=8, PlanarConfiguration=0)
    with pytest.raises(ImageError, match=r"colour DICOM \(RGB, 3 samples per pixel\).*rgb\.dcm"):
        decode(rgb)
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom at all" * 20)
    with pytest.raises(ImageError, match="not a readable DICOM file: .*junk.dcm"):
        decode(tmp_path / "junk.dcm")


def test_without_pydicom_the_error_names_the_extra(tmp_path, monkeypatch):
    path = write_dicom(tmp_path / "e.dcm", png(PNGS[0]), bits=8)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # what `import pydicom` sees where it is not installed
    with pytest.raises(ImageError, match=r"e\.dcm is a DICOM file and pydicom is not installed: "
                                         r"pip install 'keras_cxr\[dicom\]'"):
        decode(path)


def test_a_dicom_dataset_scans_like_the_png_one(tmp_path):
    """The bundled sample's test split as 12-bit DICOM (half MONOCHROME1): same records' pixels."""
    root = tmp_path / "dicom"
    for split_dir in (SAMPLE_DIR / "train", SAMPLE_DIR / "test"):
        for class_dir in split_dir.iterdir():
            if not class_dir.is_dir():
                continue
            out = root / split_dir.name / class_dir.name
            out.mkdir(parents=True)
            for i, source in enumerate(sorted(class_dir.glob("*.png"))[:6]):
                p = png(source).astype(np.float64)
                if i % 2:
                    write_dicom(out / f"{source.stem}.dcm", np.round((255 - p) * 4095 / 255), "MONOCHROME1")
                else:
                    write_dicom(out / f"{source.stem}.dcm", np.round(p * 4095 / 255))
    scan = scan_dataset(root)
    assert scan.counts() == {"train": [6, 6], "test": [6, 6]}
    assert set(scan.modes) == {"DICOM MONOCHROME1 12-bit", "DICOM MONOCHROME2 12-bit"}
    for record in scan.records:
        split, name = Path(record.file).parts[-3], Path(record.file).stem
        np.testing.assert_array_equal(read_grayscale(record.file, 64),
                                      read_grayscale(SAMPLE_DIR / split / Path(record.file).parts[-2] / f"{name}.png", 64))
    shutil.rmtree(root)
