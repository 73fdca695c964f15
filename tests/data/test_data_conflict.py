"""Conflict test tasks of the confounded benchmarks: one tie in the support set, another in the
query set; and neutral tasks left exactly as they were before conflict tasks existed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metacrl.data import (
    NUISANCES,
    ConfoundedClipart,
    ConfoundedEpisode,
    ConfoundedShapes,
    TaskLoader,
)
from metacrl.data.confounding import (
    Confounder,
    draw_conflict,
    draw_conflict_nuisances,
    draw_nuisances,
)
from metacrl.data.shapes_nuisance import NUM_VALUES

from helpers import write_clipart


def shapes(mode: str = "test", **kw: object) -> ConfoundedShapes:
    args: dict[str, object] = dict(n_way=5, k_shot=1, k_query=15, batchsz=64)
    args.update(kw)
    return ConfoundedShapes(mode, **args)  # type: ignore[arg-type]


def conflict_shapes(mode: str = "test", **kw: object) -> ConfoundedShapes:
    return shapes(mode, eval_confounding="conflict", **kw)


def clipart(art: Path, mode: str = "test", **kw: object) -> ConfoundedClipart:
    args: dict[str, object] = dict(
        n_way=2, k_shot=1, k_query=2, image_size=8, batchsz=8, meta_batch_size=2, min_images=4
    )
    args.update(kw)
    return ConfoundedClipart(
        mode,
        root=art,
        cache_dir=art.parent / "cache",
        progress=False,
        **args,  # type: ignore[arg-type]
    )


@pytest.fixture
def art(tmp_path: Path) -> Path:
    return write_clipart(tmp_path / "png")


def tied_values(ep: ConfoundedEpisode) -> tuple[np.ndarray, np.ndarray]:
    """The tied nuisance's values of the support and of the query examples."""
    assert ep.confounder is not None
    column = NUISANCES.index(ep.confounder.attribute)
    n_spt = len(ep.y_spt)
    return ep.nuisances[:n_spt, column], ep.nuisances[n_spt:, column]


def assert_conflict(ep: ConfoundedEpisode) -> None:
    """Support shows the support mapping, query the query mapping, which moves every label."""
    support, query = ep.confounder, ep.query_confounder
    assert support is not None and query is not None
    assert support.attribute == query.attribute
    assert sorted(support.mapping) == sorted(query.mapping)  # the support values, relabelled
    assert len(set(support.mapping)) == len(support.mapping)
    assert all(s != q for s, q in zip(support.mapping, query.mapping, strict=True))
    spt, qry = tied_values(ep)
    # rho is 1: every example shows its label's mapped value
    assert spt.tolist() == [support.mapping[y] for y in ep.y_spt.tolist()]
    assert qry.tolist() == [query.mapping[y] for y in ep.y_qry.tolist()]


# ---------------------------------------------------------------------- conflict tasks
@pytest.mark.parametrize("mode", ["val", "test"])
@pytest.mark.parametrize("rho", [0.9, 0.0])
def test_conflict_tasks_tie_support_and_query_by_two_mappings(mode: str, rho: float) -> None:
    ds = conflict_shapes(mode, rho=rho)  # rho is for training tasks: conflicts always tie
    assert ds.conflict and not ds.confounded and ds.required_batch_size is None
    for index in range(12):
        ep = ds.episode(index)
        assert_conflict(ep)
        assert ep.confounder == ds.confounder_of(index)
        assert ep.query_confounder == ds.query_confounder_of(index)


def test_a_nuisance_reader_gets_every_query_wrong() -> None:
    ds = conflict_shapes(n_way=4, k_shot=3, k_query=5)
    for index in range(8):
        ep = ds.episode(index)
        spt, qry = tied_values(ep)
        by_value = {int(v): y for v, y in zip(spt, ep.y_spt.tolist(), strict=True)}
        read = np.array([by_value[int(v)] for v in qry])  # the label the nuisance says
        assert not np.any(read == ep.y_qry.numpy())


def test_conflicts_vary_over_tasks_and_leave_the_other_nuisances_uniform() -> None:
    ds = conflict_shapes()
    eps = [ds.episode(i) for i in range(48)]
    attributes = [ep.confounder.attribute for ep in eps if ep.confounder is not None]
    assert set(attributes) == set(NUISANCES)
    assert len({(ep.confounder, ep.query_confounder) for ep in eps}) > 40
    for ep in eps[:16]:
        tied = NUISANCES.index(ep.confounder.attribute)  # type: ignore[union-attr]
        labels = np.concatenate([ep.y_spt.numpy(), ep.y_qry.numpy()])
        for column in set(range(len(NUISANCES))) - {tied}:
            shares = [
                np.bincount(ep.nuisances[labels == y, column], minlength=NUM_VALUES).max() / 16
                for y in range(ds.n_way)
            ]
            assert np.mean(shares) < 0.5  # ~0.33 by chance for 16 examples per label


def test_a_conflict_task_is_its_neutral_task_with_the_tied_nuisance_changed() -> None:
    neutral, conflict = shapes(), conflict_shapes()
    for index in range(6):
        a, b = neutral.episode(index), conflict.episode(index)
        assert np.array_equal(a.classes, b.classes) and np.array_equal(a.masks, b.masks)
        assert torch.equal(a.y_spt, b.y_spt) and torch.equal(a.y_qry, b.y_qry)
        tied = NUISANCES.index(b.confounder.attribute)  # type: ignore[union-attr]
        others = [c for c in range(len(NUISANCES)) if c != tied]
        assert np.array_equal(a.nuisances[:, others], b.nuisances[:, others])
        assert not np.array_equal(a.nuisances[:, tied], b.nuisances[:, tied])


