"""Source -> style network -> screen: the one frame path for the window and for renders.

``livegen play`` runs the network on a :class:`~livegen.visuals.style_worker.StyleWorker`
(the newest frame in, the newest result out; the window never waits), ``livegen render``
runs it inline on every frame so a render is complete and repeatable. Both get their
settings from :class:`StyleControls`, the live parameters a performer maps to knobs:

- ``style.<name>``: how much of each style (0..1); the network blends the ones that are
  up, and if they add up to less than 1 the rest is "no style" (the source shows through);
- ``style.intensity``: mix of the stylised picture over the source (0..1);
- ``style.colour``: keep the source's colours under the style's strokes (0..1).

With ``quantize = "bar"`` a change of the style weights waits for the next downbeat, so a
new painting arrives on the one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from livegen.control.params import ParamSpec
from livegen.visuals.output import VisualsOutput
from livegen.visuals.style_worker import StyledFrame, StyleWorker
from livegen.visuals.stylizer import StyleSettings, Stylizer

if TYPE_CHECKING:
    from livegen.visuals.style_process import StyleProcess

log = logging.getLogger("livegen.visuals")

INTENSITY = ParamSpec("style.intensity", 1.0, 0.0, 1.0, smoothing=0.1,
                      doc="stylised picture over the source: 0 = source only, 1 = fully stylised")
COLOUR = ParamSpec("style.colour", 0.0, 0.0, 1.0, smoothing=0.1,
                   doc="colour preservation: 1 keeps the source's colours under the style's strokes")
QUANTIZE_MODES = ("none", "bar")


def style_param(name: str, default: float = 0.0) -> ParamSpec:
    return ParamSpec(f"style.{name}", default, 0.0, 1.0, smoothing=0.15,
                     doc=f"weight of the {name} style (styles that are up blend)")


class StyleControls:
    """Live style parameters -> :class:`StyleSettings`, optionally latched on downbeats."""

    def __init__(self, styles: Sequence[str], quantize: str = "none") -> None:
        if quantize not in QUANTIZE_MODES:
            raise ValueError(f"style quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
        self.styles = list(styles)
        self.quantize = quantize
        self._specs = [style_param(n, 1.0 if i == 0 else 0.0) for i, n in enumerate(self.styles)]
        self._latched: list[float] | None = None
        self._bar: int | None = None

    def param_specs(self) -> list[ParamSpec]:
        return [*self._specs, INTENSITY, COLOUR]

    def settings(self, params: Mapping[str, float], bar: int | None = None) -> StyleSettings:
        """Settings for this frame; ``bar`` is the current bar number (for quantising)."""
        wanted = [s.clamp(float(params.get(s.name, s.default))) for s in self._specs]
        if self.quantize == "bar":
            if self._latched is None or (bar is not None and bar != self._bar):
                self._latched, self._bar = wanted, bar
            weights = list(self._latched)
        else:
            weights = wanted
        return StyleSettings(weights=weights,
                             intensity=INTENSITY.clamp(float(params.get(INTENSITY.name, INTENSITY.default))),
                             preserve_colour=COLOUR.clamp(float(params.get(COLOUR.name, COLOUR.default))))


class VisualsPipeline:
    """Draws the source, runs the style network (worker or inline), returns what to show."""

    STALE_FRAMES = 15  # a styled result more than this many frames old is not shown

    def __init__(self, output: VisualsOutput, stylizer: Stylizer | None = None, quantize: str = "none",
                 worker: "StyleWorker | StyleProcess | None" = None) -> None:
        self.output = output
        self.stylizer = stylizer
        self.controls = StyleControls(stylizer.styles, quantize) if stylizer is not None else None
        self.worker = worker
        self.last_source: np.ndarray | None = None
        self.last_settings: StyleSettings | None = None
        self.last_latency = 0.0  # seconds from drawing the source to the frame shown
        self._min_seq = 0  # results older than this were asked for before the style was last off

    def param_specs(self) -> list[ParamSpec]:
        """The source's parameters and the style controls."""
        style = self.controls.param_specs() if self.controls is not None else []
        return [*self.output.scene.param_specs(), *style]

    def frame(self, t: float, params: Mapping[str, float]) -> np.ndarray:
        """The frame to show for moment ``t`` with ``params`` (the live parameter values)."""
        t0 = time.monotonic()
        source = self.output.render(t, params)
        self.last_source = source
        if self.controls is None or self.stylizer is None:
            self.last_latency = time.monotonic() - t0
            return source
        settings = self.controls.settings(params, self.output.bar)
        self.last_settings = settings
        if settings.amount() <= 0.0:
            if self.worker is not None:  # when the style comes back, do not show a picture from before
                self._min_seq = self.worker.last_seq + 1
            self.last_latency = time.monotonic() - t0
            return source
        if self.worker is None:
            out = self.stylizer(source, settings)
            self.last_latency = time.monotonic() - t0
            return out
        seq = self.worker.submit(source, settings)
        result: StyledFrame | None = self.worker.latest()
        if result is None or result.seq < self._min_seq or seq - result.seq > self.STALE_FRAMES:
            self.last_latency = time.monotonic() - t0
            return source  # warming up (or stalled): the music's picture, unstyled
        self.last_latency = result.latency
        return result.frame

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        close = getattr(self.output.scene, "close", None)
        if close is not None:
            close()


