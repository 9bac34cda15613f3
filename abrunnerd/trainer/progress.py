"""Progress reports and the ETA from observed cell times."""
import time
from typing import Callable, NamedTuple, Optional


class Progress(NamedTuple):
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

    The rate is measured from the start of training, not from the first finished cell:
    each (preprocessing, fold) unit first computes its kernel matrices and then fits
    its cells quickly, and some cells (small C) converge in microseconds, so a rate
    taken between the first few cells said "ETA 8 s" at 3 % of a 10,500-cell job. No
    ETA until two cells have finished.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = clock()
        self.finished = 0

    def tick(self) -> None:
        self.finished += 1

    def eta(self, remaining: int) -> Optional[float]:
        if self.finished < 2:
            return None
        rate = (self.clock() - self.start) / self.finished
        return round(rate * remaining, 1)
