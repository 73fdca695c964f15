"""The outcome of one training run: a row of the results table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ArmResult"]


@dataclass
class ArmResult:
    """The outcome of one run (one learner, with or without MetaCRL): a row of the results table.

    Attributes:
        label: The table name, e.g. ``"MAML + MetaCRL"``.
        metacrl: Whether the run used MetaCRL.
        test: The test summary (:meth:`Evaluation.summary
            <metacrl.train.Evaluation.summary>`): the score, its 95% CI half-width, the loss
            and the number of episodes.
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
