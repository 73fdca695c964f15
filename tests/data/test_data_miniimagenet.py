"""MiniImagenet: both on-disk formats, the decoded-image cache, episodes and clear errors."""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metacrl.data import IMAGENET_MEAN, IMAGENET_STD, MiniImagenet, TaskLoader
from metacrl.data.image_decode import decode_image

SPLITS = ("train", "val", "test")


def make_folder(
    root: Path, classes: int = 6, per_class: int = 5, size: tuple[int, int] = (14, 10)
) -> Path:
    """A tiny miniImageNet folder in dragen1860/MAML-Pytorch's layout: random JPEGs, split CSVs."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for s, split in enumerate(SPLITS):
        lines = ["filename,label"]
        for c in range(classes):
            wnid = f"n{s:02d}{c:06d}"
            for k in range(per_class):
                name = f"{wnid}{k:08d}.jpg"
                pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / "images" / name)
                lines.append(f"{name},{wnid}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def make_pickle(path: Path, classes: int = 6, per_class: int = 5, size: int = 84) -> np.ndarray:
    """A tiny pickle in the shared format: ``image_data`` and ``class_dict``."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(classes * per_class, size, size, 3), dtype=np.uint8)
    class_dict = {
        f"n{c:08d}": list(range(c * per_class, (c + 1) * per_class)) for c in range(classes)
    }
    with open(path, "wb") as f:
        pickle.dump({"image_data": images, "class_dict": class_dict}, f)
    return images


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("mini"))


def small(root: Path | str, **kw: object) -> MiniImagenet:
    args: dict[str, object] = dict(
        mode="train", n_way=3, k_shot=1, k_query=2, batchsz=20, resize=8, progress=False
    )
    args.update(kw)
    return MiniImagenet(root, **args)  # type: ignore[arg-type]


def count_opens(monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> list[int]:
    """Count PIL.Image.open calls; optionally raise after ``fail_after`` of them."""
    calls = [0]
    original: Callable[..., Image.Image] = Image.open

    def opener(*args: object, **kwargs: object) -> Image.Image:
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise KeyboardInterrupt("simulated interruption")
        return original(*args, **kwargs)

    monkeypatch.setattr(Image, "open", opener)
    return calls


# ---------------------------------------------------------------------- tasks
def test_task_shapes_dtypes_and_labels(folder: Path) -> None:
    ds = small(folder, n_way=5, k_shot=2, k_query=3, cache_dir=folder / "c1")
    assert len(ds) == 20 and ds.num_classes == 6 and ds.num_images == 30
    x_spt, y_spt, x_qry, y_qry = ds[3]
    assert x_spt.shape == (10, 3, 8, 8) and x_qry.shape == (15, 3, 8, 8)
    assert x_spt.dtype == torch.float32 and y_spt.dtype == torch.long
    assert y_spt.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # class-major
    assert y_qry.tolist() == sorted(y_qry.tolist()) and set(y_qry.tolist()) == set(range(5))
    assert ds[-1][1].shape == (10,)
    with pytest.raises(IndexError, match="20"):
        ds[20]


def test_labels_are_remapped_per_task(folder: Path) -> None:
    ds = small(folder, cache_dir=folder / "c1")
    first_class = set()
    for i in range(len(ds)):
        ep = ds.episode(i)
        owner = {int(r): c for c in range(ds.num_classes) for r in ds.class_rows(c)}
        assert [owner[int(r)] for r in ep.support] == ep.classes[ep.y_spt].tolist()
        assert [owner[int(r)] for r in ep.query] == ep.classes[ep.y_qry].tolist()
        assert not set(ep.support.tolist()) & set(ep.query.tolist())
        first_class.add(int(ep.classes[0]))
    assert len(first_class) > 2  # label 0 means a different class from task to task


def test_normalisation(folder: Path) -> None:
    raw = small(folder, normalize=False, cache_dir=folder / "c1")
    norm = small(folder, cache_dir=folder / "c1")
    x_raw, x_norm = raw[0][0], norm[0][0]
    assert float(x_raw.min()) >= 0.0 and float(x_raw.max()) <= 1.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(x_norm, (x_raw - mean) / std)


def test_seed_determinism(folder: Path) -> None:
    a, b = (
        small(folder, seed=0, cache_dir=folder / "c1"),
        small(folder, seed=0, cache_dir=folder / "c1"),
    )
    c = small(folder, seed=1, cache_dir=folder / "c1")
    for i in (0, 7):
        for u, v in zip(a[i], b[i], strict=True):
            assert torch.equal(u, v)
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], a[1][0])


