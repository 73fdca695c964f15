"""TaskLoader: stacked meta-batches, the same stream for any workers, resuming, checks."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from metacrl.data import ConfoundedShapes, Sinusoid, TaskLoader
from metacrl.learners.meta_batch import as_meta_batch

Batch = tuple[Tensor, Tensor, Tensor, Tensor]


def assert_same_stream(a: list[Batch], b: list[Batch]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))


def small_shapes(**kw: object) -> ConfoundedShapes:
    args: dict[str, object] = dict(n_way=3, k_shot=1, k_query=2, image_size=16, batchsz=24)
    args.update(kw)
    return ConfoundedShapes("train", **args)  # type: ignore[arg-type]


def test_batches_are_stacked_tasks() -> None:
    ds = small_shapes(meta_batch_size=4)
    loader = TaskLoader(ds, batch_size=4)
    assert len(loader) == 6
    batches = list(loader)
    assert len(batches) == 6
    x_spt, y_spt, x_qry, y_qry = batches[1]
    assert x_spt.shape == (4, 3, 3, 16, 16) and y_spt.shape == (4, 3)
    assert x_qry.shape == (4, 6, 3, 16, 16) and y_qry.shape == (4, 6)
    for t in range(4):  # batch 1 holds tasks 4..7 in order
        assert all(torch.equal(u[t], v) for u, v in zip(batches[1], ds[4 + t], strict=True))
    batch = as_meta_batch(
        *batches[0], problem="classification", device=torch.device("cpu"), dtype=torch.float32
    )
    assert batch.num_tasks == 4 and batch.num_labels == 3


def test_regression_batches() -> None:
    x_spt, y_spt, x_qry, y_qry = next(iter(TaskLoader(Sinusoid(batchsz=8, k_shot=5), 2)))
    assert x_spt.shape == y_spt.shape == (2, 5, 1) and y_qry.shape == (2, 15, 1)
    as_meta_batch(
        x_spt,
        y_spt,
        x_qry,
        y_qry,
        problem="regression",
        device=torch.device("cpu"),
        dtype=torch.float32,
    )


def test_workers_do_not_change_the_stream() -> None:
    ds = small_shapes(meta_batch_size=3, batchsz=18)
    serial = list(TaskLoader(ds, batch_size=3))
    parallel = list(TaskLoader(ds, batch_size=3, num_workers=2))
    assert_same_stream(serial, parallel)


def test_start_resumes_the_stream() -> None:
    ds = Sinusoid(batchsz=20)
    full = list(TaskLoader(ds, batch_size=4))
    assert len(full) == 5
    for k in range(6):
        tail = list(TaskLoader(ds, batch_size=4, start=k))
        assert_same_stream(tail, full[k:])
    middle = TaskLoader(ds, batch_size=4, start=1, num_batches=2)
    assert len(middle) == 2
    assert_same_stream(list(middle), full[1:3])


def test_resume_with_workers_matches() -> None:
    ds = small_shapes(meta_batch_size=2, batchsz=12)
    full = list(TaskLoader(ds, batch_size=2))
    assert_same_stream(list(TaskLoader(ds, batch_size=2, start=3, num_workers=2)), full[3:])


def test_short_last_batch_and_drop_last() -> None:
    ds = Sinusoid(batchsz=10)
    batches = list(TaskLoader(ds, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    dropped = TaskLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [b[0].shape[0] for b in dropped] == [4, 4]


def test_persistent_workers_can_iterate_twice() -> None:
    loader = TaskLoader(Sinusoid(batchsz=6), batch_size=2, num_workers=1, persistent_workers=True)
    assert_same_stream(list(loader), list(loader))


class ThreadsSeen(torch.utils.data.Dataset[Batch]):
    """A dataset whose tasks report how many threads torch uses where they are made."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> Batch:
        seen = torch.tensor([float(torch.get_num_threads())])
        return seen, torch.zeros(1), seen, torch.zeros(1)


def test_workers_use_one_thread() -> None:
    batches = list(TaskLoader(ThreadsSeen(), batch_size=2, num_workers=2))
    assert all(float(b[0].max()) == 1.0 for b in batches)


def test_batch_size_must_match_the_confounder_batches() -> None:
    with pytest.raises(
        ValueError, match="batch_size=2 differs from the dataset's meta_batch_size=4"
    ):
        TaskLoader(small_shapes(meta_batch_size=4), batch_size=2)
    # No constraint where batches do not carry a shared confounder.
    TaskLoader(small_shapes(meta_batch_size=4, confounder="task"), batch_size=2)
    TaskLoader(small_shapes(meta_batch_size=4, rho=0.0), batch_size=2)
    TaskLoader(ConfoundedShapes("test", meta_batch_size=4, batchsz=8), batch_size=2)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
        ({"num_workers": -1}, ValueError, "num_workers must be an integer >= 0"),
        ({"start": 4}, ValueError, "start=4 is past the end: the dataset's 10 tasks make 3"),
        ({"num_batches": 4}, ValueError, "num_batches=4 needs 16 tasks but the dataset has 10"),
        ({"start": 2, "num_batches": 2}, ValueError, "start=2 \\+ num_batches=2"),
        ({"num_batches": 1.5}, TypeError, "num_batches must be an integer"),
    ],
)
def test_bad_arguments(kw: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        TaskLoader(Sinusoid(batchsz=10), **kw)  # type: ignore[arg-type]


def test_repr() -> None:
    assert "batch_size=4" in repr(TaskLoader(Sinusoid(batchsz=8)))
