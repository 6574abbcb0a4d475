"""The progress bar of one long run, in simulated time.

:meth:`Simulation.run <simarch.run.simulation.Simulation.run>` runs a run that has a bar in
chunks of simulated time and calls :meth:`RunProgress.update` after each. The bar is a
``tqdm.auto`` bar (a widget in a notebook, text on standard error in a terminal) that appears
only once the run has taken :data:`DELAY` seconds of wall time, so that short runs print
nothing; it shows the seconds simulated out of warm-up + duration and, in its postfix, the
events simulated per second of wall time. Nothing here touches what is simulated.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

# imported with the package, not when a first bar appears inside a run (where the import
# would count in the run's time and memory)
from tqdm.auto import tqdm

DELAY = 2.0  # wall seconds before a run's bar appears (as a study's bar)
RATE_EVERY = 0.5  # wall seconds between two readings of the event rate, at least


class RunProgress:
    """A bar for one run of ``total`` simulated seconds, created when first needed."""

    def __init__(self, total: float, desc: str = "simulating", delay: float | None = None):
        self.total = float(total)
        self.desc = desc
        self.delay = DELAY if delay is None else delay
        self.started = perf_counter()
        self.bar: Any = None
        self._mark: tuple[float, int] | None = None  # (wall, events) of the last rate reading
        self.events_per_s: float | None = None

    def update(self, now: float, events: int | None) -> None:
        """The run has reached simulated time ``now`` and scheduled ``events`` events."""
        wall = perf_counter()
        if events is not None:
            if self._mark is None:
                self._mark = (wall, events)
            elif wall - self._mark[0] >= RATE_EVERY:
                self.events_per_s = (events - self._mark[1]) / (wall - self._mark[0])
                self._mark = (wall, events)
        if self.bar is None:
            if wall - self.started < self.delay:
                return
            # initial: the part simulated before the bar appeared does not count in its rate
            self.bar = tqdm(total=self.total, initial=now, desc=self.desc, leave=False,
                            dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                                       "simulated [{elapsed}<{remaining}{postfix}]")
            if self.events_per_s is not None:
                self.bar.set_postfix_str(f"{self.events_per_s:,.0f} events/s")
        elif now > self.bar.n:
            if self.events_per_s is not None:
                self.bar.set_postfix_str(f"{self.events_per_s:,.0f} events/s", refresh=False)
            self.bar.update(now - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
