"""Capped exponential backoff with jitter, so a fleet of runners does not hammer a
server that just came back. Knows nothing about HTTP.

With the defaults (base 2 s, factor 2, cap 300 s, jitter ±25 %) the waits are about
2, 4, 8, 16, 32, 64, 128, 256, 300, 300 … seconds.
"""
import random
from typing import Optional


class Backoff:
    def __init__(self, base: float = 2.0, cap: float = 300.0, factor: float = 2.0,
                 jitter: float = 0.25, rng: Optional[random.Random] = None) -> None:
        self.base, self.cap, self.factor, self.jitter = base, cap, factor, jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next try."""
        raw = min(self.cap, self.base * (self.factor ** min(self.failures, 30)))
        self.failures += 1
        spread = raw * self.jitter
        return max(0.0, min(self.cap, raw + self._rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.failures = 0
