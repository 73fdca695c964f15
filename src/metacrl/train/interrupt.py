"""Ctrl-C or SIGTERM as a request to stop at the next iteration boundary (a second one aborts)."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

__all__ = ["STOP_SIGNALS", "StopRequest", "TrainingInterrupted"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
"""The signals a :class:`StopRequest` answers: Ctrl-C, and SIGTERM (what ``timeout``, Slurm and
Kubernetes send before they kill a job)."""

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(Exception):
    """Raised after the state of the last completed iteration has been saved.

    ``metacrl train`` catches it, prints how to resume and exits with code 130 (Ctrl-C) or
    143 (SIGTERM).

    Args:
        iteration: The last completed (and saved) iteration.
        checkpoint: The checkpoint file that holds its state.

    Example:
        >>> err = TrainingInterrupted(40, "runs/metacrl/base/checkpoint.pt")
        >>> err.iteration, str(err)
        (40, 'interrupted after iteration 40; checkpoint: runs/metacrl/base/checkpoint.pt')
    """

    def __init__(self, iteration: int, checkpoint: str) -> None:
        super().__init__(f"interrupted after iteration {iteration}; checkpoint: {checkpoint}")
        self.iteration = iteration
        self.checkpoint = checkpoint


class StopRequest:
    """A flag set by SIGINT or SIGTERM (while installed as a context manager) or by :meth:`set`.

    The training loop checks it after each meta-step: the step in flight completes, its state
    is saved, and the run ends cleanly. A second signal raises ``KeyboardInterrupt`` at once.
    The handlers are installed only in the main thread and the previous ones are restored on
    exit. :attr:`signum` is the last signal received (``None`` if none, e.g. after :meth:`set`).

    Example:
        >>> stop = StopRequest()
        >>> with stop:          # Ctrl-C and SIGTERM now set the flag instead of stopping
        ...     bool(stop)
        ...     stop.set()      # what the first signal does
        ...     bool(stop)
        False
        True
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[signal.Signals, object] = {}
        self.signum: int | None = None

    def set(self) -> None:
        """Ask the loop to stop after the current iteration.

        Example:
            >>> stop = StopRequest()
            >>> stop.set()
            >>> bool(stop), stop.signum
            (True, None)
        """
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if self._event.is_set():
            raise KeyboardInterrupt
        self._event.set()
        name = _NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
        print(
            f"\n{name}: stopping after this iteration and saving (send it again to abort)",
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous = {}
