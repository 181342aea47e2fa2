import hashlib
import io
import tarfile
import zipfile

import pytest

from keras_cxr.data.fetch import fetch
from keras_cxr.errors import KerasCXRError
from keras_cxr.pipeline.cli import main
from tests.conftest import sample_files


def _zip_of_kermany(path, extra=None):
    with zipfile.ZipFile(path, "w") as zf:
        for split in ("train", "test"):
            for cls in ("NORMAL", "PNEUMONIA"):
                for f in sample_files(split, cls, 3):
                    zf.write(f, f"chest_xray/{split}/{cls}/{f.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_file_url_extracts_and_finds_root(tmp_path):
    archive = _zip_of_kermany(tmp_path / "ChestXRay2017.zip")
    root = fetch(archive.as_uri(), tmp_path / "dest", sha256=_sha(archive), log=lambda m: None)
    assert root.name == "chest_xray"
    assert len(list((root / "train" / "NORMAL").glob("*.png"))) == 3


def test_fetch_cli_on_file_url(tmp_path, capsys):
    archive = _zip_of_kermany(tmp_path / "ChestXRay2017.zip")
    assert main(["data", "fetch", "kermany", "--dest", str(tmp_path / "d"), "--url", archive.as_uri()]) == 0
    assert f"sha256 {_sha(archive)}" in capsys.readouterr().out


def test_nested_archive_is_extracted(tmp_path):
    inner = _zip_of_kermany(tmp_path / "ChestXRay2017.zip")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "rscbjbr9sj-2/ChestXRay2017.zip")
    root = fetch(outer.as_uri(), tmp_path / "dest", log=lambda m: None)
    assert (root / "test" / "PNEUMONIA").is_dir()


def test_checksum_mismatch_removes_download(tmp_path):
    archive = _zip_of_kermany(tmp_path / "a.zip")
    with pytest.raises(KerasCXRError, match="checksum mismatch"):
        fetch(archive.as_uri(), tmp_path / "dest", sha256="0" * 64, log=lambda m: None)
    assert not (tmp_path / "dest" / "a.zip").exists()


def test_resume_from_partial_download(tmp_path):
    archive = _zip_of_kermany(tmp_path / "a.zip")
    dest = tmp_path / "dest"
    dest.mkdir()
    data = archive.read_bytes()
    (dest / "a.zip.part").write_bytes(data[: len(data) // 2])
    messages = []
    fetch(archive.as_uri(), dest, sha256=_sha(archive), log=messages.append)
    assert (dest / "a.zip").read_bytes() == data
    assert any("resumed at" in m for m in messages)


def test_zip_member_escaping_dest_is_refused(tmp_path):
    archive = _zip_of_kermany(tmp_path / "evil.zip", extra={"../../escaped.txt": b"x"})
    with pytest.raises(KerasCXRError, match=r"member '../../escaped.txt' would be written outside DEST"):
        fetch(archive.as_uri(), tmp_path / "dest", log=lambda m: None)
    assert not (tmp_path / "escaped.txt").exists()
    assert not list((tmp_path / "dest").glob("*_extracted"))


def test_tar_symlink_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        f = sample_files("train", "NORMAL", 1)[0]
        tf.add(f, "chest_xray/train/NORMAL/a.png")
        link = tarfile.TarInfo("chest_xray/train/NORMAL/passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(KerasCXRError, match="is a symlink"):
        fetch(archive.as_uri(), tmp_path / "dest", log=lambda m: None)


def test_absolute_member_is_refused(tmp_path):
    archive = tmp_path / "abs.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("/tmp/owned.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(KerasCXRError, match="outside DEST"):
        fetch(archive.as_uri(), tmp_path / "dest", log=lambda m: None)
