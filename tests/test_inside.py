"""benchmarks/inside.py: its measuring functions, and one analysis of a tiny trained run."""

from __future__ import annotations

import argparse
import math
from types import ModuleType

import pytest
import torch

from metacrl.cli.build import build_model, build_trainer

from conftest import tiny_config


@pytest.fixture(scope="module")
def inside() -> ModuleType:
    import inside  # benchmarks/ is on pytest's pythonpath

    return inside


def test_probe_reads_a_nuisance_that_is_there_and_not_one_that_is_not(inside):
    gen = torch.Generator().manual_seed(0)
    n, d = 1200, 12
    labels = torch.randint(0, 8, (n,), generator=gen)
    tasks = torch.arange(n) // 10  # 120 tasks of 10 examples
    onehot = torch.nn.functional.one_hot(labels, 8).double()
    signal = torch.cat([onehot, torch.zeros(n, d - 8, dtype=torch.float64)], dim=1)
    noisy = signal + 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    found = inside.probe_accuracy(noisy, labels, tasks, steps=100)
    assert found["test"] > 0.9 and found["train"] > 0.9
    assert found["n_train"] + found["n_test"] == n and found["n_train"] == 840  # 84 of 120 tasks
    noise = torch.randn(n, d, generator=gen)
    chance = inside.probe_accuracy(noise, labels, tasks, steps=100)
    assert chance["test"] < 0.22  # chance is 1/8
    assert 0 <= chance["majority"] <= 1


def test_factor_geometry_is_zero_for_orthogonal_xi_and_positive_otherwise(inside):
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 4))
    geo = inside.factor_geometry(3.0 * q, q)  # column lengths do not matter
    assert geo["xi_nonorthogonality"] < 1e-6 and geo["xi_max_abs_cosine"] < 1e-6
    assert abs(geo["u_sv_min"] - 1) < 1e-6 and abs(geo["u_sv_max"] - 1) < 1e-6
    assert (
        abs(geo["u_effective_rank"] - 4) < 1e-6 and abs(geo["u_effective_rank_fraction"] - 1) < 1e-6
    )
    skew = q.clone()
    skew[:, 1] = q[:, 0] + 0.1 * q[:, 1]  # two columns nearly parallel
    geo = inside.factor_geometry(skew, skew)
    assert geo["xi_nonorthogonality"] > 0.3 and geo["xi_max_abs_cosine"] > 0.9
    assert geo["u_sv_min"] < 0.2 and geo["u_effective_rank"] < 4
    assert len(geo["u_singular_values"]) == 4


def test_gate_group_stats_on_hand_made_gates(inside):
    groups = ["foreground"] * 4 + ["background"] * 4 + ["texture"] * 4
    blocks = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # meta-batches of two tasks
    centre = {"foreground": [0.9, 0.1], "background": [0.1, 0.9], "texture": [0.5, 0.5]}
    offsets = [[0.01, 0.0], [-0.01, 0.0], [0.0, 0.01], [0.0, -0.01]]
    gates = torch.tensor([[c + o for c, o in zip(centre[g], offsets[i % 4], strict=True)]
                          for i, g in enumerate(groups)], dtype=torch.float64)  # fmt: skip
    stats = inside.gate_group_stats(gates, groups, blocks, permutations=10)
    assert stats["groups"] == ["background", "foreground", "texture"]
    assert stats["counts"] == [4, 4, 4]
    assert torch.allclose(
        torch.tensor(stats["group_means"], dtype=torch.float64),
        torch.tensor([[0.1, 0.9], [0.9, 0.1], [0.5, 0.5]], dtype=torch.float64),
    )
    # pairs: |fg - bg| = 0.8 sqrt(2), |fg - tex| = |bg - tex| = 0.4 sqrt(2)
    assert math.isclose(stats["between"], (0.8 + 0.4 + 0.4) / 3 * math.sqrt(2), rel_tol=1e-9)
    assert math.isclose(stats["within"], 0.01, rel_tol=1e-9)
    assert stats["accuracy"] == 1.0 and math.isclose(stats["chance"], 1 / 3)
    assert stats["between_null"] < stats["between"] and stats["accuracy_null"] < 1.0
    assert stats["ratio_null"] < stats["ratio"] and math.isclose(stats["min"], 0.09)
    # below 0.5: the 0.1 of each foreground and background task, two 0.49 of texture
    assert math.isclose(stats["mean"], 0.5) and stats["closed_fraction"] == pytest.approx(10 / 24)

    same = inside.gate_group_stats(torch.full((12, 2), 0.7), groups, blocks, permutations=2)
    assert same["between"] == 0 and same["within"] == 0 and math.isnan(same["ratio"])
    assert same["closed_fraction"] == 0 and same["spread"] == 0

    with pytest.raises(ValueError, match="different groups"):
        inside.gate_group_stats(gates, groups, [0] * 12)


