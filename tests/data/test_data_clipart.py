"""ConfoundedClipart on tiny clip-art trees written in the real format (PNG folders)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metacrl.data import NUISANCES, ConfoundedClipart, TaskLoader
from metacrl.data.clipart_files import decode_drawing, scan_clipart
from metacrl.data.confounded_clipart import clipart_splits
from metacrl.data.shapes_nuisance import BACKGROUND_PALETTE, FOREGROUND_PALETTE

from helpers import write_clipart


@pytest.fixture
def art(tmp_path: Path) -> Path:
    return write_clipart(tmp_path / "png")


def make(art: Path, mode: str = "train", **kwargs) -> ConfoundedClipart:
    settings = dict(
        n_way=2, k_shot=1, k_query=2, image_size=8, batchsz=8, meta_batch_size=2, min_images=4
    )
    settings.update(kwargs)
    return ConfoundedClipart(
        mode, root=art, cache_dir=art.parent / "cache", progress=False, **settings
    )


def test_classes_per_split_are_disjoint_and_cover_the_folders(art):
    splits = {mode: make(art, mode).classes for mode in ("train", "val", "test")}
    assert [len(splits[m]) for m in ("train", "val", "test")] == [6, 2, 2]
    names = [n for m in splits for n in splits[m]]
    assert len(set(names)) == 10 == len(names)
    assert set(names) == {f"group{c % 3}/class{c}" for c in range(10)}
    assert splits == clipart_splits(names)  # the split is a function of the names


def test_symlinks_excluded_folders_small_folders_and_huge_drawings_are_not_classes(art):
    first = art / "group0" / "class0"
    linked = art / "linked"
    linked.mkdir()
    for i, f in enumerate(sorted(first.iterdir())):
        os.symlink(f, linked / f"l{i}.png")  # repeats of another folder's drawings
    stars = art / "shapes" / "stars"
    stars.mkdir(parents=True)
    for i in range(5):
        Image.new("L", (6, 6)).save(stars / f"star_{i}pt.png")
    few = art / "few"
    few.mkdir()
    Image.new("L", (6, 6)).save(few / "only.png")
    big = art / "group0" / "class3" / "poster.png"
    Image.new("1", (2100, 2000)).save(big)  # 4.2 MP: more than MAX_PIXELS
    found = scan_clipart(art, min_images=4)
    assert set(found) == {f"group{c % 3}/class{c}" for c in range(10)}
    assert big not in found["group0/class3"] and len(found["group0/class3"]) == 4


def test_episode_shapes_labels_and_pixel_range(art):
    x_spt, y_spt, x_qry, y_qry = make(art, k_shot=2, k_query=1)[3]
    assert tuple(x_spt.shape) == (4, 3, 8, 8) and tuple(x_qry.shape) == (2, 3, 8, 8)
    assert x_spt.dtype == torch.float32 and 0.0 <= float(x_spt.min()) <= float(x_spt.max()) <= 1
    assert y_spt.tolist() == [0, 0, 1, 1] and y_qry.tolist() == [0, 1]


def test_tasks_are_seeded_and_the_cache_is_reused(art):
    a, b = make(art, seed=3), make(art, seed=3)
    for t1, t2 in zip(a[5], b[5], strict=True):
        assert torch.equal(t1, t2)
    assert not torch.equal(a[5][0], make(art, seed=4)[5][0])
    assert not torch.equal(a[5][0], a[6][0])
    cache = sorted(p.name for p in (art.parent / "cache").iterdir())
    assert cache == ["clipart-8.json", "clipart-8.npy"]  # one cache for all splits


def test_the_cache_is_not_rebuilt(art, monkeypatch):
    make(art)

    def fail(path, size):
        raise AssertionError("decoded again")

    monkeypatch.setattr("metacrl.data.confounded_clipart.decode_drawing", fail)
    make(art, "test")[0]


def test_training_tasks_tie_one_nuisance_to_the_label_per_meta_batch(art):
    ds = make(art, rho=1.0, n_way=3, k_query=3, batchsz=4)
    for index in range(4):
        ep = ds.episode(index)
        assert ep.confounder == ds.confounder_of(index - index % 2)  # shared by the batch
        column = NUISANCES.index(ep.confounder.attribute)
        labels = np.concatenate([ep.y_spt.numpy(), ep.y_qry.numpy()])
        assert ep.nuisances[:, column].tolist() == [ep.confounder.mapping[y] for y in labels]
    for mode in ("val", "test"):
        assert make(art, mode, rho=1.0).episode(0).confounder is None
    assert make(art, rho=0.0).episode(0).confounder is None


def test_images_paint_the_ink_in_the_ink_colour_over_the_paper_colour(art):
    ep = make(art, rho=0.0, noise=0.0, texture_strength=0.0).episode(0)
    assert ep.masks.shape == (6, 8, 8) and 0.0 <= ep.masks.min() < ep.masks.max() <= 1.0
    fg = FOREGROUND_PALETTE[ep.nuisances[:, NUISANCES.index("foreground")]][:, :, None, None]
    bg = BACKGROUND_PALETTE[ep.nuisances[:, NUISANCES.index("background")]][:, :, None, None]
    expected = bg + (fg - bg) * ep.masks[:, None]
    x = torch.cat([ep.x_spt, ep.x_qry]).numpy()
    assert np.allclose(x, expected, atol=1e-6)


def test_decode_flattens_transparency_onto_white_and_keeps_ink_dark(tmp_path):
    rgba = np.zeros((10, 20, 4), dtype=np.uint8)
    rgba[:, :10] = (0, 0, 0, 255)  # left half: opaque black ink; right half: transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "d.png")
    grey = decode_drawing(tmp_path / "d.png", 10)
    assert grey.shape == (10, 10, 3) and (grey[..., 0] == grey[..., 2]).all()
    assert grey[:2].min() == 255  # padding above the (wide) drawing is paper
    assert grey[5, 1, 0] < 30 and grey[5, 8, 0] > 225  # ink on the left, paper on the right


def test_loader_takes_whole_meta_batches(art):
    batches = list(TaskLoader(make(art), batch_size=2))
    assert len(batches) == 4 and tuple(batches[0][0].shape) == (2, 2, 3, 8, 8)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"root": "missing"}, FileNotFoundError, "apt-get install openclipart-png"),
        ({"min_images": 5}, ValueError, "0 folders with >= 5 PNG drawings"),
        ({"k_query": 4}, ValueError, "has 4 drawings, fewer than k_shot \\+ k_query = 5"),
        ({"n_way": 7}, ValueError, "n_way=7 is larger than the 6 classes of the 'train' split"),
        ({"mode": "dev"}, ValueError, "mode must be one of 'train', 'val', 'test'"),
    ],
)
def test_bad_input_is_named(art, change, error, message):
    if change.get("root") == "missing":
        change = {"root": art / "nothing"}
    settings = dict(
        n_way=2, k_shot=1, k_query=2, image_size=8, batchsz=8, meta_batch_size=2, min_images=4
    )
    settings.update(change)
    mode = settings.pop("mode", "train")
    root = settings.pop("root", art)
    with pytest.raises(error, match=message):
        ConfoundedClipart(mode, root=root, cache_dir=art.parent / "c", progress=False, **settings)


def test_a_file_that_is_not_a_png_is_named(art):
    bad = art / "group0" / "class0" / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read drawing .*broken.png"):
        scan_clipart(art, min_images=4)