def build_pipeline(visuals, seed: int = 0, warn: Callable[[str], None] = log.warning,
                   worker: bool = False) -> VisualsPipeline:
    """The patch's ``[visuals]`` as a pipeline: its sources (switchable when several), the
    style network when ``style = true`` (on a worker thread when ``worker``). A source or
    model that cannot be opened is one ``warn`` line and the show goes on without it."""
    from livegen.visuals.sources import SourceError, SourceSwitch, create_source

    v = visuals
    latent = None
    if "latent" in v.source_list():
        from livegen.visuals.latent_source import LatentOptions

        # Live, the latent source decodes on a thread of its own; one torch thread, unless
        # the style network shares this process (style_worker "thread"): then its budget.
        shared = v.style and v.style_worker == "thread"
        latent = LatentOptions(model=v.latent_model, anchors=v.latent_anchors, seed=v.latent_seed, threaded=worker,
                               threads=v.style_threads if shared else 1)
    sources = []
    for kind in v.source_list():
        try:
            sources.append(create_source(kind, v.width, v.height, seed=seed, file=v.source_file, latent=latent))
        except (SourceError, ValueError) as e:
            warn(f"visuals source {kind!r} left out: {e}")
    if not sources:
        sources = [create_source("ripples", v.width, v.height, seed=seed)]
    scene = sources[0] if len(sources) == 1 else SourceSwitch(sources, initial=0)
    stylizer = style_worker = None
    if v.style:
        from livegen.visuals.style_net import StyleModelError, load_style_net
        from livegen.visuals.stylizer import DEFAULT_MODEL

        path = v.style_model or DEFAULT_MODEL
        try:
            in_thread = worker and v.style_worker == "thread"
            stylizer = Stylizer(load_style_net(path), compile=v.style_compile and in_thread)
            log.info("style network: %s (%s) on %s", path, ", ".join(stylizer.styles), stylizer.device)
        except StyleModelError as e:
            warn(f"{e} (the visuals run unstyled)")
    if stylizer is not None and worker:
        if v.style_worker == "process":
            from livegen.visuals.style_process import StyleProcess

            style_worker = StyleProcess(v.style_model or DEFAULT_MODEL, stylizer.styles, (v.height, v.width),
                                        threads=v.style_threads, compile=v.style_compile,
                                        processes=v.style_processes).start()
        else:
            style_worker = StyleWorker(stylizer, threads=v.style_threads, warm_up=(v.height, v.width)).start()
    return VisualsPipeline(VisualsOutput(scene), stylizer, v.style_quantize, style_worker)
