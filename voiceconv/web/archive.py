"""Checking and unpacking uploaded zip files without trusting them.

A member must stay inside the folder it is unpacked into (no absolute paths,
no ``..``, no symbolic links), and the archive must not be a zip bomb: the
member count, the total uncompressed size and each member's compression ratio
are limited. Every refusal raises :class:`UnsafeArchiveError` naming the
archive, the member and the limit.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from voiceconv.web.limits import MB, Limits, UploadError

_COPY_CHUNK = 1024 * 1024
MAX_NAME_BYTES = 255  # one file or folder name (NAME_MAX on Linux and macOS)
MAX_MEMBER_PATH_BYTES = 1024  # a member's whole path inside the zip
_IGNORED_PREFIXES = ("__MACOSX/",)  # resource forks macOS adds to zips it creates


class UnsafeArchiveError(UploadError):
    """A zip upload is refused: unsafe member paths, links, or too big when unpacked."""


def check_zip(path: str | Path, limits: Limits) -> list[zipfile.ZipInfo]:
    """The regular-file members of the zip at ``path`` that are safe to unpack, in archive order.

    Raises :class:`UnsafeArchiveError` for a damaged archive, a member path that
    would escape the destination, a symbolic link, an encrypted member, more
    than ``limits.max_batch_files`` files, more than ``limits.max_zip_total_mb``
    uncompressed, or a member compressed more than ``limits.max_zip_ratio`` times.
    """
    name = Path(path).name
    members = [info for info in _read_members(path) if not info.filename.startswith(_IGNORED_PREFIXES)]
    for info in members:
        _check_member(name, info, limits)
    files = [info for info in members if not info.is_dir()]
    if len(files) > limits.max_batch_files:
        raise UnsafeArchiveError(f"{name} holds {len(files)} files; {limits.files_limit_name} is limited to "
                                 f"{limits.max_batch_files}")
    total = sum(info.file_size for info in files)
    if total > limits.max_zip_total_mb * MB:
        raise UnsafeArchiveError(f"{name} unpacks to {total / MB:.1f} MB; the limit is {limits.max_zip_total_mb:g} MB")
    return files


def extract_zip(path: str | Path, destination: str | Path, limits: Limits) -> list[Path]:
    """Check the zip (:func:`check_zip`) and unpack its files under ``destination``; returns their paths.

    Sizes are counted again while unpacking, so a header that understates a
    member's size cannot get more than the declared bytes onto the disk.
    """
    destination = Path(destination).resolve()
    members = check_zip(path, limits)  # before opening it to unpack: a file that is no zip is refused here
    written = []
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise UnsafeArchiveError(f"{Path(path).name} is not a readable zip file ({err})") from None
    with archive:
        for info in members:
            target = _inside(destination, info.filename, Path(path).name)
            _unpack_member(archive, info, target, f"{Path(path).name}: member {_shown(info.filename)}")
            written.append(target)
    return written


def copy_upload(path: str | Path, destination: str | Path) -> Path:
    """Copy an uploaded file into ``destination`` under its own base name; refuses a name used twice."""
    target = Path(destination) / Path(path).name
    if target.exists():
        raise UploadError(f"two uploads are named {target.name}; rename one of them")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target


def _read_members(path: str | Path) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise UnsafeArchiveError(f"{Path(path).name} is not a readable zip file ({err})") from None


def _shown(member: str) -> str:
    """A member name for a message: quoted, and cut short when it is very long."""
    return repr(member) if len(member) <= 80 else repr(member[:60]) + f"... ({len(member)} characters)"


def _check_member(archive: str, info: zipfile.ZipInfo, limits: Limits) -> None:
    where = f"{archive}: member {_shown(info.filename)}"
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    if "\0" in info.filename:
        raise UnsafeArchiveError(f"{where} has a NUL character in its name; refusing the zip")
    if len(info.filename.encode("utf-8", "surrogateescape")) > MAX_MEMBER_PATH_BYTES or \
            any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in parts):
        raise UnsafeArchiveError(f"{where} has a name too long to unpack (at most {MAX_NAME_BYTES} bytes a name, "
                                 f"{MAX_MEMBER_PATH_BYTES} a path); rename it")
    if info.filename.startswith(("/", "\\")) or (parts and parts[0].endswith(":")):
        raise UnsafeArchiveError(f"{where} has an absolute path; zips must hold relative paths only")
    if ".." in parts:
        raise UnsafeArchiveError(f"{where} points outside the folder ('..'); refusing the zip")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{where} is a symbolic link; zips must hold plain files only")
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(f"{where} is encrypted; upload an unencrypted zip")
    compressed = max(info.compress_size, 1)
    if info.file_size >= limits.ratio_check_min_mb * MB and info.file_size / compressed > limits.max_zip_ratio:
        raise UnsafeArchiveError(f"{where} is compressed {info.file_size / compressed:.0f} times "
                                 f"(limit {limits.max_zip_ratio:g}); it looks like a zip bomb")


def _inside(destination: Path, member: str, archive: str) -> Path:
    """The unpacked path of ``member``, checked to lie under ``destination`` (already resolved)."""
    try:
        target = (destination / member.replace("\\", "/")).resolve()
    except (OSError, ValueError, RuntimeError) as err:  # e.g. a name the file system refuses
        raise UnsafeArchiveError(f"{archive}: member {_shown(member)} cannot be unpacked: "
                                 f"{getattr(err, 'strerror', None) or err}") from None
    if not target.is_relative_to(destination) or target == destination:
        raise UnsafeArchiveError(f"{archive}: member {_shown(member)} would land outside the upload folder")
    return target


def _unpack_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, where: str) -> None:
    """Write one member to ``target`` (a new file), at most its declared size."""
    try:
        if target.exists():
            raise UploadError(f"{where} is uploaded twice; rename one of them")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "xb") as sink:
            _copy_at_most(source, sink, info.file_size, where)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError, ValueError) as err:
        raise UnsafeArchiveError(f"{where} is damaged or packed in a way zip readers do not support ({err})") from None
    except OSError as err:  # e.g. a file and a folder of the same name
        raise UnsafeArchiveError(f"{where} cannot be unpacked: {err.strerror or err}") from None


def _copy_at_most(source, sink, limit: int, what: str) -> None:
    copied = 0
    while chunk := source.read(_COPY_CHUNK):
        copied += len(chunk)
        if copied > limit:
            raise UnsafeArchiveError(f"{what} unpacks to more bytes than its header declares")
        sink.write(chunk)
