"""Omniglot: torchvision's folder layout, MAML's protocol, the shared cache and clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metacrl.data import Omniglot, TaskLoader, write_fake_omniglot
from metacrl.data.image_decode import decode_image
from metacrl.data.omniglot import OMNIGLOT_SPLIT, omniglot_characters

SPLIT = (4, 2)  # train, val characters of the tiny data; test gets the other 3


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_omniglot(
        tmp_path_factory.mktemp("omni"), (6, 3), images_per_character=5, image_size=20
    )


def small(root: Path, **kw: object) -> Omniglot:
    args: dict[str, object] = dict(
        mode="train",
        n_way=3,
        k_shot=1,
        k_query=2,
        batchsz=20,
        resize=12,
        split_characters=SPLIT,
        progress=False,
    )
    args.update(kw)
    return Omniglot(root, **args)  # type: ignore[arg-type]


def test_the_protocol_constants_are_mamls() -> None:
    assert OMNIGLOT_SPLIT == (1100, 100)  # 1200 meta-training characters, the last 100 val


def test_class_counts_per_split_with_rotations(root: Path) -> None:
    counts = {m: small(root, mode=m) for m in ("train", "val", "test")}
    assert {m: ds.num_classes for m, ds in counts.items()} == {"train": 16, "val": 8, "test": 12}
    assert {m: len(ds.characters) for m, ds in counts.items()} == {"train": 4, "val": 2, "test": 3}
    assert all(len(ds.class_rows(c)) == 5 for ds in counts.values() for c in range(ds.num_classes))
    plain = small(root, rotations=False)
    assert plain.num_classes == 4 and plain.classes == plain.characters


def test_background_characters_come_first_in_sorted_order(root: Path) -> None:
    names = list(omniglot_characters(root))
    assert names == sorted(names) and len(names) == 9
    assert small(root).characters == names[:4]
    assert small(root, mode="test").characters == names[6:]
    assert all(c.startswith("images_evaluation/") for c in small(root, mode="test").characters)


def test_no_class_or_character_is_in_two_splits(root: Path) -> None:
    splits = [small(root, mode=m) for m in ("train", "val", "test")]
    classes = [set(ds.classes) for ds in splits]
    characters = [set(ds.characters) for ds in splits]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not classes[a] & classes[b] and not characters[a] & characters[b]


def test_episode_shapes_grey_images_and_labels(root: Path) -> None:
    ds = small(root, n_way=5, k_shot=2, k_query=3)
    x_spt, y_spt, x_qry, y_qry = ds[7]
    assert x_spt.shape == (10, 1, 12, 12) and x_qry.shape == (15, 1, 12, 12)
    assert x_spt.dtype == torch.float32 and y_spt.dtype == torch.long
    assert float(x_spt.min()) >= 0.0 and float(x_spt.max()) <= 1.0
    assert y_spt.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert y_qry.tolist() == sorted(y_qry.tolist())


def test_rotations_are_the_turned_images(root: Path) -> None:
    ds = small(root, cache=False)
    assert ds.classes[:4] == [f"{ds.characters[0]}/rot{d:03d}" for d in (0, 90, 180, 270)]
    upright = ds.load_images(ds.class_rows(0))
    direct = np.stack([decode_image(f, 12)[..., :1] for f in ds.files[:5]])
    np.testing.assert_array_equal(upright, direct)
    for turn in (1, 2, 3):
        turned = ds.load_images(ds.class_rows(turn))
        np.testing.assert_array_equal(turned, np.rot90(upright, turn, axes=(1, 2)))


def test_seeded_reproducibility(root: Path) -> None:
    a, b, c = small(root, seed=3), small(root, seed=3), small(root, seed=4)
    for i in (0, 11):
        for u, v in zip(a[i], b[i], strict=True):
            assert torch.equal(u, v)
    assert not torch.equal(a[0][0], c[0][0])
    assert [a.episode(i).classes.tolist() for i in range(5)] != [
        small(root, mode="val").episode(i).classes.tolist() for i in range(5)
    ]


def test_cache_is_built_once_for_all_splits_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_fake_omniglot(tmp_path / "o", (6, 3), images_per_character=5, image_size=10)
    first = small(root)
    assert sorted(p.name for p in (root / "cache").iterdir()) == [
        "omniglot-12px.json",
        "omniglot-12px.npy",
    ]

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(Image, "open", no_decoding)
    small(root, mode="test")
    for u, v in zip(first[3], small(root)[3], strict=True):
        assert torch.equal(u, v)


def test_cache_dir_and_uncached_access_agree(root: Path, tmp_path: Path) -> None:
    cached = small(root, cache_dir=tmp_path / "c")
    assert cached.cache_path == tmp_path / "c" / "omniglot-12px.npy"
    uncached = small(root, cache=False)
    assert uncached.cache_path is None
    for u, v in zip(cached[5], uncached[5], strict=True):
        assert torch.equal(u, v)


def test_task_loader_and_workers_give_the_same_stream(root: Path) -> None:
    ds = small(root, batchsz=8)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._images is None  # a worker re-opens the memory map
    serial = list(TaskLoader(ds, batch_size=4))
    parallel = list(TaskLoader(clone, batch_size=4, num_workers=2))
    assert serial[0][0].shape == (4, 3, 1, 12, 12)
    for a, b in zip(serial, parallel, strict=True):
        for u, v in zip(a, b, strict=True):
            assert torch.equal(u, v)


def test_torchvisions_root_or_the_omniglot_py_folder(root: Path) -> None:
    assert small(root / "omniglot-py").classes == small(root).classes


# ---------------------------------------------------------------------- errors
def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Omniglot root folder not found: .*nowhere"):
        small(tmp_path / "nowhere")


def test_missing_evaluation_folder(tmp_path: Path) -> None:
    root = write_fake_omniglot(tmp_path, (3, 1), images_per_character=2, image_size=8)
    for png in (root / "omniglot-py" / "images_evaluation").rglob("*.png"):
        png.unlink()
    for folder in sorted((root / "omniglot-py" / "images_evaluation").rglob("*"), reverse=True):
        folder.rmdir()
    (root / "omniglot-py" / "images_evaluation").rmdir()
    with pytest.raises(FileNotFoundError, match=r"Omniglot folder not found: .*images_evaluation"):
        small(root)


def test_too_few_characters_for_the_split(root: Path) -> None:
    with pytest.raises(ValueError, match="found 9 Omniglot characters .* more than 1100 train"):
        small(root, split_characters=OMNIGLOT_SPLIT)


def test_a_class_with_too_few_images(root: Path) -> None:
    with pytest.raises(ValueError, match=r"class '.*rot000' has 5 images .*fewer than .* = 6"):
        small(root, k_shot=1, k_query=5)


def test_a_corrupt_png_is_named(tmp_path: Path) -> None:
    root = write_fake_omniglot(tmp_path, (3, 1), images_per_character=3, image_size=8)
    bad = next((root / "omniglot-py" / "images_background").rglob("*.png"))
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"cannot decode image .*{bad.name}"):
        small(root, split_characters=(2, 1), n_way=2, k_query=1)
    assert [p.name for p in (root / "cache").iterdir()] == []


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"split_characters": (3,)}, "split_characters must give"),
        ({"split_characters": (0, 1)}, r"split_characters\[0\] must be an integer >= 1"),
        ({"mode": "validation"}, "mode must be one of"),
        ({"n_way": 99}, "n_way=99 is larger than the 16 classes"),
    ],
)
def test_bad_arguments(root: Path, kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small(root, **kw)
