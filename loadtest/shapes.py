"""Load shapes, picked with DS_LOAD_SHAPE (the locustfile exposes only the selected one).

The peak user count is DS_LOAD_PEAK_USERS, else `-u`, else 100; the duration DS_LOAD_DURATION
(seconds), else `-t`, else 30. Writers (WriterUser.fixed_count) are allocated first at every step,
so the numbers below are writers + readers.

- ramp:       0 -> peak linearly over the first 60 % of the run, then hold.
- spike:      20 % of peak for the first third, jump to peak as fast as locust can spawn, hold a
              third, drop back to 20 %.
- steps:      25 %, 50 %, 100 % of peak, a third of the run each: shows whether origin load per
              append stays flat as readers are added (it should, behind an edge).
- hot-stream: many readers on one stream: everyone in within the first 20 % of the run, then
              hold. Meant with DS_LOAD_STREAMS=1 (the default; the locustfile warns otherwise):
              every reader follows the same stream, the worst case for fan-out.
"""

from __future__ import annotations

from abc import abstractmethod

from locust import LoadTestShape

from loadtest.config import CONFIG


class _Shape(LoadTestShape):
    abstract = True
    use_common_options = True

    def _peak(self) -> int:
        if CONFIG.peak_users:
            return CONFIG.peak_users
        options = getattr(getattr(self.runner, "environment", None), "parsed_options", None)
        return int(getattr(options, "num_users", 0) or 100)

    def _duration(self) -> float:
        if CONFIG.duration:
            return CONFIG.duration
        options = getattr(getattr(self.runner, "environment", None), "parsed_options", None)
        return float(getattr(options, "run_time", 0) or 30)

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        duration = self._duration()
        if t >= duration:
            return None
        return self.at(t / duration, self._peak())

    @abstractmethod
    def at(self, progress: float, peak: int) -> tuple[int, float]:
        """(users, spawn rate) at `progress` (0 to 1) of the run, for a peak of `peak` users."""

    @staticmethod
    def floor_users(n: float) -> int:
        return max(CONFIG.writers + 1, round(n))


class RampShape(_Shape):
    abstract = False

    def at(self, progress: float, peak: int) -> tuple[int, float]:
        ramp = 0.6 * self._duration()
        users = peak * min(1.0, progress / 0.6)
        return self.floor_users(users), max(1.0, peak / ramp)


class SpikeShape(_Shape):
    abstract = False

    def at(self, progress: float, peak: int) -> tuple[int, float]:
        base = self.floor_users(0.2 * peak)
        if progress < 1 / 3 or progress >= 2 / 3:
            return base, float(peak)  # the drop back also happens at once
        return peak, float(peak)


class StepsShape(_Shape):
    abstract = False

    def at(self, progress: float, peak: int) -> tuple[int, float]:
        share = 0.25 if progress < 1 / 3 else 0.5 if progress < 2 / 3 else 1.0
        return self.floor_users(share * peak), float(peak)


class HotStreamShape(_Shape):
    abstract = False

    def at(self, progress: float, peak: int) -> tuple[int, float]:
        # All readers in within the first 20 % of the run, then hold: the steady state of a hot stream.
        return self.floor_users(peak * min(1.0, progress / 0.2)), max(1.0, peak / (0.2 * self._duration()))


SHAPES: dict[str, type[_Shape]] = {
    "ramp": RampShape,
    "spike": SpikeShape,
    "steps": StepsShape,
    "hot-stream": HotStreamShape,
}


def select(name: str) -> type[LoadTestShape] | None:
    if not name or name == "none":
        return None
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(f"DS_LOAD_SHAPE must be one of {sorted(SHAPES)} or empty, got {name!r}") from None
