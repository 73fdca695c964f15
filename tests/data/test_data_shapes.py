"""ConfoundedShapes: classes, rendering, and how nuisances are (and are not) tied to labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from metacrl.data import NUISANCES, ConfoundedShapes
from metacrl.data.shapes_classes import make_shape_bank, split_class_ids
from metacrl.data.shapes_nuisance import BACKGROUND_PALETTE, FOREGROUND_PALETTE, NUM_VALUES
from metacrl.data.shapes_render import Poses, render_shapes

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def shapes(mode: str = "train", **kw: object) -> ConfoundedShapes:
    args: dict[str, object] = dict(n_way=5, k_shot=1, k_query=15, batchsz=200)
    args.update(kw)
    return ConfoundedShapes(mode, **args)  # type: ignore[arg-type]


def labels_of(ep: object) -> np.ndarray:
    return np.concatenate([ep.y_spt.numpy(), ep.y_qry.numpy()])  # type: ignore[attr-defined]


def mapped_fraction(ds: ConfoundedShapes, tasks: range) -> float:
    """Fraction of examples whose confounded nuisance shows its label's mapped value."""
    hits = total = 0
    for i in tasks:
        ep = ds.episode(i)
        assert ep.confounder is not None
        col = NUISANCES.index(ep.confounder.attribute)
        mapped = np.asarray(ep.confounder.mapping)[labels_of(ep)]
        hits += int((ep.nuisances[:, col] == mapped).sum())
        total += len(mapped)
    return hits / total


def majority_fraction(ds: ConfoundedShapes, tasks: range, column: int) -> float:
    """Per label, the share of its examples having its most common value of a nuisance."""
    shares = []
    for i in tasks:
        ep = ds.episode(i)
        labels = labels_of(ep)
        for y in range(ds.n_way):
            values = ep.nuisances[labels == y, column]
            shares.append(np.bincount(values, minlength=NUM_VALUES).max() / len(values))
    return float(np.mean(shares))


# ---------------------------------------------------------------------- classes and tasks
def test_class_counts_and_disjoint_splits() -> None:
    ids = {m: set(split_class_ids(m).tolist()) for m in ("train", "val", "test")}
    assert [len(ids[m]) for m in ("train", "val", "test")] == [64, 16, 20]
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert shapes("val").num_classes == 16 and shapes("test").num_classes == 20
    bank = make_shape_bank()
    assert bank.num_classes == 100
    diffs = np.abs(bank.radii[:, None] - bank.radii[None]).max(-1)
    assert diffs[~np.eye(100, dtype=bool)].min() > 0.05  # every class has its own shape
    # Classes depend on class_seed only, not on the episode seed.
    np.testing.assert_array_equal(shapes(seed=0)._radii, shapes(seed=5)._radii)
    assert not np.array_equal(make_shape_bank(1).radii, bank.radii)


def test_task_shapes_and_ranges() -> None:
    ds = shapes("train", n_way=5, k_shot=2, k_query=3, image_size=24)
    x_spt, y_spt, x_qry, y_qry = ds[0]
    assert x_spt.shape == (10, 3, 24, 24) and x_qry.shape == (15, 3, 24, 24)
    assert x_spt.dtype == torch.float32 and y_spt.dtype == torch.long
    assert y_spt.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert y_qry.tolist() == [y for y in range(5) for _ in range(3)]
    assert float(x_spt.min()) >= 0.0 and float(x_qry.max()) <= 1.0
    ep = ds.episode(0)
    assert set(ep.classes.tolist()) <= set(split_class_ids("train").tolist())
    assert len(set(ep.classes.tolist())) == 5


def test_labels_remapped_per_task() -> None:
    ds = shapes("test")
    assert len({int(ds.episode(i).classes[0]) for i in range(20)}) > 5


def test_determinism() -> None:
    a, b, c = shapes(seed=0), shapes(seed=0), shapes(seed=1)
    for i in (0, 9):
        assert all(torch.equal(u, v) for u, v in zip(a[i], b[i], strict=True))
        assert a.confounder_of(i) == b.confounder_of(i)
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], a[1][0])
    assert not torch.equal(shapes("val")[0][0], shapes("test")[0][0])


