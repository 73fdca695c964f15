"""CIFAR-FS and FC100: CIFAR-100's python files, the published splits, the cache, clear errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from metacrl.data import CIFARFS, FC100, TaskLoader, write_fake_cifar100
from metacrl.data.cifar import (
    CIFAR100_SUPERCLASSES,
    CIFAR_FS_SPLITS,
    FC100_SPLITS,
    read_cifar100,
)

MODES = ("train", "val", "test")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_cifar100(tmp_path_factory.mktemp("cifar"), images_per_class=(3, 1))


def small(kind: type[CIFARFS] | type[FC100], root: Path, **kw: object) -> CIFARFS | FC100:
    args: dict[str, object] = dict(
        mode="train", n_way=3, k_shot=1, k_query=2, batchsz=20, progress=False
    )
    args.update(kw)
    return kind(root, **args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the published splits
def test_cifar_fs_split_lists_are_64_16_20_disjoint_and_cover_cifar100() -> None:
    sizes = {m: len(CIFAR_FS_SPLITS[m]) for m in MODES}
    assert sizes == {"train": 64, "val": 16, "test": 20}
    union = [c for m in MODES for c in CIFAR_FS_SPLITS[m]]
    every = {c for classes in CIFAR100_SUPERCLASSES.values() for c in classes}
    assert len(set(union)) == len(union) == 100 and set(union) == every


def test_fc100_splits_are_tadams_superclasses() -> None:
    index = {name: k for k, name in enumerate(CIFAR100_SUPERCLASSES)}
    assert len(index) == 20 and list(index) == sorted(index)  # CIFAR-100's label order
    indices = {m: sorted(index[s] for s in FC100_SPLITS[m]) for m in MODES}
    assert indices == {
        "train": [1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19],
        "val": [8, 11, 13, 16],
        "test": [0, 7, 12, 14],
    }


@pytest.mark.parametrize(
    ("kind", "counts"),
    [
        (CIFARFS, {"train": 64, "val": 16, "test": 20}),
        (FC100, {"train": 60, "val": 20, "test": 20}),
    ],
)
def test_class_counts_per_split_and_no_class_in_two_splits(
    root: Path, kind: type[CIFARFS] | type[FC100], counts: dict[str, int]
) -> None:
    splits = {m: small(kind, root, mode=m) for m in MODES}
    assert {m: ds.num_classes for m, ds in splits.items()} == counts
    assert all(ds.num_images == 4 * ds.num_classes for ds in splits.values())  # train + test
    names = [set(ds.classes) for ds in splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert len(names[0] | names[1] | names[2]) == 100


def test_fc100_splits_keep_superclasses_whole(root: Path) -> None:
    for mode in MODES:
        ds = small(FC100, root, mode=mode)
        expected = {c for s in FC100_SPLITS[mode] for c in CIFAR100_SUPERCLASSES[s]}
        assert set(ds.classes) == expected


def test_images_are_the_files_pixels(root: Path) -> None:
    ds = small(CIFARFS, root, normalize=False, cache=False)
    with open(root / "cifar-100-python" / "train", "rb") as f:
        entry = pickle.load(f)
    first = entry["data"][0].reshape(3, 32, 32)  # the red, green and blue planes
    row = 0  # the pooled rows start with the train file
    np.testing.assert_array_equal(ds.load_images(np.array([row]))[0], first.transpose(1, 2, 0))
    x = ds[0][0]
    assert x.shape == (3, 3, 32, 32) and float(x.max()) <= 1.0


def test_episode_shapes_and_seeded_reproducibility(root: Path) -> None:
    a, b = small(CIFARFS, root, seed=5, k_shot=2), small(CIFARFS, root, seed=5, k_shot=2)
    c = small(CIFARFS, root, seed=6, k_shot=2)
    x_spt, y_spt, x_qry, y_qry = a[4]
    assert x_spt.shape == (6, 3, 32, 32) and x_qry.shape == (6, 3, 32, 32)
    assert y_spt.tolist() == [0, 0, 1, 1, 2, 2] and y_qry.tolist() == [0, 0, 1, 1, 2, 2]
    for u, v in zip(a[4], b[4], strict=True):
        assert torch.equal(u, v)
    assert not torch.equal(a[4][0], c[4][0])
    batches = list(TaskLoader(small(FC100, root, batchsz=8), batch_size=4))
    assert len(batches) == 2 and batches[0][0].shape == (4, 3, 3, 32, 32)


def test_bytes_keys_read_the_same(tmp_path: Path, root: Path) -> None:
    other = write_fake_cifar100(tmp_path, images_per_class=(3, 1), bytes_keys=True)
    a, b = read_cifar100(root), read_cifar100(other)
    assert a.fine_names == b.fine_names and a.keys == b.keys
    np.testing.assert_array_equal(a.images, b.images)


def test_one_cache_shared_by_cifar_fs_and_fc100(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    fs = small(CIFARFS, root, cache_dir=cache, resize=16)
    assert fs.cache_path == cache / "cifar100-16px.npy"
    assert sorted(os.listdir(cache)) == ["cifar100-16px.json", "cifar100-16px.npy"]
    assert fs[0][0].shape == (3, 3, 16, 16)

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr("metacrl.data.cifar.build_array_cache", no_rebuild)
    fc = small(FC100, root, cache_dir=cache, resize=16, mode="test")
    assert fc.cache_path == fs.cache_path
    uncached = small(CIFARFS, root, cache=False, resize=16)
    for u, v in zip(fs[2], uncached[2], strict=True):
        assert torch.equal(u, v)


def test_default_cache_goes_under_root(tmp_path: Path) -> None:
    root = write_fake_cifar100(tmp_path, images_per_class=(2, 1))
    ds = small(CIFARFS, root)
    assert ds.cache_path == root / "cache" / "cifar100-32px.npy" and ds.cache_path.is_file()
    assert small(CIFARFS, root / "cifar-100-python").classes == ds.classes


# ---------------------------------------------------------------------- errors
def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CIFAR-100 folder not found: .*cifar-100-python"):
        small(CIFARFS, tmp_path)


def test_missing_test_file(tmp_path: Path) -> None:
    root = write_fake_cifar100(tmp_path, images_per_class=(2, 1))
    (root / "cifar-100-python" / "test").unlink()
    with pytest.raises(FileNotFoundError, match=r"CIFAR-100 file not found: .*test \(the test"):
        small(CIFARFS, root)


def test_a_cifar10_file_is_named(tmp_path: Path) -> None:
    root = write_fake_cifar100(tmp_path, images_per_class=(2, 1))
    path = root / "cifar-100-python" / "train"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"train is not a CIFAR-100 python file: .*CIFAR-10's"):
        small(CIFARFS, root)


def test_garbage_and_code_running_pickles_are_refused(tmp_path: Path) -> None:
    root = write_fake_cifar100(tmp_path, images_per_class=(2, 1))
    meta = root / "cifar-100-python" / "meta"
    meta.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot unpickle .*meta"):
        small(CIFARFS, root)

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, ("echo hacked",)

    meta.write_bytes(pickle.dumps({"fine_label_names": Exploit()}))
    with pytest.raises(ValueError, match="refused to load"):
        small(CIFARFS, root)


def test_wrong_pixel_array(tmp_path: Path) -> None:
    root = write_fake_cifar100(tmp_path, images_per_class=(2, 1))
    path = root / "cifar-100-python" / "test"
    with open(path, "rb") as f:
        entry = pickle.load(f)
    entry["data"] = entry["data"][:, :100]
    with open(path, "wb") as f:
        pickle.dump(entry, f)
    with pytest.raises(ValueError, match=r"test: 'data' must be uint8 \[N, 3072\]"):
        small(CIFARFS, root)


def test_a_meta_file_without_the_split_classes(tmp_path: Path) -> None:
    root = write_fake_cifar100(tmp_path, images_per_class=(2, 1))
    path = root / "cifar-100-python" / "meta"
    with open(path, "rb") as f:
        meta = pickle.load(f)
    meta["fine_label_names"] = [n.replace("dolphin", "dolfin") for n in meta["fine_label_names"]]
    with open(path, "wb") as f:
        pickle.dump(meta, f)
    with pytest.raises(ValueError, match="does not name the CIFAR-FS classes 'dolphin'"):
        small(CIFARFS, root)


def test_a_class_with_too_few_images(root: Path) -> None:
    with pytest.raises(ValueError, match=r"class '.*' has 4 images in CIFAR-FS .*= 5"):
        small(CIFARFS, root, k_shot=2, k_query=3)
