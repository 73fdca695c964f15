"""Meta-train one learner with periodic validation, metrics, checkpoints and exact resume."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metacrl.cli.build import build_dataset, build_learner, build_model
from metacrl.cli.config import TrainConfig
from metacrl.distributed.context import DistributedContext
from metacrl.distributed.evaluation import gather_episodes
from metacrl.distributed.sharding import check_meta_batch
from metacrl.learners import Learner
from metacrl.train.checkpoint import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from metacrl.train.evaluate import Evaluation, evaluate_episodes
from metacrl.train.interrupt import StopRequest, TrainingInterrupted
from metacrl.train.metrics import MetricsLog

__all__ = ["ArmResult", "RESUMABLE_KEYS", "Trainer", "arm_label", "config_mismatch"]

VAL_SEED = 10_000
TEST_SEED = 20_000
RESUMABLE_KEYS = frozenset({"device", "workers", "out", "iterations", "test_tasks"})
"""Settings that may differ between a checkpoint and the run that resumes it."""

_LABELS = {"maml": "MAML", "anil": "ANIL", "metasgd": "Meta-SGD", "protonet": "ProtoNet"}


def arm_label(cfg: TrainConfig, metacrl: bool) -> str:
    """Return the table name of a run, e.g. ``"MAML + MetaCRL"``.

    Args:
        cfg: The run's configuration (its learner and ``first_order``).
        metacrl: Whether the run uses MetaCRL.

    Returns:
        The learner's name, then ``(FO)`` for a first-order gradient learner and
        ``+ MetaCRL`` for a MetaCRL run.

    Example:
        >>> from metacrl.cli import TrainConfig
        >>> arm_label(TrainConfig(learner="anil", first_order=True), metacrl=True)
        'ANIL (FO) + MetaCRL'
    """
    first = " (FO)" if cfg.first_order and cfg.learner in ("maml", "anil", "metasgd") else ""
    return _LABELS[cfg.learner] + first + (" + MetaCRL" if metacrl else "")


def config_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Return the settings that differ between a checkpoint and the current run.

    Settings in :data:`RESUMABLE_KEYS` (device, workers, out, iterations, test_tasks) may
    differ and are not reported.

    Args:
        saved: The checkpoint's settings (``TrainConfig.as_dict()``).
        current: The current run's settings.

    Returns:
        The names of the differing settings, sorted.

    Example:
        >>> config_mismatch({"seed": 0, "iterations": 300}, {"seed": 1, "iterations": 600})
        ['seed']
    """
    keys = (set(saved) | set(current)) - RESUMABLE_KEYS
    return sorted(k for k in keys if saved.get(k) != current.get(k))


