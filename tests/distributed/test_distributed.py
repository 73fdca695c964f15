"""Data-parallel meta-training: 2 gloo processes on the CPU give the updates of 1 process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from metacrl import MAML, MetaCRLRegularizer
from metacrl.cli import main
from metacrl.cli.build import build_trainer
from metacrl.cli.config import TrainConfig
from metacrl.data import Sinusoid, TaskLoader
from metacrl.distributed import (
    DistributedContext,
    check_meta_batch,
    gather_episodes,
    launch_info,
    shard_bounds,
    spawn_local,
)
from metacrl.train import StopRequest, Trainer, TrainingInterrupted, load_checkpoint

from conftest import tiny_config
from helpers import random_batch, tiny_model

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this PyTorch build has no torch.distributed with the gloo backend",
)

CPU = torch.device("cpu")
WORLD = 2
META_BATCH = 4
MODES = ("maml", "alternating", "joint", "refresh")
# Parameters whose exact gradient is zero (a conv bias right before BatchNorm): Adam turns
# their rounding-noise gradients into steps of about lr, in one process as in two; they do not
# change the network's outputs. BatchNorm running statistics serve only eval() mode and are
# averaged over processes (an EMA cannot be split exactly).
NOT_COMPARED = re.compile(r"features\.\d+\.0\.bias|running_|num_batches_tracked")


# ---------------------------------------------------------------- learner level, float64
def _learner(mode: str):
    torch.manual_seed(0)
    learner = MAML(tiny_model(), inner_lr=0.3, inner_steps=2)
    if mode == "maml":
        return learner
    torch.manual_seed(1)
    reg = MetaCRLRegularizer(
        5,
        num_factors=4,
        hidden_dim=3,
        mode="alternating" if mode == "refresh" else mode,
        crl_steps=2,
        replay=2,
        refresh_replay=mode == "refresh",  # replays whole meta-batches, gathered
    )
    return reg.wrap(learner)


def _train_learner(mode: str, ctx: DistributedContext, steps: int = 3) -> dict[str, torch.Tensor]:
    learner = _learner(mode)
    ctx.attach(learner)
    opt = torch.optim.Adam(learner.parameters(), lr=0.01)
    for step in range(steps):
        batch = random_batch(tasks=META_BATCH, seed=10 + step)
        lo, hi = shard_bounds(META_BATCH, ctx.rank, ctx.world_size)
        opt.zero_grad()
        out = learner.meta_step(*(t[lo:hi] for t in batch))
        out.loss.backward()
        ctx.average_gradients(learner.parameters())
        opt.step()
    state = learner.state_dict()
    out = {k: v.clone() for k, v in state.items() if torch.is_tensor(v)}
    for b, (kind, value) in enumerate(state.get("_extra_state", {}).get("replay", [])):
        if kind == "batch":  # a replayed meta-batch: x_spt, y_spt, x_qry, y_qry
            out.update({f"replay.{b}.{i}": x.clone() for i, x in enumerate(value[:4])})
            continue
        for t, env in enumerate(value):  # the replayed environments of a meta-batch
            out.update({f"replay.{b}.{t}.{i}": x.clone() for i, x in enumerate(env)})
    return out


def _learner_job(folder: str) -> None:
    ctx = DistributedContext.from_env(CPU)
    try:
        for mode in MODES:
            state = _train_learner(mode, ctx)
            torch.save(state, Path(folder) / f"{mode}.rank{ctx.rank}.pt")
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def learner_runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("learners")
    spawn_local(_learner_job, WORLD, args=(str(folder),), threads=1)
    return folder


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_with_half_batches_update_like_one_with_the_whole(learner_runs, mode):
    one = _train_learner(mode, DistributedContext())
    for rank in range(WORLD):
        two = torch.load(learner_runs / f"{mode}.rank{rank}.pt")
        assert one.keys() == two.keys()
        for name, value in one.items():
            diff = float((value - two[name]).abs().max())
            assert diff < 1e-10, (mode, rank, name, diff)
    replayed = [k for k in one if k.startswith("replay.")]
    if mode == "refresh":  # the last 2 meta-batches, whole, on every rank
        assert len(replayed) == 2 * 4 and one["replay.0.0"].shape[0] == META_BATCH
    elif mode != "maml":  # the last 2 meta-batches' environments, all 4 of each, on every rank
        assert len(replayed) == 2 * META_BATCH * 4


# ---------------------------------------------------------------- trainer level
def _cfg(iterations: int) -> TrainConfig:
    # val_tasks 3: not a multiple of the 2 processes, so the shares differ
    return tiny_config(iterations=iterations, val_every=2, val_tasks=3, crl_steps=2, seed=3)


def _count_saves(folder: Path, rank: int) -> None:
    """Log every checkpoint write of this process to folder/saves.rank{rank}.log."""
    import metacrl.train.trainer as module

    original = module.atomic_save

    def counted(obj, path):
        with open(folder / f"saves.rank{rank}.log", "a") as log:
            log.write(f"{Path(path).parent.name}/{Path(path).name}\n")
        original(obj, path)

    module.atomic_save = counted


def _trainer_job(folder: str) -> None:
    root = Path(folder)
    ctx = DistributedContext.from_env(CPU)
    _count_saves(root, ctx.rank)
    try:
        for metacrl in (False, True):  # the whole run under 2 processes
            trainer = build_trainer(
                _cfg(4), metacrl, root / f"two-{metacrl}", progress=False, dist=ctx
            )
            trainer.train()
            trainer.test()
        # 2 processes train 2 iterations; 1 process resumes (in the test)
        build_trainer(_cfg(2), True, root / "two-then-one", progress=False, dist=ctx).train()
        # 1 process trained 2 iterations (before the spawn); 2 processes resume
        again = build_trainer(_cfg(4), True, root / "one-then-two", progress=False, dist=ctx)
        assert again.resume() and again.iteration == 2
        again.train()
        # a stop request on rank 1 alone stops both processes after the same iteration
        stop = StopRequest()
        halted = build_trainer(_cfg(4), False, root / "stop", stop=stop, progress=False, dist=ctx)
        if ctx.rank == 1:
            step = halted.learner.meta_step

            def step_then_stop(*batch):
                stop.set()
                return step(*batch)

            halted.learner.meta_step = step_then_stop
        try:
            halted.train()
        except TrainingInterrupted as err:
            (root / f"stopped.rank{ctx.rank}").write_text(str(err.iteration))
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def trainer_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trainers")
    build_trainer(_cfg(2), True, root / "one-then-two", progress=False).train()
    spawn_local(_trainer_job, WORLD, args=(str(root),), threads=1)
    return root


def _assert_same_learner(a: Trainer | dict, b: Trainer | dict, atol: float = 1e-5) -> None:
    sa = a.learner.state_dict() if isinstance(a, Trainer) else a
    sb = b.learner.state_dict() if isinstance(b, Trainer) else b
    assert sa.keys() == sb.keys()
    for name, value in sa.items():
        if torch.is_tensor(value) and not NOT_COMPARED.search(name):
            diff = float((value.double() - sb[name].double()).abs().max())
            assert diff < atol, (name, diff)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_same_log(a: Path, b: Path) -> None:
    ra, rb = _records(a), _records(b)
    assert [(r["kind"], r["iteration"]) for r in ra] == [(r["kind"], r["iteration"]) for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert x.keys() == y.keys()
        for key, value in x.items():
            if isinstance(value, float):
                assert value == pytest.approx(y[key], rel=1e-4, abs=1e-6), (x["iteration"], key)


@pytest.mark.parametrize("metacrl", [False, True])
def test_trainer_under_two_processes_matches_one_process(trainer_runs, tmp_path, metacrl):
    one = build_trainer(_cfg(4), metacrl, tmp_path / "one", progress=False)
    one.train()
    two_dir = trainer_runs / f"two-{metacrl}"
    _assert_same_learner(one, load_checkpoint(two_dir / "checkpoint.pt")["learner"])
    row = one.test()  # loads best.pt
    _assert_same_log(one.log.path, two_dir / "metrics.jsonl")
    two_row = json.loads((two_dir / "result.json").read_text())
    assert two_row["test"]["episodes"] == 4.0
    for key, value in row.test.items():
        assert two_row["test"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert two_row["best_iteration"] == row.best_iteration


def test_only_rank_0_writes_and_each_checkpoint_once(trainer_runs):
    assert not (trainer_runs / "saves.rank1.log").exists()  # rank 1 never wrote a checkpoint
    saves = (trainer_runs / "saves.rank0.log").read_text().splitlines()
    for metacrl in (False, True):
        run = f"two-{metacrl}"
        # checkpoint at iterations 2 and 4; best.pt whenever validation improved (at most 2)
        assert saves.count(f"{run}/checkpoint.pt") == 2
        assert 1 <= saves.count(f"{run}/best.pt") <= 2
        names = sorted(p.name for p in (trainer_runs / run).iterdir())
        assert names == [
            "best.pt",
            "checkpoint.pt",
            "config.json",
            "metrics.csv",
            "metrics.jsonl",
            "result.json",
        ]
        records = _records(trainer_runs / run / "metrics.jsonl")
        assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
        assert [r["episodes"] for r in records if r["kind"] == "val"] == [3.0, 3.0]


def test_two_processes_save_and_one_resumes_like_an_uninterrupted_run(trainer_runs, tmp_path):
    whole = build_trainer(_cfg(4), True, tmp_path / "whole", progress=False)
    whole.train()
    resumed = build_trainer(_cfg(4), True, trainer_runs / "two-then-one", progress=False)
    assert resumed.resume() and resumed.iteration == 2
    resumed.train()
    _assert_same_learner(whole, resumed)
    _assert_same_log(whole.log.path, resumed.log.path)


def test_one_process_saves_and_two_resume_like_an_uninterrupted_run(trainer_runs, tmp_path):
    whole = build_trainer(_cfg(4), True, tmp_path / "whole", progress=False)
    whole.train()
    run = trainer_runs / "one-then-two"
    _assert_same_learner(whole, load_checkpoint(run / "checkpoint.pt")["learner"])
    _assert_same_log(whole.log.path, run / "metrics.jsonl")


def test_a_stop_request_on_one_rank_stops_all_after_the_same_iteration(trainer_runs):
    assert [(trainer_runs / f"stopped.rank{r}").read_text() for r in range(WORLD)] == ["1", "1"]
    ckpt = load_checkpoint(trainer_runs / "stop" / "checkpoint.pt")
    assert ckpt["iteration"] == 1 and ckpt["done"] is False


# ---------------------------------------------------------------- command line, torchrun
def test_metacrl_train_under_torchrun_writes_one_set_of_files(tmp_path):
    out = tmp_path / "run"
    args = [
        *("--iterations", "2", "--meta-batch", "2", "--val-every", "2", "--val-tasks", "2"),
        *("--test-tasks", "2", "--image-size", "16", "--hidden", "4", "--ways", "3"),
        *("--queries", "2", "--crl-steps", "1", "--device", "cpu", "--no-progress"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD)),
            *("-m", "metacrl", "train", *args, "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("| MAML | ") == 1 and done.stdout.count("| MAML + MetaCRL | ") == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "base",
        "curves.png",
        "metacrl",
        "results.json",
        "results.md",
    ]
    for arm in ("base", "metacrl"):
        records = _records(out / arm / "metrics.jsonl")
        assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2]
        assert load_checkpoint(out / arm / "checkpoint.pt")["done"] is True
    assert not list(out.rglob("*.tmp"))


# ---------------------------------------------------------------- errors and one process
def test_a_meta_batch_that_does_not_split_exits_2_before_joining(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    out = tmp_path / "run"
    code = main(["train", "--meta-batch", "3", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("metacrl: error: --meta-batch 3 does not split over 2 processes")
    assert len(err.splitlines()) == 1
    assert not dist.is_initialized() and not out.exists()


def test_trainer_refuses_an_uneven_split():
    ctx = DistributedContext(rank=0, world_size=3)
    with pytest.raises(ValueError, match="use a multiple of 3"):
        build_trainer(_cfg(2), False, "unused", progress=False, dist=ctx)


def test_single_process_context_is_inert():
    ctx = DistributedContext.from_env(CPU, env={"WORLD_SIZE": "1", "RANK": "0"})
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.backend) == (0, 1, True, None)
    w = torch.nn.Parameter(torch.ones(2))
    (3 * w).sum().backward()
    assert ctx.average_gradients([w]) == 0 and w.grad.tolist() == [3.0, 3.0]
    assert ctx.mean({"loss": 0.25}) == {"loss": 0.25}
    assert ctx.broadcast("x") == "x" and ctx.gather_objects(1) == [1]
    assert not dist.is_initialized()


def test_launch_info_reads_torchrun_variables():
    assert launch_info({}).world_size == 1
    info = launch_info({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (info.rank, info.world_size, info.local_rank, info.distributed) == (2, 4, 0, True)
    with pytest.raises(ValueError, match="RANK=4 is out of range"):
        launch_info({"WORLD_SIZE": "4", "RANK": "4"})
    with pytest.raises(ValueError, match="not an integer"):
        launch_info({"WORLD_SIZE": "two"})


def test_shards_are_disjoint_contiguous_and_cover_every_batch():
    assert check_meta_batch(4, 2) == 2
    for size, world in [(4, 2), (5, 2), (1, 2), (6, 3)]:
        parts = [shard_bounds(size, r, world) for r in range(world)]
        assert parts[0][0] == 0 and parts[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    data = Sinusoid(batchsz=10, k_shot=2, k_query=2)
    whole = TaskLoader(data, batch_size=4).task_indices()
    shards = [TaskLoader(data, batch_size=4, shard=(r, 2)).task_indices() for r in range(2)]
    assert sorted(shards[0] + shards[1]) == whole == list(range(10))
    assert shards == [[0, 1, 4, 5, 8], [2, 3, 6, 7, 9]]
    with pytest.raises(ValueError, match="out of range"):
        TaskLoader(data, batch_size=4, shard=(2, 2))


def test_gathered_episodes_come_back_in_episode_order():
    scores, losses = gather_episodes([2, 0, 1], torch.tensor([3.0, 1.0, 2.0]), torch.zeros(3), 1)
    assert scores.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="2 episode indices for 3 scores"):
        gather_episodes([0, 1], torch.zeros(3), torch.zeros(3), 1)
