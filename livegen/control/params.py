"""The parameter store: every live-controllable value in one place.

Each parameter is declared once with its range, default, unit and smoothing time. MIDI CCs,
OSC messages, scenes and patches all set parameters by name; generators, the synth and the
visuals read them. Subscribers hear about every change (OSC feedback, MIDI learn, UI).
All methods are called from the event-loop thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

from livegen.log import RateLimitedLog


@dataclass(frozen=True)
class ParamSpec:
    """A live parameter. ``smoothing`` is a time constant in seconds (0 = jump)."""

    name: str
    default: float
    min: float = 0.0
    max: float = 1.0
    unit: str = ""
    smoothing: float = 0.0
    integer: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.min <= self.default <= self.max:
            raise ValueError(f"parameter {self.name}: default {self.default} outside [{self.min}, {self.max}]")

    def clamp(self, value: float) -> float:
        v = min(self.max, max(self.min, value))
        return float(round(v)) if self.integer else v

    def from_unit(self, x: float) -> float:
        """Map 0..1 (a knob) onto the parameter's range."""
        return self.clamp(self.min + (self.max - self.min) * x)

    def to_unit(self, value: float) -> float:
        span = self.max - self.min
        return 0.0 if span == 0 else (value - self.min) / span


Subscriber = Callable[[str, float], None]


@dataclass
class _State:
    spec: ParamSpec
    target: float
    start: float
    changed_at: float = -math.inf


class UnknownParameter(KeyError):
    pass


class ParameterStore:
    """Named, declared, range-checked parameters with smoothing and change notification."""

    def __init__(self, clock: Callable[[], float] | None = None, problems: RateLimitedLog | None = None) -> None:
        import time

        self._now = clock or time.monotonic
        self._params: dict[str, _State] = {}
        self._subs: dict[str | None, list[Subscriber]] = {}
        self.problems = problems or RateLimitedLog()

    # -- declaration -----------------------------------------------------------------
    def declare(self, spec: ParamSpec, value: float | None = None) -> None:
        """Declare (or re-declare, keeping the current value when still in range)."""
        old = self._params.get(spec.name)
        if value is None:
            value = old.target if old is not None else spec.default
        v = spec.clamp(value)
        self._params[spec.name] = _State(spec, v, v)

    def declare_all(self, specs: Iterable[ParamSpec]) -> None:
        for s in specs:
            self.declare(s)

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def names(self) -> list[str]:
        return sorted(self._params)

    def spec(self, name: str) -> ParamSpec:
        try:
            return self._params[name].spec
        except KeyError:
            raise UnknownParameter(name) from None

    def specs(self) -> list[ParamSpec]:
        return [self._params[n].spec for n in self.names()]

    # -- values ----------------------------------------------------------------------
    def set(self, name: str, value: float, source: str = "") -> bool:
        """Set a parameter's target; out-of-range values are clamped and reported.

        Returns False (and logs one rate-limited line) for unknown names or non-numbers.
        """
        st = self._params.get(name)
        if st is None:
            self.problems.warn(f"unknown:{name}", "unknown parameter %r%s", name, f" from {source}" if source else "")
            return False
        try:
            value = float(value)
        except (TypeError, ValueError):
            self.problems.warn(f"type:{name}", "parameter %r wants a number, got %r%s", name, value, f" from {source}" if source else "")
            return False
        if math.isnan(value):
            self.problems.warn(f"nan:{name}", "parameter %r got NaN%s", name, f" from {source}" if source else "")
            return False
        clamped = st.spec.clamp(value)
        if clamped != value and not (st.spec.integer and st.spec.min <= value <= st.spec.max):
            self.problems.warn(
                f"range:{name}", "parameter %r: %g is outside %g..%g, using %g%s",
                name, value, st.spec.min, st.spec.max, clamped, f" from {source}" if source else "",
            )
        now = self._now()
        st.start = self._current(st, now)
        st.target = clamped
        st.changed_at = now
        self._notify(name, clamped)
        return True

    def set_unit(self, name: str, x: float, source: str = "") -> bool:
        """Set from a 0..1 control value (a knob position)."""
        if name not in self._params:
            return self.set(name, x, source)
        return self.set(name, self._params[name].spec.from_unit(min(1.0, max(0.0, x))), source)

    def get(self, name: str) -> float:
        """The target value (what was last set)."""
        try:
            return self._params[name].target
        except KeyError:
            raise UnknownParameter(name) from None

    def value(self, name: str, at: float | None = None) -> float:
        """The smoothed value now (or at time ``at``)."""
        try:
            st = self._params[name]
        except KeyError:
            raise UnknownParameter(name) from None
        return self._current(st, self._now() if at is None else at)

    def snapshot(self, at: float | None = None) -> dict[str, float]:
        t = self._now() if at is None else at
        return {n: self._current(st, t) for n, st in self._params.items()}

    def targets(self) -> dict[str, float]:
        return {n: st.target for n, st in self._params.items()}

    @staticmethod
    def _current(st: _State, t: float) -> float:
        tau = st.spec.smoothing
        if tau <= 0 or st.start == st.target:
            return st.target
        dt = t - st.changed_at
        if dt <= 0:
            return st.start
        v = st.target + (st.start - st.target) * math.exp(-dt / tau)
        return float(round(v)) if st.spec.integer else v

    # -- notification ----------------------------------------------------------------
    def subscribe(self, callback: Subscriber, name: str | None = None) -> Callable[[], None]:
        """Call ``callback(name, value)`` on every change (of ``name``, or of any parameter).

        Returns a function that unsubscribes.
        """
        self._subs.setdefault(name, []).append(callback)

        def unsubscribe() -> None:
            lst = self._subs.get(name, [])
            if callback in lst:
                lst.remove(callback)

        return unsubscribe

    def _notify(self, name: str, value: float) -> None:
        for cb in (*self._subs.get(name, ()), *self._subs.get(None, ())):
            try:
                cb(name, value)
            except Exception:  # a broken subscriber must not stop the show
                import logging

                logging.getLogger("livegen").exception("parameter subscriber %r failed on %s", cb, name)