def test_gate_summary(inside):
    gates = torch.tensor([[0.2, 0.8], [0.4, 0.6]])
    summary = inside.gate_summary(gates)
    assert summary["mean"] == pytest.approx(0.5)
    assert summary["closed_fraction"] == pytest.approx(0.5)
    assert summary["spread"] == pytest.approx(math.sqrt(0.02))


def test_analyse_a_tiny_trained_run_and_report_it(inside, tmp_path, monkeypatch, capsys):
    cfg = tiny_config(iterations=2, val_every=2, val_tasks=2, test_tasks=2)
    runs = tmp_path / "runs"
    for variant, metacrl in (("maml", False), ("metacrl", True)):
        build_trainer(cfg, metacrl, runs / "tiny" / f"{variant}-s0", progress=False).train()

    result = inside.analyse_run("tiny", "metacrl", 0, runs=runs, train_tasks=8, probe_tasks=6)
    assert result["metacrl"] and result["filled"] == {} and result["analysis_seed"] == 12345
    assert result["probe_examples"] == 6 * 3 * 2  # tasks x ways x queries
    for kind in ("probe_head", "probe_features"):
        assert sorted(result[kind]) == ["background", "foreground", "texture"]
        assert all(0 <= p["test"] <= 1 for p in result[kind].values())
    gates = result["gates_train"]
    assert sum(gates["counts"]) == 8 and 0 < gates["mean"] < 1
    assert 0 <= gates["closed_fraction"] <= 1 and 0 <= gates["accuracy"] <= 1
    assert len(gates["group_means"]) == len(gates["groups"])
    feature_dim = build_model(cfg).feature_dim  # num_factors defaults to it
    assert all(len(m) == feature_dim for m in gates["group_means"])
    assert 0 < result["gates_val"]["mean"] < 1
    geo = result["geometry"]
    assert geo["xi_nonorthogonality"] >= 0 and 0 < geo["u_sv_min"] <= geo["u_sv_max"]
    assert result["u_check_max_abs_diff"] is None  # diagnose.py recorded nothing for "tiny"

    maml = inside.analyse_run("tiny", "maml", 0, runs=runs, train_tasks=8, probe_tasks=6)
    assert not maml["metacrl"] and "gates_train" not in maml
    assert maml["probe_features"] == maml["probe_head"]

    monkeypatch.setattr(inside, "RESULTS", tmp_path / "results")
    args = argparse.Namespace(
        setting="tiny",
        variants=["maml", "metacrl", "gone"],
        seeds=[0],
        runs=runs,
        train_tasks=8,
        probe_tasks=6,
    )
    inside.command_run(args)
    out = capsys.readouterr().out
    assert "tiny gone seed 0: skipped" in out
    assert sorted(p.name for p in (tmp_path / "results" / "tiny").iterdir()) == [
        "maml-s0.json",
        "metacrl-s0.json",
    ]
    inside.command_run(args)  # resumable: nothing new
    assert "probe" not in capsys.readouterr().out
    inside.command_report(argparse.Namespace())
    report = capsys.readouterr().out
    assert "### tiny: linear probes" in report and "### tiny: gates of" in report
    assert "### tiny: factor directions" in report
    assert report.count("| maml | 0 |") == 1 and report.count("| metacrl | 0 |") == 3
