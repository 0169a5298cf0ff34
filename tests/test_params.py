import math

import pytest

from livegen.control.mapping import apply_curve, mapped_value
from livegen.control.params import ParameterStore, ParamSpec, UnknownParameter


class FakeTime:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_declare_set_clamp_and_notify(caplog):
    store = ParameterStore(clock=FakeTime())
    store.declare(ParamSpec("cutoff", 1000, 20, 20000, unit="Hz"))
    seen = []
    store.subscribe(lambda n, v: seen.append((n, v)), "cutoff")
    assert store.get("cutoff") == 1000
    assert store.set("cutoff", 50000, "test")
    assert store.get("cutoff") == 20000
    assert seen == [("cutoff", 20000)]
    assert "outside" in caplog.text
    assert not store.set("nope", 1)
    assert not store.set("cutoff", "loud")
    assert not store.set("cutoff", float("nan"))
    assert store.get("cutoff") == 20000
    with pytest.raises(UnknownParameter):
        store.get("nope")


def test_smoothing_approaches_target():
    clock = FakeTime()
    store = ParameterStore(clock=clock)
    store.declare(ParamSpec("gain", 0.0, 0.0, 1.0, smoothing=0.1))
    store.set("gain", 1.0)
    assert store.value("gain") == 0.0
    clock.t = 0.1
    assert store.value("gain") == pytest.approx(1 - math.exp(-1))
    clock.t = 1.0
    assert store.value("gain") == pytest.approx(1.0, abs=1e-4)
    assert store.get("gain") == 1.0


def test_integer_params_and_unit_setting():
    store = ParameterStore(clock=FakeTime())
    store.declare(ParamSpec("pattern", 0, 0, 4, integer=True))
    store.set_unit("pattern", 0.6)
    assert store.get("pattern") == 2.0
    store.set_unit("pattern", 7.0)  # clamped to the top of the range
    assert store.get("pattern") == 4.0


def test_broken_subscriber_does_not_stop_others():
    store = ParameterStore(clock=FakeTime())
    store.declare(ParamSpec("x", 0.0))
    got = []
    store.subscribe(lambda n, v: 1 / 0)
    store.subscribe(lambda n, v: got.append(v))
    store.set("x", 0.5)
    assert got == [0.5]


def test_curves_and_mapping():
    assert apply_curve(0.0, "exp") == 0.0 and apply_curve(1.0, "exp") == pytest.approx(1.0)
    assert apply_curve(0.5, "exp") < 0.5 < apply_curve(0.5, "log")
    assert apply_curve(0.49, "toggle") == 0.0 and apply_curve(0.5, "toggle") == 1.0
    spec = ParamSpec("tempo", 120, 40, 240)
    assert mapped_value(spec, 0.5, None, None, "linear") == 140
    assert mapped_value(spec, 1.0, 100, 140, "linear") == 140
    with pytest.raises(ValueError):
        apply_curve(0.5, "wobbly")
