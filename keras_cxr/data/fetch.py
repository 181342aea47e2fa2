"""`data fetch kermany`: download the official archive, check it, extract it safely.

Resumable: the download goes to `<name>.part` and continues from its size (HTTP Range, or a
seek for file:// URLs); a finished, verified archive is not fetched again; extraction goes to a
temporary folder renamed into place, so an interrupted run leaves nothing half-extracted.
Safe: every member is checked before anything is written; absolute paths, members that escape
DEST (`..`), symlinks, hard links and device files make the whole archive refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from keras_cxr.errors import KerasCXRError
from keras_cxr.io_utils import atomic_path

# Kermany, Zhang, Goldbaum, Mendeley Data v2, doi:10.17632/rscbjbr9sj.2 (CC BY 4.0): the
# dataset's zip download. The archive holds ChestXRay2017.zip (and the OCT data); no checksum
# is published, so pass --sha256 to pin the one this command prints after a first download.
KERMANY_URL = "https://data.mendeley.com/api/datasets-v2/datasets/rscbjbr9sj/zip/download?version=2"
CHUNK = 1 << 20

# Caps on what one archive may extract to (nested archives each checked against them too). Image
# archives extract at a ratio near 1 (JPEG and PNG are compressed already); a compression bomb
# reaches its size by ratio: 2 MB of zipped zeros make 2 GiB.
MAX_EXTRACT_BYTES = 32 << 30
MAX_FILES = 500_000
MAX_RATIO = 100  # extracted bytes per archive byte


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, part: Path, log) -> None:
    done = part.stat().st_size if part.exists() else 0
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        src = Path(urllib.request.url2pathname(parsed.path))
        if not src.is_file():
            raise KerasCXRError(f"archive not found: {src} (from --url {url})")
        total = src.stat().st_size
        with open(src, "rb") as fin, open(part, "ab") as fout:
            fin.seek(done)
            shutil.copyfileobj(fin, fout, CHUNK)
        log(f"copied {total - done:,} bytes from {src} (resumed at {done:,})" if done else f"copied {total:,} bytes from {src}")
        return
    if parsed.scheme not in ("http", "https"):
        raise KerasCXRError(f"--url must be http(s):// or file://. Received: {url}")
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except OSError as exc:
        raise KerasCXRError(f"download failed: {url} ({exc}); rerun to resume") from None
    with response:
        if done and response.status != 206:
            done = 0  # the server ignored Range: start over
        total = int(response.headers.get("Content-Length") or 0) + done
        with open(part, "ab" if done else "wb") as fout:
            got = done
            while block := response.read(CHUNK):
                fout.write(block)
                got += len(block)
                if total:
                    print(f"\r  {got / 1e6:,.1f} / {total / 1e6:,.1f} MB", end="", file=sys.stderr)
        print(file=sys.stderr)


def _check_members(names_kinds: list[tuple[str, str]], archive: Path) -> None:
    for name, kind in names_kinds:
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
            raise KerasCXRError(f"refusing {archive}: member {name!r} would be written outside DEST")
        if kind != "file" and kind != "dir":
            raise KerasCXRError(f"refusing {archive}: member {name!r} is a {kind}, not a regular file")


def _check_size(archive: Path, sizes: list[int], max_bytes: int, max_files: int) -> None:
    """Refuses an archive whose members would extract to more than the caps, before writing."""
    total, size = sum(sizes), archive.stat().st_size
    if len(sizes) > max_files:
        raise KerasCXRError(f"refusing {archive}: {len(sizes):,} files to extract, over the cap of {max_files:,} "
                            f"(--max-files)")
    if total > max_bytes:
        raise KerasCXRError(f"refusing {archive}: it extracts to {total:,} bytes, over the cap of {max_bytes:,} "
                            f"(--max-extract-bytes)")
    if total > MAX_RATIO * max(size, 1) and total > CHUNK:
        raise KerasCXRError(f"refusing {archive}: {size:,} bytes that extract to {total:,} ({total / max(size, 1):,.0f}x, "
                            f"over {MAX_RATIO}x): a compression bomb, not an image archive")


def safe_extract(archive: Path, dest: Path, max_bytes: int = MAX_EXTRACT_BYTES, max_files: int = MAX_FILES) -> None:
    """Extracts a zip or tar archive into `dest` after checking every member and the total size.

    A zip member cannot extract to more than its recorded size (zipfile stops there), and a tar
    member's size is its data's, so the caps hold for what is written, not only for what is declared.
    """
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = []
            for info in zf.infolist():
                mode = info.external_attr >> 16
                kind = "dir" if info.is_dir() else "symlink" if stat.S_ISLNK(mode) else "file"
                members.append((info.filename, kind))
            _check_members(members, archive)
            _check_size(archive, [i.file_size for i in zf.infolist() if not i.is_dir()], max_bytes, max_files)
            zf.extractall(dest)
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = []
            for m in tf.getmembers():
                kind = ("file" if m.isfile() else "dir" if m.isdir() else "symlink" if m.issym()
                        else "hard link" if m.islnk() else "special file")
                members.append((m.name, kind))
            _check_members(members, archive)
            _check_size(archive, [m.size for m in tf.getmembers() if m.isfile()], max_bytes, max_files)
            tf.extractall(dest, filter="data")
        return
    raise KerasCXRError(f"{archive} is neither a zip nor a tar archive")


def find_dataset_root(folder: Path) -> Path | None:
    """The first folder (breadth-first) holding train/NORMAL and train/PNEUMONIA."""
    queue = [folder]
    while queue:
        d = queue.pop(0)
        if (d / "train" / "NORMAL").is_dir() and (d / "train" / "PNEUMONIA").is_dir():
            return d
        queue += sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("__"))
    return None


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, log=print,
          max_bytes: int = MAX_EXTRACT_BYTES, max_files: int = MAX_FILES) -> Path:
    """Downloads (resumably), verifies and extracts an archive; returns the dataset root.

    Args:
        url: str. http(s):// or file:// URL of a zip or tar archive.
        dest: folder to extract into (created).
        sha256: str or None. Expected checksum of the archive; a mismatch is an error and the
            download is discarded. Defaults to None (the checksum is printed to pin later).
        max_bytes, max_files: caps on what each archive (and each nested one) extracts to.
    """
    if max_bytes < 1 or max_files < 1:
        raise KerasCXRError(f"--max-extract-bytes and --max-files must be >= 1. Received: {max_bytes}, {max_files}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    if name in ("download", "file_downloaded"):
        name = "archive.zip"
    archive = dest / name
    part = dest / f"{name}.part"
    if not archive.exists():
        _download(url, part, log)
        os.replace(part, archive)
    digest = _sha256(archive)
    if sha256 and digest != sha256.lower():
        archive.unlink()
        raise KerasCXRError(
            f"checksum mismatch for {archive}: expected sha256 {sha256}, got {digest}; the file was removed"
        )
    log(f"sha256 {digest}  {archive}")
    target = dest / (name.split(".")[0] + "_extracted")
    if not target.exists():
        with atomic_path(target, is_dir=True) as tmp:
            safe_extract(archive, tmp, max_bytes, max_files)
            # The Mendeley archive nests ChestXRay2017.zip: extract nested archives one level down.
            for nested in sorted(tmp.rglob("*.zip")) + sorted(tmp.rglob("*.tar.gz")):
                if "__MACOSX" not in nested.parts:
                    safe_extract(nested, nested.parent, max_bytes, max_files)
                    nested.unlink()
    root = find_dataset_root(target)
    if root is None:
        raise KerasCXRError(f"extracted {archive} to {target}, but found no train/NORMAL and train/PNEUMONIA inside")
    log(f"dataset root: {root}")
    return root