def test_generation_does_not_use_pil(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("PIL used")

    for name in ("new", "fromarray", "open"):
        monkeypatch.setattr(Image, name, fail)
    shapes()[0]


# ---------------------------------------------------------------------- rendering
def test_nuisances_are_what_the_image_shows() -> None:
    ds = shapes("val", noise=0.0, texture_strength=0.0)
    ep = ds.episode(3)
    x = torch.cat([ep.x_spt, ep.x_qry]).numpy()
    fg_col, bg_col = NUISANCES.index("foreground"), NUISANCES.index("background")
    for img, mask, values in zip(x, ep.masks, ep.nuisances, strict=True):
        # The corners are always background (the shape stays inside the image).
        for corner in (img[:, 0, 0], img[:, -1, -1]):
            np.testing.assert_allclose(corner, BACKGROUND_PALETTE[values[bg_col]], atol=1e-6)
        inside = np.unravel_index(mask.argmax(), mask.shape)
        assert mask[inside] == 1.0
        np.testing.assert_allclose(
            img[:, inside[0], inside[1]], FOREGROUND_PALETTE[values[fg_col]], atol=1e-6
        )


def test_texture_draws_stripes_of_the_given_orientation() -> None:
    plain = shapes("val", noise=0.0, texture_strength=0.0).episode(0)
    striped = shapes("val", noise=0.0, texture_strength=0.5).episode(0)
    np.testing.assert_array_equal(plain.nuisances, striped.nuisances)  # same draws otherwise
    ratio = torch.cat([striped.x_spt, striped.x_qry]) / torch.cat([plain.x_spt, plain.x_qry])
    ratio = ratio[:, 0].numpy()  # the multiplicative stripe pattern, [M, H, W]
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 1.0 + 1e-5
    values = striped.nuisances[:, NUISANCES.index("texture")]
    assert {0, 4} <= set(values.tolist())
    for pattern, value in zip(ratio, values, strict=True):
        along_x, along_y = pattern.std(axis=1).mean(), pattern.std(axis=0).mean()
        if value == 0:  # stripes vary along x only
            assert along_y < 1e-5 < 0.05 < along_x
        elif value == 4:  # 90 degrees: along y only
            assert along_x < 1e-5 < 0.05 < along_y
        else:
            assert min(along_x, along_y) > 0.01


def test_mask_depends_on_class_not_colour() -> None:
    bank = make_shape_bank()
    pose = Poses(np.zeros(4, np.float32), np.full(4, 0.7, np.float32), np.zeros((4, 2), np.float32))
    classes = np.array([3, 3, 10, 40])
    images, masks = render_shapes(
        bank.radii[classes],
        pose,
        FOREGROUND_PALETTE[[0, 5, 0, 0]],
        BACKGROUND_PALETTE[[1, 6, 1, 1]],
        np.zeros(4),
        np.zeros(4),
        size=32,
    )
    np.testing.assert_array_equal(masks[0], masks[1])  # same class, other colours
    assert not np.array_equal(images[0], images[1])
    for a, b in itertools.combinations((0, 2, 3), 2):
        assert np.abs(masks[a] - masks[b]).mean() > 0.05


def test_same_class_shapes_match_better_than_other_classes() -> None:
    """Through the dataset (pose jitter on): centred foreground masks overlap more in a class."""
    ds = shapes("test", n_way=5, k_shot=5, k_query=5, noise=0.0, texture_strength=0.0)
    same, other = [], []
    for i in range(10):
        ep = ds.episode(i)
        x = torch.cat([ep.x_spt, ep.x_qry]).numpy()
        seen = np.tensordot(LUMA, x, axes=([0], [1])) > 0.4  # light shapes on dark backgrounds
        assert (seen == (ep.masks > 0.5)).mean() > 0.98
        centred = [_centre(m) for m in seen]
        labels = labels_of(ep)
        for a, b in itertools.combinations(range(len(labels)), 2):
            (same if labels[a] == labels[b] else other).append(_iou(centred[a], centred[b]))
    assert np.mean(same) > np.mean(other) + 0.08


def _centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return np.roll(mask, (h // 2 - round(ys.mean()), w // 2 - round(xs.mean())), axis=(0, 1))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ---------------------------------------------------------------------- confounding
def test_switch_shares_one_confounder_per_meta_batch() -> None:
    ds = shapes(meta_batch_size=4, rho=0.9)
    assert ds.required_batch_size == 4
    batches = [[ds.confounder_of(4 * b + t) for t in range(4)] for b in range(30)]
    for confs in batches:
        assert confs[0] is not None and all(c == confs[0] for c in confs)
        assert len(set(confs[0].mapping)) == 5
        assert all(ds.episode(4 * batches.index(confs) + t).confounder == confs[0] for t in (0, 3))
    attributes = [confs[0].attribute for confs in batches if confs[0] is not None]
    assert set(attributes) == set(NUISANCES)
    assert any(a != b for a, b in itertools.pairwise(attributes))
    assert len({confs[0].mapping for confs in batches if confs[0] is not None}) > 20


@pytest.mark.parametrize("rho", [0.9, 0.5])
def test_tie_probability_is_rho(rho: float) -> None:
    ds = shapes(rho=rho)
    expected = rho + (1 - rho) / NUM_VALUES  # untied examples hit the mapped value by chance
    assert mapped_fraction(ds, range(16)) == pytest.approx(expected, abs=0.04)


def test_other_nuisances_stay_random_in_a_confounded_batch() -> None:
    ds = shapes(rho=1.0, k_query=15)
    conf = ds.confounder_of(0)
    assert conf is not None
    tied = NUISANCES.index(conf.attribute)
    assert majority_fraction(ds, range(4), tied) == 1.0
    for col in range(len(NUISANCES)):
        if col != tied:
            assert majority_fraction(ds, range(4), col) < 0.45


@pytest.mark.parametrize("mode", ["val", "test"])
def test_meta_test_nuisances_are_independent_of_labels(mode: str) -> None:
    ds = shapes(mode, rho=0.9, confounder="fixed")
    assert ds.confounder_of(0) is None and ds.required_batch_size is None
    for col in range(len(NUISANCES)):
        assert majority_fraction(ds, range(16), col) < 0.45  # ~0.33 by chance for 16 per label
        # The share of examples whose value equals an arbitrary label mapping is chance (1/8).
        hits = [
            np.mean(ds.episode(i).nuisances[:, col] == (3 * labels_of(ds.episode(i)) + 1) % 8)
            for i in range(16)
        ]
        assert np.mean(hits) == pytest.approx(1 / NUM_VALUES, abs=0.04)


def test_rho_zero_is_the_unconfounded_oracle() -> None:
    ds = shapes("train", rho=0.0)
    assert not ds.confounded and ds.confounder_of(0) is None and ds.required_batch_size is None
    for col in range(len(NUISANCES)):
        assert majority_fraction(ds, range(16), col) < 0.45
    assert shapes("train", rho=0.0, n_way=12)[0][0].shape[0] == 12  # no 8-value limit then


@pytest.mark.parametrize("attribute", ["background", "texture"])
def test_fixed_always_ties_the_same_attribute(attribute: str) -> None:
    ds = shapes(confounder="fixed", fixed_attribute=attribute)
    confs = [ds.confounder_of(i) for i in range(0, 200, 3)]
    assert all(c is not None and c.attribute == attribute for c in confs)
    assert len({c.mapping for c in confs if c is not None}) > 10  # mapping redrawn per batch
    assert ds.confounder_of(0) == ds.confounder_of(3) != ds.confounder_of(4)
    col = NUISANCES.index(attribute)
    assert majority_fraction(ds, range(8), col) > 0.8


def test_default_fixed_attribute_is_background() -> None:
    conf = shapes(confounder="fixed").confounder_of(7)
    assert conf is not None and conf.attribute == "background"


def test_task_confounder_varies_within_a_batch() -> None:
    ds = shapes(confounder="task", meta_batch_size=4)
    assert ds.required_batch_size is None
    confs = [ds.confounder_of(i) for i in range(40)]
    within = [len({c for c in confs[4 * b : 4 * b + 4]}) for b in range(10)]
    assert max(within) > 1
    assert len({c.attribute for c in confs if c is not None}) == 3
    assert mapped_fraction(ds, range(8)) == pytest.approx(0.9 + 0.1 / 8, abs=0.05)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("mode", "kw", "error", "match"),
    [
        ("train", {"n_way": 9}, ValueError, "n_way=9: a confounded training task"),
        ("val", {"n_way": 17}, ValueError, "n_way=17 is larger than the 16 classes"),
        ("test", {"n_way": 21}, ValueError, "n_way=21 is larger than the 20 classes"),
        ("train", {"rho": 1.5}, ValueError, "rho must be a number in"),
        ("train", {"confounder": "batch"}, ValueError, "confounder must be one of"),
        ("train", {"fixed_attribute": "shape"}, ValueError, "unknown nuisance 'shape'"),
        ("train", {"meta_batch_size": 0}, ValueError, "meta_batch_size must be"),
        ("train", {"image_size": 2}, ValueError, "image_size must be an integer >= 4"),
        ("train", {"noise": -0.1}, ValueError, "noise must be a finite number >= 0"),
        ("train", {"k_query": 0}, ValueError, "k_query must be"),
        ("eval", {}, ValueError, "mode must be one of"),
    ],
)
def test_bad_arguments(
    mode: str, kw: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        shapes(mode, **kw)


def test_repr_and_index_errors() -> None:
    ds = shapes(batchsz=4)
    assert "confounder='switch'" in repr(ds)
    with pytest.raises(IndexError):
        ds.confounder_of(4)
    with pytest.raises(IndexError):
        ds.episode(-5)