@dataclass
class ArmResult:
    """The outcome of one run (one learner, with or without MetaCRL): a row of the results table.

    Attributes:
        label: The table name, e.g. ``"MAML + MetaCRL"``.
        metacrl: Whether the run used MetaCRL.
        test: The test summary (:meth:`Evaluation.summary`): the score, its 95% CI half-width,
            the loss and the number of episodes.
        best_val: The best validation score, or ``None`` if the run never validated.
        best_iteration: The iteration of that score (the model that was tested).
        iterations: Meta-iterations trained.
        train_seconds: Time spent in meta-steps (validation and testing excluded).

    Example:
        >>> row = ArmResult("MAML", False, {"accuracy": 0.72, "accuracy_ci95": 0.014,
        ...                 "loss": 0.8, "episodes": 200.0}, 0.75, 300, 300, 99.0)
        >>> row.as_dict()["best_val"]
        0.75
    """

    label: str
    metacrl: bool
    test: dict[str, float]
    best_val: float | None
    best_iteration: int | None
    iterations: int
    train_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dictionary (what ``result.json`` holds).

        Returns:
            A shallow copy of the fields, keyed by name (the ``test`` dictionary is shared).

        Example:
            >>> row = ArmResult("ProtoNet", False, {"accuracy": 0.5}, None, None, 0, 0.0)
            >>> sorted(row.as_dict())  # doctest: +NORMALIZE_WHITESPACE
            ['best_iteration', 'best_val', 'iterations', 'label', 'metacrl', 'test',
             'train_seconds']
        """
        return dict(self.__dict__)


def _to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor inside (dicts, lists, tuples) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        out = copy.copy(obj)  # keeps a state dict's ``_metadata``
        for key, value in obj.items():
            out[key] = _to_device(value, device)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


class Trainer:
    """Meta-trains one learner as ``cfg`` describes, in ``run_dir``.

    Files: ``checkpoint.pt`` (latest state, written atomically every ``val_every`` iterations,
    at the end and on Ctrl-C), ``best.pt`` (best validation score), ``metrics.jsonl`` and
    ``metrics.csv``, ``result.json``. A resumed run continues from ``checkpoint.pt`` with the
    same task stream and random state, so it ends exactly where an uninterrupted run would.

    Building a trainer seeds torch with ``cfg.seed`` and builds the model, the learner, the
    Adam meta-optimiser and the train/val/test datasets; it writes nothing.

    Data-parallel (``dist`` with several processes, see :mod:`metacrl.distributed`): each
    process takes its equal share of every meta-batch (``cfg.meta_batch`` stays the global
    meta-batch), the meta-gradients are averaged once per meta-batch, the logged train metrics
    are averaged, validation and test episodes are split over the processes and their scores
    gathered; only rank 0 writes files or shows a progress bar, and checkpoints are read by
    rank 0 and broadcast. The updates equal those of one process (up to rounding), so a
    checkpoint resumes under any number of processes.

    Args:
        cfg: A resolved configuration (:meth:`TrainConfig.resolved
            <metacrl.cli.TrainConfig.resolved>`).
        metacrl: Train with MetaCRL.
        run_dir: Folder of this run.
        device: Where to train.
        stop: The stop request checked after every meta-step (default: a new one, never set).
        progress: Show a progress bar (default ``True``; only on rank 0).
        dist: The process group (default: a single process).

    Raises:
        ValueError: If ``cfg.meta_batch`` does not split evenly over the processes.

    Example:
        >>> import tempfile, torch
        >>> from metacrl.cli import TrainConfig
        >>> cfg = TrainConfig(ways=2, queries=2, hidden=8, image_size=16, meta_batch=2,
        ...                   inner_steps=1, iterations=2, val_every=2, val_tasks=2,
        ...                   test_tasks=2).resolved()
        >>> with tempfile.TemporaryDirectory() as d:
        ...     trainer = Trainer(cfg, metacrl=True, run_dir=d, device=torch.device("cpu"),
        ...                       progress=False)
        ...     trainer.train()
        ...     row = trainer.test()
        ...     sorted(p.name for p in trainer.dir.iterdir())
        [MAML + MetaCRL] iteration 2: validation accuracy ...
        ['best.pt', 'checkpoint.pt', 'config.json', 'metrics.csv', 'metrics.jsonl', 'result.json']
        >>> row.label, row.iterations, row.test["episodes"]
        ('MAML + MetaCRL', 2, 2.0)
    """

    def __init__(
        self,
        cfg: TrainConfig,
        metacrl: bool,
        run_dir: str | Path,
        device: torch.device,
        stop: StopRequest | None = None,
        progress: bool = True,
        dist: DistributedContext | None = None,
    ) -> None:
        self.dist = dist if dist is not None else DistributedContext(device=device)
        check_meta_batch(cfg.meta_batch, self.dist.world_size)
        self.cfg = cfg
        self.metacrl = metacrl
        self.dir = Path(run_dir)
        self.device = device
        self.stop = stop if stop is not None else StopRequest()
        self.progress = progress and self.dist.is_main
        self.label = arm_label(cfg, metacrl)
        self.log = MetricsLog(self.dir / "metrics.jsonl")
        self.metric = "mse" if cfg.dataset == "sinusoid" else "accuracy"
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg)
        self.learner: Learner = build_learner(cfg, self.model, metacrl).to(device)
        self.dist.attach(self.learner)
        params = [p for p in self.learner.parameters() if p.requires_grad]
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=cfg.meta_lr)
        self.iteration = 0
        self.train_seconds = 0.0
        self.best: tuple[float, int] | None = None
        self.done = False
        tasks = cfg.iterations * cfg.meta_batch
        self.train_set = build_dataset(cfg, "train", tasks, cfg.seed)
        self.val_set = build_dataset(cfg, "val", cfg.val_tasks, VAL_SEED)
        self.test_set = build_dataset(cfg, "test", cfg.test_tasks, TEST_SEED)

    # ------------------------------------------------------------------ state
    @property
    def checkpoint_path(self) -> Path:
        """The latest checkpoint."""
        return self.dir / "checkpoint.pt"

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly.

        Returns:
            The configuration (as a dictionary), the MetaCRL flag, the iteration, the training
            time, the learner's and optimiser's state dicts, the random states, the best
            validation ``(score, iteration)`` and whether training is done.

        Example:
            >>> import tempfile, torch
            >>> from metacrl.cli import TrainConfig
            >>> cfg = TrainConfig(ways=2, queries=1, hidden=4, image_size=16, meta_batch=2,
            ...                   iterations=2, val_tasks=2, test_tasks=2).resolved()
            >>> tmp = tempfile.TemporaryDirectory()
            >>> trainer = Trainer(cfg, metacrl=False, run_dir=tmp.name,
            ...                   device=torch.device("cpu"), progress=False)
            >>> sorted(trainer.state())  # doctest: +NORMALIZE_WHITESPACE
            ['best', 'config', 'done', 'iteration', 'learner', 'metacrl', 'optimizer', 'rng',
             'train_seconds']
            >>> tmp.cleanup()
        """
        return {
            "config": self.cfg.as_dict(),
            "metacrl": self.metacrl,
            "iteration": self.iteration,
            "train_seconds": self.train_seconds,
            "learner": self.learner.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "best": self.best,
            "done": self.done,
        }

    def save(self) -> None:
        """Write ``checkpoint.pt`` atomically (on rank 0 only).

        Writes :meth:`state` to :attr:`checkpoint_path` (a temporary file, then a rename).

        Example:
            >>> import tempfile, torch
            >>> from metacrl.cli import TrainConfig
            >>> cfg = TrainConfig(ways=2, queries=1, hidden=4, image_size=16, meta_batch=2,
            ...                   iterations=2, val_tasks=2, test_tasks=2).resolved()
            >>> tmp = tempfile.TemporaryDirectory()
            >>> trainer = Trainer(cfg, metacrl=False, run_dir=tmp.name,
            ...                   device=torch.device("cpu"), progress=False)
            >>> trainer.save()
            >>> trainer.checkpoint_path.name, trainer.checkpoint_path.exists()
            ('checkpoint.pt', True)
            >>> tmp.cleanup()
        """
        if self.dist.is_main:
            atomic_save(self.state(), self.checkpoint_path)

    def _load_on_main(self, path: Path) -> dict[str, Any] | None:
        """Rank 0 reads ``path`` (``None`` if absent) and every process gets what it read.

        The learner's state comes on :attr:`device`; with several processes it travels on the
        CPU, so other machines need not see rank 0's files.
        """
        if not self.dist.distributed:
            return load_checkpoint(path, map_location=self.device) if path.exists() else None
        found: tuple[str, Any] = ("none", None)
        if self.dist.is_main and path.exists():
            try:
                found = ("ok", load_checkpoint(path, map_location="cpu"))
            except CheckpointError as err:
                found = ("error", str(err))
        kind, value = self.dist.broadcast(found)
        if kind == "error":
            raise CheckpointError(value)
        if kind == "none":
            return None
        if "learner" in value:
            value["learner"] = _to_device(value["learner"], self.device)
        return dict(value)

    def resume(self) -> bool:
        """Load ``checkpoint.pt`` if there is one; return whether it was loaded.

        Restores the learner, the optimiser, the random states, the iteration counter, the
        training time and the best validation score, and truncates ``metrics.jsonl`` to the
        checkpoint's iteration. Settings in :data:`RESUMABLE_KEYS` may differ.

        Returns:
            ``True`` if a checkpoint was loaded, ``False`` if there was none (nothing changes).

        Raises:
            CheckpointError: If it was written by another configuration (or with the other
                ``metacrl`` flag), or cannot be read.

        Example:
            >>> import tempfile, torch
            >>> from metacrl.cli import TrainConfig
            >>> cfg = TrainConfig(ways=2, queries=1, hidden=4, image_size=16, meta_batch=2,
            ...                   iterations=2, val_tasks=2, test_tasks=2).resolved()
            >>> tmp = tempfile.TemporaryDirectory()
            >>> trainer = Trainer(cfg, metacrl=False, run_dir=tmp.name,
            ...                   device=torch.device("cpu"), progress=False)
            >>> trainer.resume()                         # nothing saved yet
            False
            >>> trainer.iteration = 1
            >>> trainer.save()
            >>> again = Trainer(cfg, metacrl=False, run_dir=tmp.name,
            ...                 device=torch.device("cpu"), progress=False)
            >>> again.resume(), again.iteration
            (True, 1)
            >>> tmp.cleanup()
        """
        ckpt = self._load_on_main(self.checkpoint_path)
        if ckpt is None:
            return False
        differ = config_mismatch(ckpt.get("config", {}), self.cfg.as_dict())
        if differ or ckpt.get("metacrl") != self.metacrl:
            raise CheckpointError(
                f"{self.checkpoint_path} is from another configuration (differs in: "
                f"{', '.join(differ) or 'metacrl'}); use another --out or the same settings"
            )
        self.learner.load_state_dict(ckpt["learner"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        self.iteration = int(ckpt["iteration"])
        self.train_seconds = float(ckpt["train_seconds"])
        self.best = None if ckpt["best"] is None else (float(ckpt["best"][0]), int(ckpt["best"][1]))
        self.done = bool(ckpt["done"]) and self.iteration >= self.cfg.iterations
        if self.dist.is_main:
            self.log.truncate(self.iteration)
        return True

    # ------------------------------------------------------------------ loops
    def _loader(self, dataset: Any, start: int = 0, num_batches: int | None = None) -> Any:
        from metacrl.data import TaskLoader

        return TaskLoader(
            dataset,
            batch_size=self.cfg.meta_batch,
            num_workers=self.cfg.workers,
            start=start,
            num_batches=num_batches,
            shard=(self.dist.rank, self.dist.world_size),
        )

    def _evaluate(self, dataset: Any) -> Evaluation:
        """Score the episodes of ``dataset``: this process's share, then everyone's gathered."""
        loader = self._loader(dataset)
        if not self.dist.distributed:
            return evaluate_episodes(self.learner, loader)
        if len(loader):
            local = evaluate_episodes(self.learner, loader)
            scores, losses = local.scores, local.losses
        else:  # fewer episodes than processes: nothing here
            scores = losses = torch.zeros(0)
        scores, losses = gather_episodes(
            loader.task_indices(), scores, losses, self.dist.world_size
        )
        return Evaluation(scores, losses, self.metric)

    def _better(self, score: float) -> bool:
        if self.best is None:
            return True
        return score < self.best[0] if self.metric == "mse" else score > self.best[0]

    def validate(self) -> Evaluation:
        """Score the current learner on the validation episodes; keep the best in best.pt.

        Appends a ``"val"`` record to the metrics log and, if the score beats the best so far
        (higher accuracy, or lower MSE), saves the learner to ``best.pt``. :meth:`train` calls
        it every ``cfg.val_every`` iterations and at the end (see the class example).

        Returns:
            The validation scores over ``cfg.val_tasks`` episodes.
        """
        result = self._evaluate(self.val_set)
        if self.dist.is_main:
            self.log.append({"kind": "val", "iteration": self.iteration, **result.summary()})
        if self._better(result.mean):
            self.best = (result.mean, self.iteration)
            if self.dist.is_main:
                atomic_save(
                    {
                        "config": self.cfg.as_dict(),
                        "metacrl": self.metacrl,
                        "iteration": self.iteration,
                        "learner": self.learner.state_dict(),
                    },
                    self.dir / "best.pt",
                )
        return result

    def train(self) -> None:
        """Meta-train up to ``cfg.iterations``; on a stop request save and raise.

        Starts from the current iteration (0, or the resumed one), writes ``config.json``,
        validates and checkpoints every ``cfg.val_every`` iterations and at the end, and
        rewrites ``metrics.csv`` when it returns or raises. See the class example.

        Raises:
            TrainingInterrupted: After saving, when :attr:`stop` was set.
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        main = self.dist.is_main
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "config.json").write_text(json.dumps(cfg.as_dict(), indent=2))
        remaining = cfg.iterations - self.iteration
        if remaining <= 0:
            self.done = True
            self.save()
            return
        self.done = False
        self.learner.train()
        bar = tqdm(
            total=cfg.iterations, initial=self.iteration, desc=self.label, disable=not self.progress
        )
        try:
            for batch in self._loader(self.train_set, start=self.iteration, num_batches=remaining):
                start = time.perf_counter()
                self.optimizer.zero_grad(set_to_none=True)
                out = self.learner.meta_step(*batch)
                out.loss.backward()  # type: ignore[no-untyped-call]
                self.dist.average_gradients(self.params)
                self.optimizer.step()
                if self.metacrl:  # computed alike everywhere; keep them bit-identical on GPUs
                    self.dist.broadcast_parameters(self._shared_state())
                self.dist.average_buffers(self.learner)
                self.train_seconds += time.perf_counter() - start
                self.iteration += 1
                # one all-reduce: the metrics' means and whether any process was asked to stop
                record = self.dist.mean({**out.summary(), "stop": float(bool(self.stop))})
                stop = record.pop("stop") > 0
                if main:
                    self.log.append({"kind": "train", "iteration": self.iteration, **record})
                bar.update(1)
                bar.set_postfix(
                    loss=f"{record['query_loss']:.3f}",
                    **{self.metric: f"{record[self.metric]:.3f}"},
                )
                last = self.iteration == cfg.iterations
                if self.iteration % cfg.val_every == 0 or last:
                    val = self.validate()
                    if main:
                        bar.write(
                            f"[{self.label}] iteration {self.iteration}: validation "
                            f"{self.metric} {val.mean:.4f} ± {val.ci95:.4f}"
                        )
                    self.done = last
                    self.save()
                if stop and not last:
                    self.save()
                    raise TrainingInterrupted(self.iteration, str(self.checkpoint_path))
        finally:
            bar.close()
            if main:
                self.log.write_csv(self.dir / "metrics.csv")

    def _shared_state(self) -> list[torch.Tensor]:
        """MetaCRL's ``Xi`` and ``f_gr`` (what the causal step updates on every process)."""
        regularizer = getattr(self.learner, "regularizer", None)
        return [] if regularizer is None else list(regularizer.parameters())

    def test(self) -> ArmResult:
        """Evaluate the best-validation model (or the last) on the test episodes.

        The best model of ``best.pt`` is loaded into :attr:`learner` (which keeps those
        weights afterwards); ``result.json`` is written. See the class example.

        Returns:
            The results-table row of this run.
        """
        best = self._load_on_main(self.dir / "best.pt")
        if best is not None:
            self.learner.load_state_dict(best["learner"])
        result = self._evaluate(self.test_set)
        arm = ArmResult(
            label=self.label,
            metacrl=self.metacrl,
            test=result.summary(),
            best_val=None if self.best is None else self.best[0],
            best_iteration=None if self.best is None else self.best[1],
            iterations=self.iteration,
            train_seconds=self.train_seconds,
        )
        if self.dist.is_main:
            (self.dir / "result.json").write_text(json.dumps(arm.as_dict(), indent=2))
        return arm