def test_conflict_tasks_are_seeded() -> None:
    a, b, other = conflict_shapes(seed=3), conflict_shapes(seed=3), conflict_shapes(seed=4)
    for index in (0, 7, -1):
        ea, eb = a.episode(index), b.episode(index)
        assert all(torch.equal(x, y) for x, y in zip(ea.tensors(), eb.tensors(), strict=True))
        assert np.array_equal(ea.nuisances, eb.nuisances)
        assert (ea.confounder, ea.query_confounder) == (eb.confounder, eb.query_confounder)
    assert not torch.equal(a[0][0], other[0][0])
    assert not torch.equal(a[0][0], a[1][0])
    batch = next(iter(TaskLoader(a, batch_size=4)))
    assert tuple(batch[0].shape) == (4, 5, 3, 32, 32)
    assert torch.equal(batch[2][1], a[1][2])


def test_conflict_tasks_on_clipart(art: Path) -> None:
    ds = clipart(art, "test", n_way=2, k_query=3, eval_confounding="conflict")
    for index in range(8):
        ep = ds.episode(index)
        assert_conflict(ep)
        assert ep.query_confounder == ds.query_confounder_of(index)
    neutral = clipart(art, "test", n_way=2, k_query=3)
    a, b = neutral.episode(2), ds.episode(2)
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.classes, b.classes)
    assert "eval_confounding='conflict'" in repr(ds) and "eval_confounding" not in repr(neutral)


# ---------------------------------------------------------------------- neutral tasks unchanged
@pytest.mark.parametrize(("mode", "index"), [("val", 0), ("val", 5), ("test", 0), ("test", 5)])
def test_neutral_is_the_default_and_ties_nothing(mode: str, index: int) -> None:
    default = ConfoundedShapes(mode, n_way=3, k_shot=2, k_query=2, image_size=16, batchsz=8)
    explicit = ConfoundedShapes(
        mode, n_way=3, k_shot=2, k_query=2, image_size=16, batchsz=8, eval_confounding="neutral"
    )
    ep = default.episode(index)
    again = explicit.episode(index)
    assert all(torch.equal(x, y) for x, y in zip(ep.tensors(), again.tensors(), strict=True))
    assert ep.confounder is None and ep.query_confounder is None
    assert explicit.query_confounder_of(index) is None and repr(explicit) == repr(default)


def test_neutral_clipart_is_the_default(art: Path) -> None:
    for mode, index in [("val", 0), ("test", 5)]:
        ep = clipart(art, mode).episode(index)
        again = clipart(art, mode, eval_confounding="neutral").episode(index)
        assert all(torch.equal(x, y) for x, y in zip(ep.tensors(), again.tensors(), strict=True))
        assert ep.confounder is None and ep.query_confounder is None


def test_training_tasks_keep_their_confounders() -> None:
    ds = shapes("train", meta_batch_size=4)
    ep = ds.episode(5)
    assert ep.confounder == ds.confounder_of(4) and ep.query_confounder is None
    assert ds.query_confounder_of(5) is None


# ---------------------------------------------------------------------- drawing conflicts
def test_the_query_mapping_is_a_uniform_derangement_of_the_support_mapping() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        support, query = draw_conflict(rng, 3)
        sigma = tuple(support.mapping.index(v) for v in query.mapping)
        assert all(j != s for j, s in enumerate(sigma))
        seen.add(sigma)
    assert seen == {(1, 2, 0), (2, 0, 1)}  # both derangements of three labels
    support, query = draw_conflict(np.random.default_rng(1), 2)
    assert query.mapping == support.mapping[::-1]  # two labels: the only derangement, a swap


def test_conflict_nuisances_use_the_generator_as_neutral_ones_do() -> None:
    y_spt, y_qry = np.array([0, 1]), np.array([0, 0, 1, 1])
    s, q = Confounder("background", (2, 6)), Confounder("background", (6, 2))
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    values = draw_conflict_nuisances(rng_a, y_spt, y_qry, s, q)
    neutral = draw_nuisances(rng_b, np.concatenate([y_spt, y_qry]), None, rho=0.9)
    assert values[:, 1].tolist() == [2, 6, 6, 6, 2, 2]
    assert np.array_equal(values[:, [0, 2]], neutral[:, [0, 2]])
    assert rng_a.random() == rng_b.random()  # the same numbers were drawn
    with pytest.raises(ValueError, match="a conflict ties one nuisance, got 'background'"):
        draw_conflict_nuisances(rng_a, y_spt, y_qry, s, Confounder("texture", (6, 2)))


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("mode", "kw", "match"),
    [
        ("train", {}, r"eval_confounding='conflict' makes val/test tasks, not training tasks"),
        ("test", {"n_way": 1}, r"conflict tasks need n_way >= 2 .*got n_way=1"),
        ("val", {"n_way": 9, "rho": 0.0}, r"use n_way <= 8, got n_way=9"),
        (
            "test",
            {"eval_confounding": "opposite"},
            r"eval_confounding must be one of 'neutral', 'conflict', got 'opposite'",
        ),
        ("test", {"eval_confounding": None}, r"eval_confounding must be one of"),
    ],
)
def test_bad_conflict_settings_are_named(mode: str, kw: dict[str, object], match: str) -> None:
    kw.setdefault("eval_confounding", "conflict")
    with pytest.raises(ValueError, match=match) as info:
        shapes(mode, **kw)
    assert "\n" not in str(info.value)


def test_clipart_refuses_conflict_training_tasks(art: Path) -> None:
    with pytest.raises(ValueError, match="not training tasks"):
        clipart(art, "train", eval_confounding="conflict")
