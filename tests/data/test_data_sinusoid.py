"""Sinusoid: MAML's regression tasks, their ranges, targets and determinism."""

from __future__ import annotations

import math

import pytest
import torch

from metacrl.data import Sinusoid


def test_shapes_and_dtypes() -> None:
    ds = Sinusoid(batchsz=7, k_shot=5, k_query=15)
    assert len(ds) == 7
    x_spt, y_spt, x_qry, y_qry = ds[0]
    assert x_spt.shape == y_spt.shape == (5, 1)
    assert x_qry.shape == y_qry.shape == (15, 1)
    assert all(t.dtype == torch.float32 for t in (x_spt, y_spt, x_qry, y_qry))


def test_targets_follow_the_task_sine() -> None:
    ds = Sinusoid(batchsz=50)
    for i in range(len(ds)):
        amp, phase = ds.params(i)
        x_spt, y_spt, x_qry, y_qry = ds[i]
        for x, y in ((x_spt, y_spt), (x_qry, y_qry)):
            torch.testing.assert_close(y, amp * torch.sin(x - phase), atol=1e-5, rtol=1e-5)


def test_ranges() -> None:
    ds = Sinusoid(batchsz=400)
    amps, phases = zip(*(ds.params(i) for i in range(len(ds))), strict=True)
    assert min(amps) >= 0.1 and max(amps) <= 5.0 and max(amps) - min(amps) > 4.0
    assert min(phases) >= 0.0 and max(phases) <= math.pi and max(phases) - min(phases) > 2.5
    xs = torch.cat([torch.cat([ds[i][0], ds[i][2]]) for i in range(100)])
    assert float(xs.min()) >= -5.0 and float(xs.max()) <= 5.0 and float(xs.std()) > 2.0


def test_custom_ranges() -> None:
    ds = Sinusoid(batchsz=20, amplitude=(1.0, 1.0), phase=(0.5, 0.5), x_range=(0.0, 1.0))
    assert ds.params(3) == (1.0, 0.5)
    x = ds[3][0]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_determinism() -> None:
    a, b, c = Sinusoid(batchsz=5), Sinusoid(batchsz=5), Sinusoid(batchsz=5, seed=1)
    assert all(torch.equal(u, v) for u, v in zip(a[2], b[2], strict=True))
    assert not torch.equal(a[2][0], c[2][0])
    assert not torch.equal(a[2][0], a[3][0])
    assert a.params(-1) == a.params(4)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"k_shot": 0}, ValueError, "k_shot must be an integer >= 1"),
        ({"k_query": "5"}, TypeError, "k_query must be an integer"),
        ({"batchsz": -1}, ValueError, "batchsz must be"),
        ({"amplitude": (5.0, 0.1)}, ValueError, "amplitude must be finite with low <= high"),
        ({"phase": (0.0,)}, ValueError, "phase must be a pair"),
        ({"x_range": (0.0, math.inf)}, ValueError, "x_range must be finite"),
    ],
)
def test_bad_arguments(kw: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Sinusoid(**kw)  # type: ignore[arg-type]


def test_index_errors() -> None:
    ds = Sinusoid(batchsz=3)
    with pytest.raises(IndexError, match="task index 3 out of range"):
        ds[3]
    with pytest.raises(IndexError):
        ds.params(-4)
    with pytest.raises(TypeError, match="task index must be an integer"):
        ds[1.0]  # type: ignore[index]
