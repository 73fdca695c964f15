"""Meta-train one learner with periodic validation, metrics, checkpoints and exact resume."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metacrl.cli.build import build_dataset, build_learner, build_model
from metacrl.cli.config import TrainConfig
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
    """The table name of a run, e.g. ``"MAML + MetaCRL"``."""
    first = " (FO)" if cfg.first_order and cfg.learner in ("maml", "anil", "metasgd") else ""
    return _LABELS[cfg.learner] + first + (" + MetaCRL" if metacrl else "")


def config_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Settings that differ between a checkpoint and the current run (except resumable ones)."""
    keys = (set(saved) | set(current)) - RESUMABLE_KEYS
    return sorted(k for k in keys if saved.get(k) != current.get(k))


@dataclass
class ArmResult:
    """The outcome of one run (one learner, with or without MetaCRL)."""

    label: str
    metacrl: bool
    test: dict[str, float]
    best_val: float | None
    best_iteration: int | None
    iterations: int
    train_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return dict(self.__dict__)


class Trainer:
    """Meta-trains one learner as ``cfg`` describes, in ``run_dir``.

    Files: ``checkpoint.pt`` (latest state, written atomically every ``val_every`` iterations,
    at the end and on Ctrl-C), ``best.pt`` (best validation score), ``metrics.jsonl`` and
    ``metrics.csv``, ``result.json``. A resumed run continues from ``checkpoint.pt`` with the
    same task stream and random state, so it ends exactly where an uninterrupted run would.

    Args:
        cfg: A resolved configuration.
        metacrl: Train with MetaCRL.
        run_dir: Folder of this run.
        device: Where to train.
        stop: The stop request checked after every meta-step.
        progress: Show a progress bar.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        metacrl: bool,
        run_dir: str | Path,
        device: torch.device,
        stop: StopRequest | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.metacrl = metacrl
        self.dir = Path(run_dir)
        self.device = device
        self.stop = stop if stop is not None else StopRequest()
        self.progress = progress
        self.label = arm_label(cfg, metacrl)
        self.log = MetricsLog(self.dir / "metrics.jsonl")
        self.metric = "mse" if cfg.dataset == "sinusoid" else "accuracy"
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg)
        self.learner: Learner = build_learner(cfg, self.model, metacrl).to(device)
        params = [p for p in self.learner.parameters() if p.requires_grad]
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
        """Everything needed to continue exactly."""
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
        """Write ``checkpoint.pt`` atomically."""
        atomic_save(self.state(), self.checkpoint_path)

    def resume(self) -> bool:
        """Load ``checkpoint.pt`` if there is one; return whether it was loaded.

        Raises:
            CheckpointError: If it was written by another configuration.
        """
        if not self.checkpoint_path.exists():
            return False
        ckpt = load_checkpoint(self.checkpoint_path, map_location=self.device)
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
        )

    def _better(self, score: float) -> bool:
        if self.best is None:
            return True
        return score < self.best[0] if self.metric == "mse" else score > self.best[0]

    def validate(self) -> Evaluation:
        """Score the current learner on the validation episodes; keep the best in best.pt."""
        result = evaluate_episodes(self.learner, self._loader(self.val_set))
        self.log.append({"kind": "val", "iteration": self.iteration, **result.summary()})
        if self._better(result.mean):
            self.best = (result.mean, self.iteration)
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

        Raises:
            TrainingInterrupted: After saving, when :attr:`stop` was set.
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
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
                self.optimizer.step()
                self.train_seconds += time.perf_counter() - start
                self.iteration += 1
                record = out.summary()
                self.log.append({"kind": "train", "iteration": self.iteration, **record})
                bar.update(1)
                bar.set_postfix(
                    loss=f"{record['query_loss']:.3f}",
                    **{self.metric: f"{record[self.metric]:.3f}"},
                )
                last = self.iteration == cfg.iterations
                if self.iteration % cfg.val_every == 0 or last:
                    val = self.validate()
                    bar.write(
                        f"[{self.label}] iteration {self.iteration}: validation {self.metric} "
                        f"{val.mean:.4f} ± {val.ci95:.4f}"
                    )
                    self.done = last
                    self.save()
                if self.stop and not last:
                    self.save()
                    raise TrainingInterrupted(self.iteration, str(self.checkpoint_path))
        finally:
            bar.close()
            self.log.write_csv(self.dir / "metrics.csv")

    def test(self) -> ArmResult:
        """Evaluate the best-validation model (or the last) on the test episodes."""
        best_path = self.dir / "best.pt"
        if best_path.exists():
            best = load_checkpoint(best_path, map_location=self.device)
            self.learner.load_state_dict(best["learner"])
        result = evaluate_episodes(self.learner, self._loader(self.test_set))
        arm = ArmResult(
            label=self.label,
            metacrl=self.metacrl,
            test=result.summary(),
            best_val=None if self.best is None else self.best[0],
            best_iteration=None if self.best is None else self.best[1],
            iterations=self.iteration,
            train_seconds=self.train_seconds,
        )
        (self.dir / "result.json").write_text(json.dumps(arm.as_dict(), indent=2))
        return arm