def test_modes_read_their_own_split(folder: Path) -> None:
    val = small(folder, mode="val", cache_dir=folder / "c1")
    assert all(name.startswith("n01") for name in val.classes)
    assert (folder / "c1" / "val-8px.npy").is_file()


# ---------------------------------------------------------------------- cache
def test_cache_is_built_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    first = small(root)
    cache = root / "cache"
    assert sorted(p.name for p in cache.iterdir()) == ["train-8px.json", "train-8px.npy"]
    header = json.loads((cache / "train-8px.json").read_text())
    assert header["size"] == 8 and len(header["filenames"]) == 12

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(Image, "open", no_decoding)
    second = small(root)
    for u, v in zip(first[5], second[5], strict=True):
        assert torch.equal(u, v)


def test_cached_images_equal_direct_decoding(folder: Path) -> None:
    ds = small(folder, cache_dir=folder / "c1")
    assert ds.files is not None
    rows = np.arange(ds.num_images)
    direct = np.stack([decode_image(f, 8) for f in ds.files])
    np.testing.assert_array_equal(ds.load_images(rows), direct)
    uncached = small(folder, cache=False)
    assert uncached.cache_path is None
    for u, v in zip(ds[4], uncached[4], strict=True):
        assert torch.equal(u, v)


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    count_opens(monkeypatch, fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        small(root)
    assert list((root / "cache").iterdir()) == []  # no cache, no header, no temp file
    monkeypatch.undo()
    small(root)  # a later run builds it
    assert sorted(p.name for p in (root / "cache").iterdir()) == ["train-8px.json", "train-8px.npy"]


def test_build_removes_temp_files_of_killed_builds(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    cache = root / "cache"
    cache.mkdir()
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
    dead = cache / f".train-8px.npy.pid999999999@{host}.x1.tmp"
    live = cache / f".train-8px.npy.pid{os.getpid()}@{host}.x2.tmp"
    remote = cache / ".train-8px.npy.pid999999999@elsewhere.x3.tmp"
    for p in (dead, live, remote):
        p.write_bytes(b"partial")
    small(root)
    assert not dead.exists() and live.exists() and remote.exists()


def test_stale_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    small(root)
    calls = count_opens(monkeypatch)
    small(root)
    assert calls[0] == 0
    # Another file list: drop the last CSV row.
    csv = root / "train.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:-1]) + "\n")
    ds = small(root)
    assert calls[0] == 11 and ds.num_images == 11
    assert ds.cache_path is not None and np.load(ds.cache_path).shape == (11, 8, 8, 3)
    # A header for another size is stale too.
    header = root / "cache" / "train-8px.json"
    data = json.loads(header.read_text())
    header.write_text(json.dumps({**data, "size": 9}))
    small(root)
    assert calls[0] == 22
    # So is a truncated array.
    (root / "cache" / "train-8px.npy").write_bytes(b"\x93NUMPY broken")
    small(root)
    assert calls[0] == 33
    # Another resize gets its own cache.
    small(root, resize=6)
    assert (root / "cache" / "train-6px.npy").is_file() and calls[0] == 44


def test_cache_dir_option(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    ds = small(root, cache_dir=tmp_path / "elsewhere")
    assert ds.cache_path == tmp_path / "elsewhere" / "train-8px.npy"
    assert not (root / "cache").exists()


def test_dataset_pickles_without_copying_the_cache(folder: Path) -> None:
    ds = small(folder, cache_dir=folder / "c1")
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._images is None  # re-opened lazily in the worker
    for u, v in zip(ds[2], clone[2], strict=True):
        assert torch.equal(u, v)


def test_loader_workers_give_the_same_stream(folder: Path) -> None:
    ds = small(folder, batchsz=8, cache_dir=folder / "c1")
    serial = list(TaskLoader(ds, batch_size=4))
    parallel = list(TaskLoader(ds, batch_size=4, num_workers=2))
    assert len(serial) == len(parallel) == 2
    for a, b in zip(serial, parallel, strict=True):
        for u, v in zip(a, b, strict=True):
            assert torch.equal(u, v)


# ---------------------------------------------------------------------- pickle format
def test_pickle_format(tmp_path: Path) -> None:
    images = make_pickle(tmp_path / "mini-imagenet-cache-validation.pkl")
    ds = small(tmp_path, mode="val", resize=84, normalize=False)
    assert ds.source == tmp_path / "mini-imagenet-cache-validation.pkl"
    assert ds.num_classes == 6 and ds.cache_path is None
    ep = ds.episode(0)
    x_spt = ds[0][0]
    expected = torch.from_numpy(images[ep.support]).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(x_spt, expected)
    assert not (tmp_path / "cache").exists()


def test_pickle_file_as_root_and_resize(tmp_path: Path) -> None:
    path = tmp_path / "mini-imagenet-cache-train.pkl"
    make_pickle(path, size=20)
    ds = small(path, resize=10)
    assert ds[0][0].shape == (3, 3, 10, 10)


def test_csv_takes_precedence_over_pickle(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    make_pickle(root / "mini-imagenet-cache-train.pkl")
    assert small(root).source == root / "train.csv"


# ---------------------------------------------------------------------- errors
def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="root folder not found: .*nowhere"):
        small(tmp_path / "nowhere")


def test_missing_split_names_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"test\.csv .*mini-imagenet-cache-test\.pkl"):
        small(tmp_path, mode="test")


def test_root_file_that_is_not_a_pickle(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("filename,label\n")
    with pytest.raises(ValueError, match="folder or a mini-imagenet-cache"):
        small(tmp_path / "train.csv")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("name,class\na.jpg,n01\n", "header 'filename,label'"),
        ("", "header 'filename,label'.*empty file"),
        ("filename,label\n", "lists no images"),
        ("filename,label\na.jpg\n", "line 2"),
        ("filename,label\na.jpg,n01\na.jpg,n02\n", "line 3: image 'a.jpg' is already listed"),
    ],
)
def test_malformed_csv(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "train.csv").write_text(content)
    with pytest.raises(ValueError, match=match):
        small(tmp_path)


@pytest.mark.parametrize("cache", [True, False])
def test_missing_image(tmp_path: Path, cache: bool) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    (root / "images" / "n0000000100000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"n0000000100000002\.jpg .*train\.csv, line 8"):
        small(root, cache=cache)
    assert not (root / "cache").exists() or list((root / "cache").iterdir()) == []


def test_missing_images_folder(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("filename,label\na.jpg,n01\nb.jpg,n01\n")
    with pytest.raises(FileNotFoundError, match="images folder not found"):
        small(tmp_path, n_way=1, k_query=1, k_shot=1)


@pytest.mark.parametrize("cache", [True, False])
def test_corrupt_image_is_named(tmp_path: Path, cache: bool) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    bad = root / "images" / "n0000000200000001.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"cannot decode image .*n0000000200000001\.jpg"):
        ds = small(root, cache=cache, batchsz=200)
        for i in range(len(ds)):  # without a cache, the error comes on access
            ds[i]
    if cache:
        assert list((root / "cache").iterdir()) == []


def test_class_too_small(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    with pytest.raises(ValueError, match=r"class 'n00000000' has 4 images .*fewer than .* = 5"):
        small(root, k_shot=2, k_query=3)


def test_n_way_larger_than_classes(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", classes=3, per_class=4)
    with pytest.raises(ValueError, match="n_way=4 is larger than the 3 classes"):
        small(root, n_way=4)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"n_way": 0}, ValueError, "n_way must be an integer >= 1, got 0"),
        ({"k_shot": -1}, ValueError, "k_shot must be an integer >= 1, got -1"),
        ({"k_query": 1.5}, TypeError, "k_query must be an integer >= 1, got 1.5"),
        ({"batchsz": 0}, ValueError, "batchsz must be an integer >= 1"),
        ({"batchsz": True}, TypeError, "batchsz must be an integer"),
        ({"resize": 0}, ValueError, "resize must be"),
        ({"seed": -3}, ValueError, "seed must be an integer >= 0"),
        ({"mode": "validation"}, ValueError, "mode must be one of 'train', 'val', 'test'"),
    ],
)
def test_bad_arguments(
    folder: Path, kw: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        small(folder, **kw)


def test_bad_pickle(tmp_path: Path) -> None:
    path = tmp_path / "mini-imagenet-cache-train.pkl"
    with open(path, "wb") as f:
        pickle.dump({"images": 1}, f)
    with pytest.raises(ValueError, match="must hold a dict with keys 'image_data'"):
        small(tmp_path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot unpickle .*mini-imagenet-cache-train.pkl"):
        small(tmp_path)


def test_repr(folder: Path) -> None:
    assert "classes=6" in repr(small(folder, cache_dir=folder / "c1"))
