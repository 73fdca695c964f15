"""Ctrl-C as a request to stop at the next iteration boundary (a second Ctrl-C stops at once)."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

__all__ = ["StopRequest", "TrainingInterrupted"]


class TrainingInterrupted(Exception):
    """Raised after the state of the last completed iteration has been saved.

    ``metacrl train`` catches it, prints how to resume and exits with code 130.

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
    """A flag set by SIGINT (while installed as a context manager) or by :meth:`set`.

    The training loop checks it after each meta-step: the step in flight completes, its state
    is saved, and the run ends cleanly. A second SIGINT raises ``KeyboardInterrupt`` at once.
    The handler is installed only in the main thread and the previous one is restored on exit.

    Example:
        >>> stop = StopRequest()
        >>> with stop:          # Ctrl-C now sets the flag instead of raising
        ...     bool(stop)
        ...     stop.set()      # what the first Ctrl-C does
        ...     bool(stop)
        False
        True
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: object = None

    def set(self) -> None:
        """Ask the loop to stop after the current iteration.

        Example:
            >>> stop = StopRequest()
            >>> stop.set()
            >>> bool(stop)
            True
        """
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt
        self._event.set()
        print(
            "\nCtrl-C: stopping after this iteration and saving (press again to abort)", flush=True
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._previous = None
