"""tieredImageNet: the {split}_images.npz + {split}_labels.pkl files, streamed into the cache."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metacrl.data import TaskLoader, TieredImagenet, write_fake_tiered_imagenet
from metacrl.data.tiered_imagenet import npz_images_shape

MODES = ("train", "val", "test")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_tiered_imagenet(
        tmp_path_factory.mktemp("tiered"), (6, 3, 4), images_per_class=5, image_size=12
    )


def small(root: Path, **kw: object) -> TieredImagenet:
    args: dict[str, object] = dict(
        mode="train", n_way=3, k_shot=1, k_query=2, batchsz=20, resize=12, progress=False
    )
    args.update(kw)
    return TieredImagenet(root, **args)  # type: ignore[arg-type]


def labels_of(root: Path, mode: str) -> dict[str, object]:
    with open(root / f"{mode}_labels.pkl", "rb") as f:
        data: dict[str, object] = pickle.load(f)
    return data


def test_class_counts_per_split_and_no_class_in_two_splits(root: Path) -> None:
    splits = {m: small(root, mode=m) for m in MODES}
    assert {m: ds.num_classes for m, ds in splits.items()} == {"train": 6, "val": 3, "test": 4}
    assert all(ds.num_images == 5 * ds.num_classes for ds in splits.values())
    names = [set(ds.classes) for ds in splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert splits["val"].classes == ["n92000006", "n92000007", "n92000008"]


def test_images_are_flipped_from_bgr_to_rgb(root: Path) -> None:
    ds = small(root, mode="val")
    bgr = np.load(root / "val_images.npz")["images"]
    rows = ds.class_rows(1)
    np.testing.assert_array_equal(ds.load_images(rows), bgr[rows][..., ::-1])
    labels = np.asarray(labels_of(root, "val")["label_specific"])
    assert set(labels[rows].tolist()) == {1}


def test_episode_shapes_and_seeded_reproducibility(root: Path) -> None:
    a, b, c = small(root, seed=1), small(root, seed=1), small(root, seed=2)
    x_spt, y_spt, x_qry, y_qry = a[6]
    assert x_spt.shape == (3, 3, 12, 12) and x_qry.shape == (6, 3, 12, 12)
    assert y_spt.tolist() == [0, 1, 2] and y_qry.tolist() == [0, 0, 1, 1, 2, 2]
    for u, v in zip(a[6], b[6], strict=True):
        assert torch.equal(u, v)
    assert not torch.equal(a[6][0], c[6][0])
    batches = list(TaskLoader(small(root, batchsz=8), batch_size=4))
    assert len(batches) == 2 and batches[1][2].shape == (4, 6, 3, 12, 12)


def test_cache_is_streamed_once_then_reused(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "c"
    first = small(root, cache_dir=cache, resize=8)
    assert first.cache_path == cache / "tiered-imagenet-train-8px.npy"
    assert first[0][0].shape == (3, 3, 8, 8)

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr("metacrl.data.tiered_imagenet.build_array_cache", no_rebuild)
    again = small(root, cache_dir=cache, resize=8)
    uncached = small(root, cache=False, resize=8)
    for u, v, w in zip(first[3], again[3], uncached[3], strict=True):
        assert torch.equal(u, v) and torch.equal(u, w)


def test_compressed_archives_and_the_labels_key(tmp_path: Path, root: Path) -> None:
    images = np.load(root / "test_images.npz")["images"]
    np.savez_compressed(tmp_path / "test_images.npz", images=images)
    labels = np.asarray(labels_of(root, "test")["label_specific"])
    with open(tmp_path / "test_labels.pkl", "wb") as f:
        pickle.dump({"labels": labels.tolist()}, f, protocol=2)
    ds = small(tmp_path, mode="test", normalize=False)
    assert ds.classes == ["0000", "0001", "0002", "0003"]  # no names: the labels
    assert npz_images_shape(tmp_path / "test_images.npz") == (20, 12, 12, 3)
    reference = small(root, mode="test", normalize=False)
    for u, v in zip(ds[2], reference[2], strict=True):
        assert torch.equal(u, v)


# ---------------------------------------------------------------------- errors
def test_missing_root_and_files(tmp_path: Path, root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tieredImageNet root folder not found"):
        small(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"train_images\.npz .*train_labels\.pkl"):
        small(tmp_path)
    (tmp_path / "train_images.npz").write_bytes((root / "train_images.npz").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"labels not found: .*train_labels\.pkl"):
        small(tmp_path)


def test_the_png_pickle_format_is_named(tmp_path: Path) -> None:
    with open(tmp_path / "val_images_png.pkl", "wb") as f:
        pickle.dump([np.frombuffer(b"\x89PNG", np.uint8)], f)
    with pytest.raises(ValueError, match=r"val_images_png\.pkl \(Ren et al.'s PNG pickle\)"):
        small(tmp_path, mode="val")


def test_wrong_files_are_named(tmp_path: Path, root: Path) -> None:
    for name in ("train_labels.pkl", "train_images.npz"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    (tmp_path / "train_images.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"train_images\.npz is not an \.npz archive"):
        small(tmp_path)
    np.savez(tmp_path / "train_images.npz", data=np.zeros((30, 12, 12, 3), np.uint8))
    with pytest.raises(ValueError, match=r"holds no 'images' array \(it has data\.npy\)"):
        small(tmp_path)
    np.savez(tmp_path / "train_images.npz", images=np.zeros((30, 12, 12), np.uint8))
    with pytest.raises(ValueError, match=r"'images' must be a uint8 \[N, H, W, 3\] array"):
        small(tmp_path)
    np.savez(tmp_path / "train_images.npz", images=np.zeros((29, 12, 12, 3), np.uint8))
    with pytest.raises(ValueError, match="holds 29 images but .*train_labels.pkl labels 30"):
        small(tmp_path)
    with open(tmp_path / "train_labels.pkl", "wb") as f:
        pickle.dump({"classes": [0, 1]}, f)
    with pytest.raises(ValueError, match="not a tieredImageNet labels file: .*'label_specific'"):
        small(tmp_path)


def test_a_truncated_archive_leaves_no_cache(tmp_path: Path, root: Path) -> None:
    (tmp_path / "val_labels.pkl").write_bytes((root / "val_labels.pkl").read_bytes())
    with zipfile.ZipFile(root / "val_images.npz") as whole:
        member = whole.read("images.npy")
    with zipfile.ZipFile(tmp_path / "val_images.npz", "w") as cut:
        cut.writestr("images.npy", member[: len(member) - 100])
    with pytest.raises(ValueError, match=r"val_images\.npz is truncated"):
        small(tmp_path, mode="val")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_class_with_too_few_images(root: Path) -> None:
    with pytest.raises(ValueError, match=r"class 'n92000000' has 5 images .*= 6"):
        small(root, k_shot=1, k_query=5)
