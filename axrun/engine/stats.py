"""Per-stage timing of a run, gathered from every thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

STAGES = ("decode", "preprocess", "device", "postprocess")


@dataclass
class StageTimes:
    """Seconds spent per stage (summed over threads) and frames counted.

    ``device`` is the time worker threads spent blocked in ``run()``.
    """

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    failed: int = 0
    wall_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, seconds: float) -> None:
        """Add time to a stage, from any thread."""
        # A float += on a dict entry is not atomic across threads: keep the lock.
        with self._lock:
            self.seconds[stage] += seconds

    def shares(self) -> dict[str, float]:
        """Each stage's fraction of the summed stage time."""
        total = sum(self.seconds.values())
        return {k: (v / total if total else 0.0) for k, v in self.seconds.items()}
