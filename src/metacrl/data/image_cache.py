"""An on-disk cache of decoded, resized images: built once, validated, reused.

The cache is two files in the cache directory: ``<name>.npy``, a ``uint8`` array
``[num_images, size, size, 3]`` loaded with memory mapping, and ``<name>.json``, a header with the
list of image filenames and the size. A cache is used only if the header matches the requested
filenames (same images in the same order) and size, and the array has the expected shape;
otherwise it is rebuilt. Both files are written atomically (temporary file in the same
directory, fsync, :func:`os.replace`), the header last and only after the array is in place, so
an interrupted build leaves the previous state or no cache at all, never a broken one (a build
killed outright leaves a hidden temporary file, removed by the next build). Replacing
an image file's *content* under the same name is not detected: delete the cache then.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from metacrl.data.atomic import atomic_path, remove_orphans, write_bytes_atomic
from metacrl.data.image_decode import decode_image, resize_images

__all__ = [
    "CACHE_FORMAT",
    "Decoder",
    "build_array_cache",
    "build_image_cache",
    "load_image_cache",
    "open_image_cache",
]

Decoder = Callable[[Path, int], np.ndarray]
"""Reads an image file as a ``uint8`` array ``[size, size, 3]`` (e.g. :func:`decode_image`)."""

logger = logging.getLogger(__name__)

CACHE_FORMAT = {"format": "metacrl-image-cache", "version": 1, "interpolation": "PIL-bilinear"}
"""Header fields that every valid cache carries; bump ``version`` when the layout changes."""

_CHUNK = 256


def _header(filenames: Sequence[str], size: int) -> dict[str, object]:
    return {
        **CACHE_FORMAT,
        "size": int(size),
        "count": len(filenames),
        "filenames": list(filenames),
    }


def _paths(directory: Path, name: str) -> tuple[Path, Path]:
    return directory / f"{name}.npy", directory / f"{name}.json"


def load_image_cache(
    directory: str | Path, name: str, filenames: Sequence[str], size: int
) -> np.ndarray | None:
    """Open a valid cache, or return ``None`` if it is absent, stale or unreadable.

    Args:
        directory: The cache directory.
        name: The cache's base name (without suffix).
        filenames: The images the cache must hold, in order.
        size: Their side length.

    Returns:
        The memory-mapped ``uint8`` array ``[len(filenames), size, size, 3]``, or ``None``.

    Example:
        >>> load_image_cache("/nonexistent", "train-84px", ["a.jpg"], 84) is None
        True
    """
    array_path, header_path = _paths(Path(directory), name)
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if header != _header(filenames, size):
        logger.info("image cache %s is stale (different images or size)", header_path)
        return None
    try:
        images: np.ndarray = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if images.dtype != np.uint8 or images.shape != (len(filenames), size, size, 3):
        return None
    return images


def build_image_cache(
    directory: str | Path,
    name: str,
    files: Sequence[Path],
    filenames: Sequence[str],
    size: int,
    *,
    progress: bool = True,
    threads: int | None = None,
    desc: str = "caching images",
    decode: Decoder = decode_image,
) -> np.ndarray:
    """Decode and resize every image into a new cache, atomically, and open it.

    Args:
        directory: The cache directory (created if needed).
        name: The cache's base name (without suffix).
        files: The image files, in order.
        filenames: The names recorded in the header (one per file, e.g. relative names).
        size: The side length to resize to.
        progress: Show a progress bar (default: ``True``).
        threads: Decoding threads (PIL releases the GIL); default ``min(8, cpu_count)``.
        desc: The progress bar's label (default: ``"caching images"``).
        decode: How a file becomes an array (default: :func:`decode_image`). A cache does not
            record its decoder: give caches of different decoders different names.

    Returns:
        The memory-mapped ``uint8`` array ``[len(files), size, size, 3]``.

    Raises:
        OSError: If the cache directory cannot be written.
        ValueError: If an image cannot be decoded (the file is named); no cache is left behind.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Image.new("RGB", (8, 8)).save(f"{d}/a.png")
        ...     arr = build_image_cache(d, "c", [Path(f"{d}/a.png")], ["a.png"], 4, progress=False)
        ...     arr.shape, load_image_cache(d, "c", ["a.png"], 4) is not None
        ((1, 4, 4, 3), True)
    """
    if len(files) != len(filenames):
        raise ValueError(f"got {len(files)} files but {len(filenames)} filenames")
    n_threads = threads if threads is not None else min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, n_threads)) as pool:

        def chunks() -> Iterator[np.ndarray]:
            for start in range(0, len(files), _CHUNK):
                chunk = files[start : start + _CHUNK]
                yield np.stack(list(pool.map(lambda f: decode(f, size), chunk)))

        return _write_cache(directory, name, chunks(), filenames, size, progress, desc)


def build_array_cache(
    directory: str | Path,
    name: str,
    chunks: Iterable[np.ndarray],
    filenames: Sequence[str],
    size: int,
    *,
    progress: bool = True,
    desc: str = "caching images",
) -> np.ndarray:
    """Write decoded images, given as consecutive chunks, into a new cache, atomically.

    For sources that hold pixels rather than image files (CIFAR-100's pickles, tieredImageNet's
    arrays): the chunks are read one at a time (so a source larger than memory can be
    streamed), resized with :func:`~metacrl.data.image_decode.resize_images` when not already
    ``size x size``, and written in order. The cache is the same as :func:`build_image_cache`'s.

    Args:
        directory: The cache directory (created if needed).
        name: The cache's base name (without suffix).
        chunks: ``uint8`` arrays ``[n, H, W, 3]`` (any ``n``), in order: ``len(filenames)``
            images in all.
        filenames: The names recorded in the header, one per image (keys that identify them).
        size: The side length to resize to.
        progress: Show a progress bar (default: ``True``).
        desc: The progress bar's label (default: ``"caching images"``).

    Returns:
        The memory-mapped ``uint8`` array ``[len(filenames), size, size, 3]``.

    Raises:
        OSError: If the cache directory cannot be written.
        ValueError: If a chunk is not ``uint8 [n, H, W, 3]`` or the chunks do not hold
            ``len(filenames)`` images; no cache is left behind.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     chunks = [np.zeros((2, 8, 8, 3), np.uint8), np.ones((1, 8, 8, 3), np.uint8)]
        ...     arr = build_array_cache(d, "c", chunks, ["a", "b", "c"], 4, progress=False)
        ...     arr.shape, int(arr[2].max())
        ((3, 4, 4, 3), 1)
    """

    def resized() -> Iterator[np.ndarray]:
        for chunk in chunks:
            chunk = np.asarray(chunk)
            if chunk.dtype != np.uint8 or chunk.ndim != 4 or chunk.shape[3] != 3:
                raise ValueError(
                    f"{desc}: images must be uint8 [N, H, W, 3], got {chunk.dtype} "
                    f"{tuple(chunk.shape)}"
                )
            yield resize_images(chunk, size)

    return _write_cache(directory, name, resized(), filenames, size, progress, desc)


def _write_cache(
    directory: str | Path,
    name: str,
    chunks: Iterator[np.ndarray],
    filenames: Sequence[str],
    size: int,
    progress: bool,
    desc: str,
) -> np.ndarray:
    """Write ``chunks`` (``uint8 [n, size, size, 3]``, in order) as the cache ``name``."""
    from tqdm.auto import tqdm

    directory = Path(directory)
    array_path, header_path = _paths(directory, name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        header_path.unlink(missing_ok=True)  # invalidate first: the header is written last
        for orphan in remove_orphans(array_path):
            logger.info("removed %s, left by an interrupted cache build", orphan)
    except OSError as err:
        raise OSError(
            f"cannot write the image cache in {directory}: {err}; pass cache_dir= to put it "
            "elsewhere, or cache=False to decode images on every access"
        ) from err
    count = len(filenames)
    logger.info("building image cache %s (%d images at %dpx)", array_path, count, size)
    with atomic_path(array_path) as tmp:
        out = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
        with tqdm(total=count, desc=desc, unit="img", disable=not progress) as bar:
            start = 0
            for chunk in chunks:
                stop = start + len(chunk)
                if stop > count:
                    raise ValueError(f"{desc}: the source holds more than the {count} images")
                out[start:stop] = chunk
                bar.update(len(chunk))
                start = stop
            if start != count:
                raise ValueError(f"{desc}: the source holds {start} images, expected {count}")
        out.flush()
        del out
    write_bytes_atomic(header_path, json.dumps(_header(filenames, size)).encode("utf-8"))
    images = load_image_cache(directory, name, filenames, size)
    if images is None:  # pragma: no cover - only if another process removed it meanwhile
        raise OSError(f"the image cache {array_path} vanished right after it was written")
    return images


def open_image_cache(
    directory: str | Path,
    name: str,
    files: Sequence[Path],
    filenames: Sequence[str],
    size: int,
    *,
    progress: bool = True,
    desc: str = "caching images",
    decode: Decoder = decode_image,
) -> np.ndarray:
    """Open the cache if it is valid, else build it (see :func:`build_image_cache`).

    Args:
        directory: The cache directory.
        name: The cache's base name.
        files: The image files, in order (only read when building).
        filenames: The names recorded in the header.
        size: The side length.
        progress: Show a progress bar while building (default: ``True``).
        desc: The progress bar's label (default: ``"caching images"``).
        decode: How a file becomes an array when building (default: :func:`decode_image`).

    Returns:
        The memory-mapped ``uint8`` array ``[len(files), size, size, 3]``.

    Raises:
        OSError: If the cache has to be built and the directory cannot be written.
        ValueError: If an image cannot be decoded.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Image.new("RGB", (8, 8)).save(f"{d}/a.png")
        ...     f = [Path(f"{d}/a.png")]
        ...     a = open_image_cache(d, "c", f, ["a.png"], 4, progress=False)
        ...     b = open_image_cache(d, "c", f, ["a.png"], 4, progress=False)  # reused
        ...     bool((a == b).all())
        True
    """
    images = load_image_cache(directory, name, filenames, size)
    if images is not None:
        return images
    return build_image_cache(
        directory, name, files, filenames, size, progress=progress, desc=desc, decode=decode
    )
