"""The benchmark scripts run (quick settings on the CPU); their numbers are not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "loader_speed.py"  # test_loader_speed_script_runs


def test_gpu_backbones_script_runs_on_the_cpu():
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "gpu_backbones.py"),
            "--device",
            "cpu",
            "--quick",
            "--backbones",
            "Conv4-32",
            "ResNet-12",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("device: CPU")
    rows = [line for line in lines if line.startswith(("Conv4-32", "ResNet-12"))]
    assert len(rows) == 4  # fp32 and bf16 for each backbone
    assert all(float(row.split()[-2]) > 0 for row in rows)


def _run(script, *args, timeout=600):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cost_script_prints_its_tables():
    out = _run("cost.py", "--quick", "--device", "cpu", "--tables", "backends", "overhead")
    backends, overhead = out.split("### Where MetaCRL's time goes")
    assert "### MAML backends and orders" in backends
    # overhead: MAML, five MetaCRL settings and environments of every query (quick: 2 a class,
    # so the defaults' 10 queries are every query and 5 a class is left out)
    for text, count in ((backends, 6), (overhead, 7)):
        rows = [line for line in text.splitlines() if line.startswith("| ")]
        rows = [row for row in rows if "s/step" not in row and not row.startswith("| ---")]
        assert len(rows) == count
        assert all(float(row.split("|")[2]) > 0 for row in rows)
    assert "| MAML without MetaCRL |" in overhead and "1.00x" in overhead
    assert "| + MetaCRL, environments of all queries |" in overhead


def test_cost_script_times_each_learner_at_both_environment_sizes_and_replay_growth():
    out = _run("cost.py", "--quick", "--device", "cpu", "--tables", "learners", "replay")
    learners, replay = out.split("### How MetaCRL's added time grows with replay")
    rows = [line.split("|")[1:-1] for line in learners.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[2:]
    assert len(header) == 9 and "environments of" in header[4]
    assert [r[0].strip() for r in body] == ["maml", "anil", "metasgd", "protonet"]
    for row in body:  # every ratio is the row's own time (or memory) over the plain learner's
        plain, crl, ratio = float(row[1]), float(row[2]), float(row[3].strip()[:-1])
        assert abs(ratio - crl / plain) <= 0.005 + 0.0005 * (1 + ratio) / plain  # rounding
        assert float(row[4].strip()[:-1]) > 0
    rows = [line.split("|")[1:-1] for line in replay.splitlines() if line.startswith("| ")][2:]
    assert [r[1].strip() for r in rows] == ["-", "0", "1", "3", "6", "10"]
    assert all(float(r[2]) > 0 for r in rows)


def test_cost_profile_finds_the_extra_backbone_pass_only_where_the_backbone_adapts():
    out = _run("cost.py", "--quick", "--device", "cpu", "--tables", "profile")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")][2:]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        (learner, size)
        for learner in ("maml", "anil", "metasgd", "protonet")
        for size in ("10 queries", "all queries")  # the default first, then the other size
    ]
    for row in rows:
        backbone, causal = float(row[5]), float(row[6])
        # MAML and Meta-SGD run a pass of their own; ANIL and ProtoNet share the meta-step's
        assert (backbone > 0) == (row[0].strip() in ("maml", "metasgd"))
        assert causal > 0


def test_gpu_check_script_runs_on_the_cpu_in_quick_mode():
    out = _run("gpu_check.py", "--quick", "--device", "cpu")
    assert out.startswith("device: CPU")
    assert "meta-iterations on random data" in out
    assert out.count("| True |") == 4  # every long run stayed finite


def test_evidence_report_fills_the_marked_block_of_a_page(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("intro\n<!-- evidence:begin -->\nold\n<!-- evidence:end -->\noutro\n")
    _run("evidence.py", "report", "--update", str(page))
    text = page.read_text()
    assert text.startswith("intro\n<!-- evidence:begin -->\n### Sweep")
    assert text.endswith("<!-- evidence:end -->\noutro\n")
    assert "old" not in text and "### ConfoundedShapes" in text and "### Ablations" in text


def test_evidence_report_refuses_a_page_without_the_block(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("no block here\n")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "evidence.py"), "report", "--update", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "no <!-- evidence:begin -->" in done.stderr
    assert page.read_text() == "no block here\n"


def _evidence():
    import evidence  # benchmarks/ is on pytest's pythonpath

    return evidence


def test_evidence_controls_are_the_1_shot_rows_with_their_settings(monkeypatch):
    evidence = _evidence()
    monkeypatch.setattr(evidence, "chosen", lambda: "alt-vrex1")
    runs = evidence.suite_runs("grid", ("capacity", "metacrl-rho0"))
    names = {r.name for r in runs}
    assert names == {
        f"shapes-1shot-{learner}-{arm}"
        for learner in evidence.LEARNERS
        for arm in ("capacity", "metacrl-rho0")
    }
    for run in runs:
        if run.name.endswith("capacity"):
            assert not run.metacrl and run.settings["linear_map"] is True
        else:
            assert run.metacrl and run.settings["rho"] == 0.0
            assert run.settings["invariance"] == "vrex"


def test_evidence_fast_arm_is_the_1_shot_metacrl_arm_with_fewer_environment_queries(
    monkeypatch,
):
    evidence = _evidence()
    monkeypatch.setattr(evidence, "chosen", lambda: "alt-vrex1")
    full = {r.name: r for r in evidence.suite_runs("grid", ("metacrl",))}
    fast = evidence.suite_runs("grid", ("metacrl-fast",))
    assert {r.name for r in fast} == {
        f"shapes-1shot-{learner}-metacrl-fast" for learner in evidence.LEARNERS
    }
    for run in fast:
        twin = full[run.name.removesuffix("-fast")]
        assert run.metacrl and run.seed in evidence.SEEDS
        assert run.settings == {**twin.settings, "env_queries": evidence.FAST_ENV_QUERIES}


def test_evidence_defaults_arms_train_the_library_defaults_not_the_stored_runs_pins():
    from metacrl.regularizer import DEFAULTS

    evidence = _evidence()
    runs = evidence.suite_runs("grid", ("defaults", "defaults-rho0"))
    assert {r.name for r in runs} == {
        f"shapes-1shot-{learner}-{arm}"
        for learner in evidence.LEARNERS
        for arm in ("defaults", "defaults-rho0")
    }
    for run in runs:
        cfg = evidence.config_of(run)
        assert run.metacrl and cfg.learner in evidence.LEARNERS and cfg.shots == 1
        for key in evidence.STORED_RUNS_SETTINGS:  # the pins of the other arms do not apply
            assert getattr(cfg, key) == getattr(DEFAULTS, key)
        assert cfg.rho == (0.0 if run.name.endswith("rho0") else 0.9)


def test_evidence_ablations_change_one_setting_of_their_full_arm(monkeypatch):
    evidence = _evidence()
    monkeypatch.setattr(evidence, "chosen", lambda: "alt-vrex1")
    grid = {r.id: r for r in evidence.suite_runs("grid", ("metacrl", "defaults"))}
    changed = {"no-causal-step": {"crl_steps"}, "no-invariance": {"lambda_inv"},
               "no-replay": {"replay"}, "no-gates": {"gates"}, "orthogonality": {"lambda_orth"},
               "other-penalty": {"invariance"}, "other-schedule": {"mode"}}  # fmt: skip
    for suite, arm in evidence.ABLATION_FULL_ARM.items():
        runs = evidence.suite_runs(suite, evidence.ARMS)
        assert {(r.name, r.seed) for r in runs} == {
            (name, seed) for name in changed for seed in evidence.SEEDS
        }
        for run in runs:
            full = evidence.config_of(grid[f"shapes-1shot-maml-{arm}-s{run.seed}"]).as_dict()
            config = evidence.config_of(run).as_dict()
            assert run.metacrl and run.suite == suite
            assert {k for k in config if config[k] != full[k]} == changed[run.name], run.id
    defaults = evidence.config_of(grid["shapes-1shot-maml-defaults-s0"])
    assert defaults.xi_lr != evidence.STORED_RUNS_SETTINGS["xi_lr"]  # two different full methods


def test_evidence_figure_draws_the_committed_grid_with_every_arm(tmp_path):
    import argparse

    pytest.importorskip("matplotlib")
    evidence = _evidence()
    evidence.command_figure(argparse.Namespace(path=tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_evidence_statistics_pair_runs_by_seed():
    evidence = _evidence()

    def record(seed: int, accuracy: float) -> dict:
        return {"seed": seed, "result": {"test": {"accuracy": accuracy}}}

    a = [record(2, 0.9), record(0, 0.7), record(5, 0.1)]  # seed 5 has no partner
    b = [record(0, 0.6), record(1, 0.0), record(2, 0.5)]
    diffs = evidence.paired_differences(a, b)
    assert [round(d, 6) for d in diffs] == [0.1, 0.4]  # seeds 0 and 2, in seed order
    mean, ci = evidence.mean_ci(diffs)
    # two values: t(1) = 12.706, sd = 0.3 / sqrt(2)
    assert abs(mean - 0.25) < 1e-9 and abs(ci - 12.706 * 0.15) < 1e-6


def test_interval_quantiles_cover_95_percent_of_student_t_and_refuse_untabled_degrees():
    import math

    import numpy as np

    from intervals import T_95, mean_ci, t95

    for df, t in T_95.items():  # the t density integrated over [-t, t] (Simpson) is 0.95
        x = np.linspace(-t, t, 200_001)
        log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x**2 / df))
        h = x[1] - x[0]
        mass = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
        assert abs(mass - 0.95) < 6e-5, (df, mass)  # 3-decimal rounding: < 5e-5
    six = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # a sixth seed: df 5, which the scripts once lacked
    mean, ci = mean_ci(six)
    assert mean == 3.5 and abs(ci - 2.571 * math.sqrt(3.5) / math.sqrt(6)) < 1e-9
    assert math.isnan(mean_ci([0.3])[1]) and mean_ci([0.3])[0] == 0.3
    with pytest.raises(ValueError, match="31 degrees of freedom"):
        t95(31)


def test_loader_speed_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| MiniImagenet, cached (uint8 memmap)" in out
    assert "cached / decode-per-access speed ratio" in out
    assert "ConfoundedShapes:" in out and "ms per task" in out


RESULTS_DIAGNOSE = BENCHMARKS / "results" / "diagnose"


def test_diagnose_report_tables_the_committed_runs():
    out = _run("diagnose.py", "report")
    settings = sorted(p.name for p in (BENCHMARKS / "results" / "diagnose").iterdir())
    assert "clipart" in settings and "shapes" in settings
    summary = next(line for line in out.splitlines() if line.startswith("| variant | clip"))
    assert all(f" {setting} |" in summary for setting in settings)
    for setting in settings:
        assert f"#### {setting}: every run" in out
    # the per-setting tables: one MAML + MetaCRL row each, its best validation above chance
    sections = [part for part in out.split("#### ") if part.split("\n", 1)[0].endswith("every run")]
    rows = [
        line for part in sections for line in part.splitlines() if line.startswith("| metacrl | 0")
    ]
    with_metacrl = [s for s in settings if any((RESULTS_DIAGNOSE / s).glob("metacrl-s*.json"))]
    assert len(rows) == len(with_metacrl)
    assert all(float(row.split("|")[3]) > 20.0 for row in rows)  # above chance
    conflict = sorted(p.name for p in (BENCHMARKS / "results" / "conflict").glob("*") if p.is_dir())
    for setting in conflict:  # the drop from neutral to conflict test tasks, where measured
        assert f"#### {setting}: neutral and conflict test tasks" in out


def test_diagnose_confirmation_pairs_the_defaults_over_all_seeds_and_the_sweep_over_its_own():
    import diagnose

    def runs(gains: dict[int, float]) -> dict[str, dict[int, dict[str, float]]]:
        return {
            "maml": {s: {"best_val": 0.5} for s in gains},
            diagnose.DEFAULTS_VARIANT: {s: {"best_val": 0.5 + g / 100} for s, g in gains.items()},
        }

    seeds = (*diagnose.SWEEP_SEEDS, *diagnose.CONFIRM_SEEDS)
    every = {"shapes": runs(dict.fromkeys(seeds, 2.0) | {seeds[0]: 3.0})}
    lines = diagnose.confirmation_report(every)
    row = next(line for line in lines if line.startswith("| shapes |"))
    assert f"| {', '.join(map(str, seeds))} |" in row and "| +2.2 ± " in row
    assert lines[-1] == f"The bar over all {len(seeds)} seeds: met."
    # a setting without the confirmation seeds has a row, but no verdict yet
    few = {"clipart": runs(dict.fromkeys(diagnose.SWEEP_SEEDS, -1.0))}
    assert "not measured yet" in diagnose.confirmation_report(few)[-1]
    # the sweep's tables read only the sweep's seeds
    only = diagnose.sweep_seeds_only(every["shapes"])
    assert all(set(by_seed) == set(diagnose.SWEEP_SEEDS) for by_seed in only.values())


def test_diagnose_defaults_variant_is_the_library_defaults_but_for_the_environment_size():
    import diagnose

    from metacrl.regularizer import DEFAULTS

    cfg = diagnose.config_of("shapes", diagnose.DEFAULTS_VARIANT, 0).as_dict()
    shared = set(cfg) & set(DEFAULTS.as_dict())
    assert {"xi_lr", "lambda_orth", "lambda_gate", "env_queries"} <= shared
    differ = {k for k in shared if cfg[k] != getattr(DEFAULTS, k)}
    assert differ == {"env_queries"}  # every run of the sweep keeps all queries


def test_diagnose_refuses_a_run_trained_with_other_settings_than_its_variant(tmp_path):
    import json

    import diagnose

    record = {"setting": "shapes", "variant": "metacrl", "seed": 1, "best_val": 0.5}
    record["config"] = diagnose.config_of("shapes", "metacrl", 1).as_dict()
    (tmp_path / "shapes").mkdir()
    path = tmp_path / "shapes" / "metacrl-s1.json"
    path.write_text(json.dumps(record))
    assert (
        diagnose.load_runs("shapes", tmp_path)["metacrl"][1]["best_val"] == 0.5
    )  # as trained today
    # settings of another machine do not matter; a base learner ignores the MetaCRL settings
    record["config"]["data_root"] = "/elsewhere"
    path.write_text(json.dumps(record))
    assert diagnose.load_runs("shapes", tmp_path)["metacrl"][1]["best_val"] == 0.5
    base = {**record, "variant": "maml", "config": {**record["config"], "lambda_orth": 0.5}}
    (tmp_path / "shapes" / "maml-s1.json").write_text(json.dumps(base))
    assert set(diagnose.load_runs("shapes", tmp_path)) == {"metacrl", "maml"}
    # a MetaCRL run trained before a default changed is stale
    record["config"]["lambda_orth"] = 0.5
    path.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match=r"metacrl-s1\.json .*\(lambda_orth\)"):
        diagnose.load_runs("shapes", tmp_path)


def test_evidence_refuses_a_run_its_suite_no_longer_trains(tmp_path, monkeypatch):
    import json

    evidence = _evidence()
    monkeypatch.setattr(evidence, "chosen", lambda: "alt-vrex1")
    run = next(r for r in evidence.suite_runs("grid", ("metacrl",)) if r.seed == 2)
    record = {"name": run.name, "seed": 2, "config": evidence.config_of(run).as_dict()}
    (tmp_path / "grid").mkdir()
    path = tmp_path / "grid" / f"{run.id}.json"
    path.write_text(json.dumps(record))
    assert evidence.load("grid", tmp_path)[run.name][0]["seed"] == 2
    record["config"]["lambda_orth"] = 0.5  # trained before a default changed
    path.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match=r"other settings .*\(lambda_orth\)"):
        evidence.load("grid", tmp_path)
    path.write_text(json.dumps({**record, "name": "shapes-1shot-maml-unknown"}))
    with pytest.raises(SystemExit, match=r"no run of the grid suite"):
        evidence.load("grid", tmp_path)


def test_evidence_runner_skips_a_run_another_process_finished_meanwhile(tmp_path, monkeypatch):
    import argparse
    import json

    evidence = _evidence()
    monkeypatch.setattr(evidence, "RESULTS", tmp_path)
    first, second = (evidence.Run("demo", f"run-{i}", 0, False, {}) for i in range(2))
    trained = []

    def execute(run):  # while the first trains, another process finishes the second
        trained.append(run.id)
        second.path.parent.mkdir(parents=True, exist_ok=True)
        second.path.write_text(json.dumps({"by": "elsewhere"}))
        return {"result": {"best_val": 0.5, "test": {"accuracy": 0.5}}}

    monkeypatch.setattr(evidence, "execute", execute)
    monkeypatch.setattr(evidence.torch, "set_num_threads", lambda n: None)  # keep pytest's
    args = argparse.Namespace(threads=1, part="1/1", match=None)
    evidence.run_missing("demo", [first, second], args)
    assert trained == ["run-0-s0"]
    assert json.loads(second.path.read_text()) == {"by": "elsewhere"}
    assert json.loads(first.path.read_text())["result"]["best_val"] == 0.5


def test_longer_training_trains_metacrl_in_both_metacrl_arms_the_defaults_arm_at_the_defaults(
    monkeypatch,
):
    import longer

    from metacrl.regularizer import DEFAULTS

    evidence = _evidence()
    monkeypatch.setattr(longer, "chosen", lambda: "alt-vrex1")
    for run in longer.suite_runs():
        arm = run.name.rsplit("-", 1)[1]
        cfg = evidence.config_of(run)
        assert run.metacrl == (arm in ("metacrl", "defaults")), run.name
        assert cfg.iterations == longer.ITERATIONS and cfg.rho == (0.0 if arm == "oracle" else 0.9)
        for key in evidence.STORED_RUNS_SETTINGS:
            if arm == "defaults":
                assert getattr(cfg, key) == getattr(DEFAULTS, key), (run.name, key)
            if arm == "metacrl":
                assert getattr(cfg, key) == evidence.STORED_RUNS_SETTINGS[key], (run.name, key)


def test_longer_training_reports_gains_curves_and_speed(tmp_path, monkeypatch):
    import json

    import longer

    import evidence

    monkeypatch.setattr(longer, "chosen", lambda: "alt-vrex1")
    (tmp_path / "long").mkdir()
    # base learns to 0.80 by iteration 2000; MetaCRL passes that at 300; 0.01 more per seed
    slopes = {"base": 0.0003, "metacrl": 0.002, "defaults": 0.00035, "oracle": 0.003}
    for run in longer.suite_runs():
        if not run.name.startswith("shapes-1shot-maml"):
            continue
        if run.seed == 2 and not run.name.endswith("metacrl"):  # seed 2: MetaCRL's run only
            continue
        if run.seed == 1 and run.name.endswith("defaults"):  # the defaults arm: seed 0 only
            continue
        slope = slopes[run.name.rsplit("-", 1)[1]]
        curve = [
            [it, round(min(0.95, 0.2 + slope * it + 0.01 * run.seed), 4)]
            for it in range(100, 2001, 100)
        ]
        best = max(acc for _, acc in curve)
        record = {
            "name": run.name, "seed": run.seed, "config": evidence.config_of(run).as_dict(),
            "result": {
                "test": {"accuracy": best - 0.02}, "conflict": {"accuracy": best - 0.03},
                "best_val": best, "best_iteration": 2000, "curve": curve,
            },
        }  # fmt: skip
        (tmp_path / "long" / f"{run.id}.json").write_text(json.dumps(record))
    lines = longer.report(tmp_path)
    # seed 2 has no base or oracle run yet: left out of every table, and said so
    assert "left out until their seed is complete: shapes-1shot-maml-metacrl-s2." in lines[3]
    row = next(line for line in lines if line.startswith("| maml | metacrl | 0, 1 |"))
    # test: best - 0.02, so MetaCRL 93, 93 against base 78, 79: gains 15, 14
    assert "| 14.5 ± 6.4 (2 seeds) |" in row
    speed = next(line for line in lines if line.startswith("| maml | metacrl | 40.5 |"))
    assert "| 300 (300, 300) |" in speed  # reaches base's best (0.80, 0.81) at 300
    base_speed = next(line for line in lines if line.startswith("| maml | base | 23.5 |"))
    # base's own best at 2000; 80% at 2000 in both seeds; 85% never
    assert "| 2000 (2000, 2000) | 2000 (2000, 2000) | 0 of 2 seeds (never, never) |" in base_speed
    # the defaults arm is shown on the complete seeds it has, paired with base on them
    defaults = next(line for line in lines if line.startswith("| maml | defaults | 0 |"))
    assert "| 10.0 (1 seed) |" in defaults  # test 0.88 (its best 0.90, at 2000) against 0.78
    assert "| protonet | base | none |" in "\n".join(lines)
    longer.figure(tmp_path / "curves.png", tmp_path)
    assert (tmp_path / "curves.png").stat().st_size > 0
