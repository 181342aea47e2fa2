import io

import numpy as np
import pytest
from PIL import Image

from keras_cxr.data.images import ImageError, decode, read_grayscale
from tests.conftest import sample_files


@pytest.fixture
def gray():
    return np.asarray(Image.open(sample_files("train", "NORMAL", 1)[0]))


def test_grayscale_png_is_read_as_is(gray):
    path = sample_files("train", "NORMAL", 1)[0]
    np.testing.assert_array_equal(read_grayscale(path, size=None), gray)


def test_resize_to_requested_side():
    assert read_grayscale(sample_files("train", "NORMAL", 1)[0], size=64).shape == (64, 64)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, gray):
    path = tmp_path / "x16.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)
    pixels, mode, _ = decode(path)
    assert mode.startswith("I")
    np.testing.assert_array_equal(pixels, gray)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_colour_modes_become_the_same_gray(tmp_path, gray, mode):
    img = Image.fromarray(gray).convert(mode)
    path = tmp_path / f"x_{mode}.png"
    img.save(path)
    out = read_grayscale(path, size=None)
    assert out.dtype == np.uint8 and out.shape == gray.shape
    assert np.abs(out.astype(int) - gray.astype(int)).max() <= 1


def test_cmyk_jpeg_is_converted(tmp_path, gray):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(gray).convert("CMYK").save(path, quality=95)
    pixels, mode, _ = decode(path)
    assert mode == "CMYK"
    assert np.abs(pixels.astype(int) - gray.astype(int)).mean() < 6


def test_truncated_png_names_the_file(tmp_path):
    src = sample_files("train", "NORMAL", 1)[0].read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(src[: len(src) // 2])
    with pytest.raises(ImageError, match="truncated.png"):
        decode(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty image file \(0 bytes\): .*empty.png"):
        decode(path)


def test_non_image_bytes(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(ImageError, match="not a readable image: .*notes.png"):
        decode(path)


def test_corrupt_jpeg(tmp_path, gray):
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    data[200:400] = b"\x00" * 200
    path = tmp_path / "bad.jpeg"
    path.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ImageError, match="bad.jpeg"):
        decode(path)
