"""Data files: pickles never run code, written files honour the umask, one-file roots warn."""

from __future__ import annotations

import io
import os
import pickle
import stat
import struct
from pathlib import Path

import numpy as np
import pytest

from metacrl.data import MiniImagenet, write_fake_miniimagenet
from metacrl.data.atomic import atomic_path, current_umask, write_bytes_atomic
from metacrl.data.image_cache import open_image_cache
from metacrl.data.miniimagenet_pickle import read_split_pickle


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def format_data(classes: int = 3, per_class: int = 4, size: int = 8) -> dict[str, object]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(classes * per_class, size, size, 3), dtype=np.uint8)
    class_dict = {
        f"n{c:08d}": list(range(c * per_class, (c + 1) * per_class)) for c in range(classes)
    }
    return {"image_data": images, "class_dict": class_dict}


class Exploit:
    """What a malicious pickle holds: unpickling it calls ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes ``bytes`` as Python 2's ``str`` (BINSTRING), as Python 2 pickled numpy arrays."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


# ---------------------------------------------------------------- pickles run no code
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "mini-imagenet-cache-train.pkl"
    with open(path, "wb") as f:
        pickle.dump({**format_data(), "payload": Exploit(marker)}, f)
    named = r"cannot unpickle .*mini-imagenet-cache-train\.pkl: refused to load \w+\.system"
    with pytest.raises(ValueError, match=named) as info:
        read_split_pickle(path)
    assert not marker.exists()
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"refused to load \w+\.system"):
        MiniImagenet(tmp_path, n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickles_of_the_format_load_at_every_protocol(tmp_path: Path, protocol: int) -> None:
    data = format_data()
    data["class_dict"]["n00000000"] = np.arange(4)  # type: ignore[index]  # an array of rows
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    split = read_split_pickle(path)
    assert np.array_equal(split.images, data["image_data"])  # type: ignore[arg-type]
    assert split.class_rows["n00000002"].tolist() == [8, 9, 10, 11]


def test_a_python_2_pickle_loads(tmp_path: Path) -> None:
    data = format_data()
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(data)
    path = tmp_path / "mini-imagenet-cache-train.pkl"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(UnicodeDecodeError):  # what a plain pickle.load does with it
        pickle.loads(buffer.getvalue())
    split = read_split_pickle(path)
    assert np.array_equal(split.images, data["image_data"])  # type: ignore[arg-type]


def test_a_truncated_pickle_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mini-imagenet-cache-val.pkl"
    path.write_bytes(pickle.dumps(format_data())[:200])
    with pytest.raises(ValueError, match=r"cannot unpickle .*mini-imagenet-cache-val\.pkl: "):
        read_split_pickle(path)


def test_one_pickle_file_used_as_another_split_warns(tmp_path: Path) -> None:
    path = tmp_path / "mini-imagenet-cache-test.pkl"
    path.write_bytes(pickle.dumps(format_data()))
    settings = dict(n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8, progress=False)
    with pytest.warns(UserWarning, match=r"holds the 'test' split but is used as the 'train'"):
        MiniImagenet(path, "train", **settings)  # type: ignore[arg-type]
    assert MiniImagenet(path, "test", **settings).num_classes == 3  # type: ignore[arg-type]


# ---------------------------------------------------------------- files honour the umask
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_honour_the_umask(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    assert current_umask() == mask
    write_bytes_atomic(tmp_path / "a.bin", b"abc")
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"abc")
    assert mode_of(tmp_path / "a.bin") == mode_of(tmp_path / "b.bin") == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_an_image_cache_is_readable_by_others_under_umask_022(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    root = write_fake_miniimagenet(tmp_path / "mini", (2, 1, 1), images_per_class=3, image_size=8)
    shared = tmp_path / "shared-cache"
    settings = dict(n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8, progress=False)
    ds = MiniImagenet(root, cache_dir=shared, **settings)  # type: ignore[arg-type]
    assert ds.cache_path == shared / "train-8px.npy"
    assert {p.name: mode_of(p) for p in shared.iterdir()} == {
        "train-8px.npy": 0o644,
        "train-8px.json": 0o644,
    }
    os.umask(0o002)  # a group-writable cache, e.g. for a team
    files = sorted((root / "images").iterdir())[:2]
    open_image_cache(shared, "g", files, [f.name for f in files], 4, progress=False)
    assert mode_of(shared / "g.npy") == mode_of(shared / "g.json") == 0o664
