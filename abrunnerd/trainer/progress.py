"""Progress reports and the ETA from observed cell times."""
import time
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass
class Progress:
    stage: str  # "preparing", "training", "final", "done"
    cells_done: int
    cells_total: int
    eta_seconds: Optional[float]
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.cells_done / float(self.cells_total) if self.cells_total else 0.0


class EtaClock:
    """Wall-clock rate of the cells finished in this run (resumed cells do not count).

    The rate is measured from the first finished cell on, so worker start-up does not
    inflate it; no ETA until two cells have finished.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.first: Optional[float] = None
        self.finished = 0

    def tick(self) -> None:
        self.finished += 1
        if self.first is None:
            self.first = self.clock()

    def eta(self, remaining: int) -> Optional[float]:
        if self.finished < 2 or self.first is None:
            return None
        rate = (self.clock() - self.first) / (self.finished - 1)
        return round(rate * remaining, 1)
