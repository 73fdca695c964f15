"""Meta-train one learner with periodic validation, metrics, checkpoints and exact resume."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from metacrl.data import TaskDataset, TaskLoader
from metacrl.data.atomic import write_bytes_atomic
from metacrl.distributed.context import DistributedContext
from metacrl.distributed.evaluation import gather_episodes
from metacrl.distributed.sharding import check_meta_batch
from metacrl.learners import Learner
from metacrl.learners.fit import train_step
from metacrl.regularizer import MetaCRLLearner
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
from metacrl.train.result import ArmResult
from metacrl.train.settings import TrainSettings, config_mismatch

__all__ = ["Trainer"]


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
    """Meta-trains one learner on its task datasets, in ``run_dir``.

    Files: ``checkpoint.pt`` (latest state, written every ``val_every`` iterations, at the end
    and on a stop request), ``best.pt`` (best validation score), ``metrics.jsonl`` and
    ``metrics.csv``, ``config.json`` and ``result.json``. Every file but the appended
    ``metrics.jsonl`` is written atomically (a reader sees the old file or the new one), with
    the mode the umask gives new files. A resumed run continues from ``checkpoint.pt`` with the
    same task stream and random state, so it ends exactly where an uninterrupted run would.
    The metrics log always matches the state: a run cuts it back to its own iteration before
    training (0 for a run that was not resumed, which starts the folder's run over), so records
    of a run that died before its checkpoint never mix in.

    Each meta-iteration is one :func:`~metacrl.learners.fit.train_step` (the step of
    :meth:`Learner.fit <metacrl.learners.Learner.fit>`) on the next meta-batch of ``train_set``,
    with Adam at ``settings.meta_lr`` over the parameters that require gradients.

    Building a trainer moves the learner to the device and makes the optimiser; it writes
    nothing. ``metacrl train`` builds the same objects from its settings (its ``build_trainer``).

    Data-parallel (``dist`` with several processes, see :mod:`metacrl.distributed`): each
    process takes its equal share of every meta-batch (``settings.meta_batch`` stays the global
    meta-batch), the meta-gradients are averaged once per meta-batch, the logged train metrics
    are averaged, validation and test episodes are split over the processes and their scores
    gathered; only rank 0 writes files or shows a progress bar, and checkpoints are read by
    rank 0 and broadcast. The updates equal those of one process up to rounding (in float32
    the differences grow over the iterations, so runs drift apart; in float64 they stay
    equal), and a checkpoint resumes under any number of processes.

    Args:
        learner: The learner, plain or wrapped by MetaCRL (``reg.wrap(learner)``).
        train_set: The training tasks; task ``i * meta_batch`` starts meta-iteration ``i + 1``,
            so it needs ``iterations * meta_batch`` tasks.
        val_set: The validation episodes.
        test_set: The test episodes.
        settings: How to train (iterations, meta-batch, learning rate, ...).
        run_dir: Folder of this run (created by :meth:`train`).
        device: Where to train (default: ``dist.device``, or the CPU without ``dist``).
        stop: The stop request checked after every meta-step (default: a new one, never set).
        progress: Show a progress bar (default ``True``; only on rank 0).
        dist: The process group (default: a single process).

    Raises:
        ValueError: If ``settings.meta_batch`` does not split evenly over the processes, or
            ``device`` is not ``dist.device``.

    Example:
        >>> import tempfile, torch
        >>> from metacrl.data import ConfoundedShapes
        >>> from metacrl.models import Conv4
        >>> def tasks(split, count, seed):
        ...     return ConfoundedShapes(split, n_way=2, k_shot=1, k_query=2, image_size=16,
        ...                             batchsz=count, meta_batch_size=2, seed=seed)
        >>> _ = torch.manual_seed(0)
        >>> learner = MAML(Conv4(hidden=4, n_way=2, image_size=16), inner_lr=0.05, inner_steps=1)
        >>> settings = TrainSettings(iterations=2, meta_batch=2, val_every=2, label="MAML")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     trainer = Trainer(learner, tasks("train", 4, 0), tasks("val", 2, 1),
        ...                       tasks("test", 2, 2), settings, d, progress=False)
        ...     trainer.train()
        ...     row = trainer.test()
        ...     sorted(p.name for p in trainer.dir.iterdir())
        [MAML] iteration 2: validation accuracy ...
        ['best.pt', 'checkpoint.pt', 'config.json', 'metrics.csv', 'metrics.jsonl', 'result.json']
        >>> row.label, row.iterations, row.test["episodes"]
        ('MAML', 2, 2.0)
    """

    def __init__(
        self,
        learner: Learner,
        train_set: TaskDataset,
        val_set: TaskDataset,
        test_set: TaskDataset,
        settings: TrainSettings,
        run_dir: str | Path,
        *,
        device: torch.device | str | None = None,
        stop: StopRequest | None = None,
        progress: bool = True,
        dist: DistributedContext | None = None,
    ) -> None:
        if dist is None:
            dist = DistributedContext(device=torch.device("cpu" if device is None else device))
        elif device is not None and torch.device(device) != dist.device:
            raise ValueError(f"device {device} is not the process group's {dist.device}")
        self.dist = dist
        check_meta_batch(settings.meta_batch, self.dist.world_size)
        self.settings = settings
        self.dir = Path(run_dir)
        self.device = self.dist.device
        self.stop = stop if stop is not None else StopRequest()
        self.progress = progress and self.dist.is_main
        self.label = settings.label
        self.metric = settings.metric
        self.log = MetricsLog(self.dir / "metrics.jsonl")
        self.learner = learner.to(self.device)
        self.metacrl = isinstance(self.learner, MetaCRLLearner)
        self.dist.attach(self.learner)
        self.params = [p for p in self.learner.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=settings.meta_lr)
        self.train_set = train_set
        self.val_set = val_set
        self.test_set = test_set
        self.iteration = 0
        self.train_seconds = 0.0
        self.best: tuple[float, int] | None = None
        self.done = False

    # ------------------------------------------------------------------ state
    @property
    def checkpoint_path(self) -> Path:
        """The latest checkpoint."""
        return self.dir / "checkpoint.pt"

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly.

        Returns:
            The settings' ``config``, the MetaCRL flag, the iteration, the training time, the
            learner's and optimiser's state dicts, the random states, the best validation
            ``(score, iteration)`` and whether training is done.
        """
        return {
            "config": dict(self.settings.config),
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
        checkpoint's iteration. Keys of the settings' ``config`` in
        :data:`~metacrl.train.settings.RESUMABLE_KEYS` may differ.

        Returns:
            ``True`` if a checkpoint was loaded, ``False`` if there was none (nothing changes).

        Raises:
            CheckpointError: If it was written with another ``config`` (or with MetaCRL when
                this learner has none, or the reverse), or cannot be read.
        """
        ckpt = self._load_on_main(self.checkpoint_path)
        if ckpt is None:
            return False
        differ = config_mismatch(ckpt.get("config", {}), self.settings.config)
        if differ or ckpt.get("metacrl") != self.metacrl:
            raise CheckpointError(
                f"{self.checkpoint_path} is from another configuration (differs in: "
                f"{', '.join(differ) or 'metacrl'}); use another run folder or the same settings"
            )
        self.learner.load_state_dict(ckpt["learner"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        self.iteration = int(ckpt["iteration"])
        self.train_seconds = float(ckpt["train_seconds"])
        self.best = None if ckpt["best"] is None else (float(ckpt["best"][0]), int(ckpt["best"][1]))
        self.done = bool(ckpt["done"]) and self.iteration >= self.settings.iterations
        self._trim_log()
        return True

    def _trim_log(self) -> None:
        """Cut ``metrics.jsonl`` back to :attr:`iteration` (rank 0), saying what went."""
        if not self.dist.is_main:
            return
        trim = self.log.truncate(self.iteration)
        if trim.records or trim.torn:
            torn = f" and {len(trim.torn)} torn line(s)" if trim.torn else ""
            why = (
                "of an earlier run, which this one starts over"
                if self.iteration == 0
                else "written after the checkpoint this run continues"
            )
            print(
                f"[{self.label}] {self.log.path}: removed {trim.records} record(s) after "
                f"iteration {self.iteration}{torn}, {why}",
                file=sys.stderr,
                flush=True,
            )

    # ------------------------------------------------------------------ loops
    def _loader(
        self, dataset: TaskDataset, start: int = 0, num_batches: int | None = None
    ) -> TaskLoader:
        return TaskLoader(
            dataset,
            batch_size=self.settings.meta_batch,
            num_workers=self.settings.workers,
            start=start,
            num_batches=num_batches,
            shard=(self.dist.rank, self.dist.world_size),
        )

    def _evaluate(self, dataset: TaskDataset) -> Evaluation:
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
        it every ``settings.val_every`` iterations and at the end (see the class example).

        Returns:
            The validation scores over the episodes of ``val_set``.
        """
        result = self._evaluate(self.val_set)
        if self.dist.is_main:
            self.log.append({"kind": "val", "iteration": self.iteration, **result.summary()})
        if self._better(result.mean):
            self.best = (result.mean, self.iteration)
            if self.dist.is_main:
                atomic_save(
                    {
                        "config": dict(self.settings.config),
                        "metacrl": self.metacrl,
                        "iteration": self.iteration,
                        "learner": self.learner.state_dict(),
                    },
                    self.dir / "best.pt",
                )
        return result

    def train(self) -> None:
        """Meta-train up to ``settings.iterations``; on a stop request save and raise.

        Starts from the current iteration (0, or the resumed one): cuts ``metrics.jsonl`` back
        to it (a trainer that was not resumed starts the folder's log afresh) and writes
        ``config.json``; then validates and checkpoints every ``settings.val_every`` iterations
        and at the end, and rewrites ``metrics.csv`` when it returns or raises. See the class
        example.

        Raises:
            TrainingInterrupted: After saving, when :attr:`stop` was set.
        """
        from tqdm.auto import tqdm

        settings = self.settings
        main = self.dist.is_main
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._trim_log()
            write_bytes_atomic(
                self.dir / "config.json", json.dumps(dict(settings.config), indent=2).encode()
            )
        remaining = settings.iterations - self.iteration
        if remaining <= 0:
            self.done = True
            self.save()
            return
        self.done = False
        self.learner.train()
        bar = tqdm(
            total=settings.iterations,
            initial=self.iteration,
            desc=self.label,
            disable=not self.progress,
        )
        try:
            for batch in self._loader(self.train_set, start=self.iteration, num_batches=remaining):
                start = time.perf_counter()
                out = train_step(
                    self.learner, self.optimizer, batch, reduce_gradients=self._average_gradients
                )
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
                last = self.iteration == settings.iterations
                if self.iteration % settings.val_every == 0 or last:
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

    def _average_gradients(self) -> None:
        """Average the meta-gradients over the processes (once per meta-batch)."""
        self.dist.average_gradients(self.params)

    def _shared_state(self) -> list[torch.Tensor]:
        """MetaCRL's ``Xi`` and ``f_gr`` (what the causal step updates on every process)."""
        if not isinstance(self.learner, MetaCRLLearner):
            return []
        return list(self.learner.regularizer.parameters())

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
            write_bytes_atomic(
                self.dir / "result.json", json.dumps(arm.as_dict(), indent=2).encode()
            )
        return arm
