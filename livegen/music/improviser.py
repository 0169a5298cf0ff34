"""The live melody generators that sample a trained model: ``melody_rnn`` and ``ngram``.

A model gives, for each 16th step, a distribution over the next token (hold, rest, or a note
of some pitch). The improviser turns that into music a performer can steer:

* **Sampling** with temperature and top-p (nucleus), and constraints applied to the logits:
  the key (notes outside the scale are masked), the register (low..high), a note-density and
  a rest bias, and a repetition penalty on recently played pitches.
* **Ahead of the clock.** A note's length is only known when a later token ends it, so tokens
  are generated a bar ahead (``HORIZON`` steps). The engine asks, a look-ahead before their
  time, for the notes of each 16th; those are already decided, so a note is never late. When
  a parameter moves, the part of the plan not yet sounding is re-sampled at once.
* **Phrases.** Every ``phrase`` bars, with chance ``repeat``, the previous phrase comes back
  (tunes repeat themselves); ``mutate`` re-samples what is planned and the phrase it repeats.
* **Listening.** When the performer plays, the improviser falls silent and feeds their notes
  through the model's state; after ``wait`` bars of silence (or an ``answer`` trigger) it
  continues from what it heard. In call-and-response mode it answers for ``answer`` bars in
  the key it estimates from the call (Krumhansl-Schmuckler), then waits for the next call.
* **Voices.** ``voices = 2`` or more samples counter-melodies in the same batch, an offset
  lower, played on ``counter_voice``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from livegen.control.params import ParamSpec
from livegen.music.encoding import (
    HOLD,
    MAX_PITCH,
    MIN_PITCH,
    NOTE_BASE,
    REST,
    START,
    STEPS_PER_BEAT,
    VOCAB,
    condition_step,
    fold_into_range,
    mode_index,
    pitch_token,
)
from livegen.music.generator import GeneratorContext, Note, PlayedNote, register
from livegen.music.keyfinding import estimate_key
from livegen.music.scales import Key

log = logging.getLogger("livegen.improviser")

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_RNN = MODELS_DIR / "melody.pt"
DEFAULT_NGRAM = MODELS_DIR / "ngram.npz"
HORIZON = 16  # steps planned beyond the window asked for: the longest note (a 4/4 bar)
MAX_HOLD = 16  # a note held this many steps must end (keeps every note's end inside the plan)
CALL_BARS = 8  # how much of a call is fed to the model
MIN_KEY_MARGIN = 0.02  # a call whose best key wins by less than this keeps the patch's key
MODES = ("improvise", "call-and-response")
_PITCHES = np.arange(VOCAB) - NOTE_BASE + MIN_PITCH  # pitch of each token (garbage for HOLD/REST)


class StepModel(Protocol):
    """What the improviser needs of a model: carried state, one step in, log-probabilities out."""

    def start(self, batch: int) -> object: ...

    def step(self, state: object, prev: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray, object]: ...


@dataclass(frozen=True)
class Settings:
    """The sampling-relevant parameter values a plan was made with (re-plan when they change)."""

    temperature: float
    top_p: float
    key_lock: bool
    low: int
    high: int
    density: float
    rest: float
    repetition: float
    offset: int
    tonic: int
    scale: str


def _settings(p, key: Key) -> Settings:
    low, high = int(p.get("low", 60)), int(p.get("high", 84))
    if low > high:
        low, high = high, low
    return Settings(round(float(p.get("temperature", 1.0)), 2), round(float(p.get("top_p", 0.95)), 2),
                    bool(round(p.get("key_lock", 1))), low, high, round(float(p.get("density", 0.5)), 2),
                    round(float(p.get("rest", 0.5)), 2), round(float(p.get("repetition", 0.3)), 2),
                    int(p.get("counter_offset", -12)), key.tonic, key.scale)


class Improviser:
    """Samples a StepModel live (see the module docstring). Subclasses load the model."""

    kind = "improviser"

    def __init__(self, name: str, seed: int | None = None, voices: int = 1, counter_voice: str = "bass") -> None:
        self.name = name
        self.seed = seed
        self.voices = int(voices)
        if not 1 <= self.voices <= 8:
            raise ValueError(f"voices must be 1..8, got {voices}")
        self.counter_voice = str(counter_voice)
        self.model: StepModel | None = None
        self.error: str | None = None
        self.reset()

    def warm_up(self) -> None:
        """A few model steps, so the first window on stage does not pay for first-call set-up
        (BLAS buffers, page faults on the weights). The engine calls it on its generator thread."""
        if self.model is None:
            return
        from livegen.music.encoding import COND_DIM

        state = self.model.start(self.voices)
        for _ in range(3):
            _, state = self.model.step(state, np.full(self.voices, START, np.int64),
                                       np.zeros((self.voices, COND_DIM), np.float32))

    # -- the interface ---------------------------------------------------------------
    def param_specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("temperature", 1.0, 0.05, 2.0, doc="sampling temperature: low = safe, high = wild"),
            ParamSpec("top_p", 0.95, 0.05, 1.0, doc="nucleus sampling: keep the likeliest tokens up to this mass"),
            ParamSpec("key_lock", 1, 0, 1, integer=True, doc="1 = only notes of the key's scale"),
            ParamSpec("low", 60, 36, 96, unit="midi", integer=True, doc="lowest pitch"),
            ParamSpec("high", 84, 36, 96, unit="midi", integer=True, doc="highest pitch"),
            ParamSpec("density", 0.5, 0.0, 1.0, doc="note density: 0.5 = as learned, higher = more notes"),
            ParamSpec("rest", 0.5, 0.0, 1.0, doc="rest probability: 0.5 = as learned, higher = more rests"),
            ParamSpec("repetition", 0.3, 0.0, 3.0, doc="penalty on recently played pitches"),
            ParamSpec("mode", 0, 0, len(MODES) - 1, integer=True, doc="0 improvise, 1 call-and-response"),
            ParamSpec("wait", 1.0, 0.25, 4.0, unit="bars", doc="silence after the performer before answering"),
            ParamSpec("answer", 2, 1, 16, unit="bars", integer=True, doc="answer length in call-and-response"),
            ParamSpec("phrase", 2, 1, 8, unit="bars", integer=True, doc="phrase length for repeat and mutate"),
            ParamSpec("repeat", 0.0, 0.0, 1.0, doc="chance a phrase is played again"),
            ParamSpec("velocity", 90, 1, 127, integer=True, doc="base velocity; downbeats are accented"),
            ParamSpec("gate", 0.9, 0.1, 1.0, doc="sounding fraction of each note's length"),
            ParamSpec("counter_offset", -12, -24, 24, unit="semitones", integer=True,
                      doc="register of the counter-melody voices relative to low..high"),
        ]

    def reset(self) -> None:
        self._state = None  # model state before step self._frontier
        self._frontier = 0  # next step to sample
        self._emitted = 0  # next step to hand to the engine
        self._tokens: dict[int, np.ndarray] = {}  # step -> (B,) tokens
        self._states: dict[int, object] = {}  # step -> state before sampling it
        self._prev: np.ndarray = np.full(self.voices, START, np.int64)
        self._prevs: dict[int, np.ndarray] = {}
        self._held = np.zeros(self.voices, np.int64)  # steps the current token's note has lasted
        self._helds: dict[int, np.ndarray] = {}
        self._committed = 0  # steps before this are sounding or spoken for
        self._note_end = np.full(self.voices, -1, np.int64)  # step where each voice's last emitted note ends
        self._settings: Settings | None = None
        self._masks: dict[tuple[int, Settings], np.ndarray] = {}
        self._phrase_repeat: dict[int, bool] = {}
        self._seen: set[tuple[float, int]] | None = None  # performer notes already taken in
        self._call: list[PlayedNote] = []
        self._listening = False
        self._waiting = False  # call-and-response: between answers
        self._answer_end: int | None = None
        self._answer_key: Key | None = None
        self._started = False

    def generate(self, ctx: GeneratorContext) -> list[Note]:
        if self.model is None:
            return []
        p = ctx.params
        spb = max(1, round(ctx.beats_per_bar * STEPS_PER_BEAT))
        k0 = math.ceil(ctx.start * STEPS_PER_BEAT - 1e-6)
        k1 = math.ceil(ctx.end * STEPS_PER_BEAT - 1e-6)
        mode = int(p.get("mode", 0)) % len(MODES)
        if not self._started:
            self._start(k0, mode, ctx.recent)
        elif k0 < self._emitted:  # the transport jumped back
            self.reset()
            self._start(k0, mode, ctx.recent)
        elif k0 > self._emitted:  # we were skipped ahead (a stall): drop the stale plan
            self._drop_plan(k0)
            self._emitted = self._committed = k0

        if self._answer_end is not None and k0 > self._answer_end:
            if mode == 1:
                self._waiting = True
            self._answer_end, self._answer_key = None, None
        self._listen(ctx, k0, spb, mode)
        key = self._answer_key or ctx.key
        settings = _settings(p, key)
        if settings != self._settings or "mutate" in ctx.triggers:
            if "mutate" in ctx.triggers:
                self._mutate_phrase(k0, spb, int(p.get("phrase", 2)))
            self._replan(max(self._committed, k0))
            self._settings = settings
        if self._listening or self._waiting:
            self._emitted = k1
            self._frontier = max(self._frontier, k1)
            self._committed = max(self._committed, k1)
            return []
        self._plan_until(k1 + HORIZON, ctx, spb, settings)
        return self._emit(k0, k1, ctx, spb)

    # -- planning ------------------------------------------------------------------
    def _start(self, k0: int, mode: int, recent=()) -> None:
        self._started = True
        self._seen = {(n.beat, n.pitch) for n in recent}  # notes from before we started are not a call
        self._state = self.model.start(self.voices)
        self._frontier = self._emitted = self._committed = k0
        self._waiting = mode == 1

    def _drop_plan(self, k: int) -> None:
        """Forget tokens from step k on; the model state rewinds to before k when we have it."""
        if k in self._states:
            self._state = self._states[k]
            self._prev = self._prevs[k]
            self._held = self._helds[k]
        for s in [s for s in self._tokens if s >= k]:
            del self._tokens[s]
        for d in (self._states, self._prevs, self._helds):
            for s in [s for s in d if s > k]:
                del d[s]
        self._frontier = k

    def _replan(self, k: int) -> None:
        if k < self._frontier:
            self._drop_plan(k)

    def _mutate_phrase(self, k: int, spb: int, phrase_bars: int) -> None:
        """The current phrase is sampled afresh (not repeated), and later phrases re-decide."""
        plen = spb * max(1, phrase_bars)
        cur = max(k, self._committed) // plen
        self._phrase_repeat = {ph: r for ph, r in self._phrase_repeat.items() if ph < cur}
        self._phrase_repeat[cur] = False

    def _plan_until(self, k_end: int, ctx: GeneratorContext, spb: int, st: Settings) -> None:
        p = ctx.params
        key = Key(st.tonic, st.scale)
        plen = spb * max(1, int(p.get("phrase", 2)))
        repeat = float(p.get("repeat", 0.0))
        while self._frontier < k_end:
            k = self._frontier
            if self._answer_end is not None and k >= self._answer_end:
                # The answer is over: a rest ends its last note, then silence.
                self._store(k, np.full(self.voices, REST if k == self._answer_end else HOLD, np.int64), None)
                continue
            logp, new_state = self.model.step(self._state, self._prev, self._cond(k, key, spb))
            phrase = k // plen
            if phrase not in self._phrase_repeat:
                self._phrase_repeat[phrase] = ctx.rng.random() < repeat
            tok = None
            if self._phrase_repeat[phrase] and (k - plen) in self._tokens:
                cand = self._tokens[k - plen]
                if all(self._allowed(int(t), v, k, st, key) for v, t in enumerate(cand)):
                    tok = cand.astype(np.int64)
            if tok is None:
                tok = np.array([self._sample(logp[v], v, k, st, key, ctx) for v in range(self.voices)], np.int64)
            self._store(k, tok, new_state)

    def _cond(self, k: int, key: Key, spb: int) -> np.ndarray:
        """Conditioning of step k for each voice, from the tokens before it (as in training)."""
        window = range(k - 2 * spb - MAX_HOLD, k)
        rows = []
        for v in range(self.voices):
            hist = [None if (t := self._tokens.get(s)) is None else int(t[v]) for s in window]
            rows.append(condition_step(hist, k % spb, key.tonic, mode_index(key.scale), spb))
        return np.stack(rows)

    def _store(self, k: int, tok: np.ndarray, new_state) -> None:
        self._states[k] = self._state
        self._prevs[k] = self._prev
        self._helds[k] = self._held
        self._tokens[k] = tok
        if new_state is not None:
            self._state = new_state
        self._prev = tok
        self._held = np.where(tok == HOLD, self._held + 1, 0)
        self._frontier = k + 1
        # Keep two phrases' worth of history for repeats; forget older steps.
        old = k - 4 * 32 - HORIZON
        for d in (self._tokens, self._states, self._prevs, self._helds):
            d.pop(old, None)

    def _allowed(self, tok: int, v: int, k: int, st: Settings, key: Key) -> bool:
        if tok == HOLD:
            return self._held[v] < MAX_HOLD and k != self._note_end[v]
        return bool(self._mask(v, st, key)[tok])

    def _register(self, v: int, st: Settings) -> tuple[int, int]:
        """Voice 0 plays low..high; counter-melody voice v sits v x counter_offset away."""
        lo = max(MIN_PITCH, st.low + st.offset * v)
        hi = min(MAX_PITCH, st.high + st.offset * v)
        return lo, max(lo, hi)

    def _sample(self, logp: np.ndarray, v: int, k: int, st: Settings, key: Key, ctx: GeneratorContext) -> int:
        """Constrained nucleus sampling of one token for voice v."""
        logits = np.array(logp, np.float64)
        notes = slice(NOTE_BASE, VOCAB)
        ok = self._mask(v, st, key).copy()
        if self._held[v] >= MAX_HOLD or k == self._note_end[v]:
            ok[HOLD] = False  # a note already sent ends here: the plan must end it too
        logits[~ok] = -np.inf
        logits[notes] += (st.density - 0.5) * 6.0
        logits[REST] += (st.rest - 0.5) * 6.0
        if st.repetition > 0:
            for pitch, n in self._recent_pitches(v).items():
                if MIN_PITCH <= pitch <= MAX_PITCH:
                    logits[pitch_token(pitch)] -= st.repetition * n
        logits /= max(0.05, st.temperature)
        logits -= logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        if st.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            csum = np.cumsum(probs[order])
            keep = order[: int(np.searchsorted(csum, st.top_p) + 1)]
            mask = np.zeros_like(probs)
            mask[keep] = probs[keep]
            probs = mask / mask.sum()
        u = ctx.rng.random()
        idx = int(np.searchsorted(np.cumsum(probs), u * probs.sum(), side="right"))
        idx = min(idx, VOCAB - 1)
        while probs[idx] == 0.0:  # float edge: step back to a token that can occur
            idx -= 1
        return idx

    def _mask(self, v: int, st: Settings, key: Key) -> np.ndarray:
        """Tokens voice v may play under these settings: register and key (cached: it only
        changes when the settings do, and it is needed every step)."""
        cached = self._masks.get((v, st))
        if cached is None:
            low, high = self._register(v, st)
            cached = (_PITCHES >= low) & (_PITCHES <= high)
            if st.key_lock:
                cached &= np.isin(_PITCHES % 12, sorted(key.pitch_classes))
            cached[:NOTE_BASE] = True
            if len(self._masks) > 64:
                self._masks.clear()
            self._masks[(v, st)] = cached
        return cached

    def _recent_pitches(self, v: int, n: int = 8) -> dict[int, int]:
        out: dict[int, int] = {}
        count = 0
        for s in range(self._frontier - 1, self._frontier - 4 * 32, -1):
            t = self._tokens.get(s)
            if t is None:
                break
            tok = int(t[v])
            if tok >= NOTE_BASE:
                pitch = int(_PITCHES[tok])
                out[pitch] = out.get(pitch, 0) + 1
                count += 1
                if count >= n:
                    break
        return out

    # -- emitting ------------------------------------------------------------------
    def _emit(self, k0: int, k1: int, ctx: GeneratorContext, spb: int) -> list[Note]:
        p = ctx.params
        gate = float(p.get("gate", 0.9))
        vel = int(p.get("velocity", 90))
        out: list[Note] = []
        for k in range(k0, k1):
            tok = self._tokens.get(k)
            if tok is None:
                continue
            for v in range(self.voices):
                t = int(tok[v])
                if t < NOTE_BASE:
                    continue
                end = k + 1
                while end < self._frontier:
                    nxt = self._tokens.get(end)
                    if nxt is None or int(nxt[v]) != HOLD:
                        break
                    end += 1
                self._note_end[v] = end
                self._committed = max(self._committed, end)
                length = (end - k) / STEPS_PER_BEAT
                accent = 1.0 if k % spb == 0 else (0.85 if k % STEPS_PER_BEAT == 0 else 0.72)
                velocity = max(1, min(127, round(vel * accent * (0.92 + 0.16 * ctx.rng.random()))))
                voice = "lead" if v == 0 else self.counter_voice
                out.append(Note(k / STEPS_PER_BEAT, max(0.02, gate * length), int(_PITCHES[t]), velocity, voice))
        self._emitted = k1
        self._committed = max(self._committed, k1)
        return out

    # -- listening -------------------------------------------------------------------
    def _listen(self, ctx: GeneratorContext, k0: int, spb: int, mode: int) -> None:
        """Take in the performer's new notes; answer once they have been quiet long enough."""
        new = [n for n in ctx.recent if (n.beat, n.pitch) not in self._seen]
        for n in new:
            self._seen.add((n.beat, n.pitch))
        if len(self._seen) > 4096:
            self._seen = {(n.beat, n.pitch) for n in ctx.recent}
        if new:
            if not self._listening:
                self._listening = True
                self._call = []
                self._replan(max(self._committed, k0))
            self._call += new
        answer_now = "answer" in ctx.triggers
        if not self._listening:
            if answer_now and (self._waiting or mode == 0):
                self._respond(ctx, k0, spb, mode)  # an answer asked for with no call: from scratch
            return
        # Durations arrive with note-offs: refresh the call's notes from ``recent``.
        latest = {(n.beat, n.pitch): n for n in ctx.recent}
        self._call = [latest.get((n.beat, n.pitch), n) for n in self._call]
        last_end = max(n.beat + (n.duration if n.duration is not None else math.inf) for n in self._call)
        wait_beats = float(ctx.params.get("wait", 1.0)) * ctx.beats_per_bar
        if answer_now or ctx.start - last_end >= wait_beats - 1e-9:
            self._respond(ctx, k0, spb, mode)

    def _respond(self, ctx: GeneratorContext, k0: int, spb: int, mode: int) -> None:
        call = sorted(self._call, key=lambda n: n.beat)[-64:]
        if call:
            call_start = max(call[0].beat, call[-1].beat - CALL_BARS * ctx.beats_per_bar)
            call = [n for n in call if n.beat >= call_start - 1e-9]
        key = ctx.key
        if mode == 1 and call:
            est = estimate_key([n.pitch for n in call],
                               [n.duration if n.duration else 0.5 for n in call])
            if est is not None and est.margin >= MIN_KEY_MARGIN:
                key = Key(est.tonic, est.mode)
            log.info("%s: answering in %s", self.name, est if est is not None else key)
        self._answer_key = key if mode == 1 else None
        start = k0 if k0 % STEPS_PER_BEAT == 0 else k0 + (STEPS_PER_BEAT - k0 % STEPS_PER_BEAT)
        self._prime(call, start, spb, key)
        self._listening = False
        self._waiting = False
        self._call = []
        self._answer_end = start + int(ctx.params.get("answer", 2)) * spb if mode == 1 else None
        self._settings = None  # plan afresh with the answer's key

    def _prime(self, call: list[PlayedNote], start: int, spb: int, key: Key) -> None:
        """Feed the call through a fresh model state, up to ``start``, and plan from there."""
        s0 = round(call[0].beat * STEPS_PER_BEAT) if call else start
        s0 = min(s0, start - 1)
        pitches = fold_into_range([n.pitch for n in call]) or [min(max(n.pitch, MIN_PITCH), MAX_PITCH) for n in call]
        toks = np.full(max(1, start - s0), HOLD, np.int64)
        toks[0] = REST
        for n, pitch in zip(call, pitches):
            s = round(n.beat * STEPS_PER_BEAT) - s0
            if 0 <= s < len(toks):
                toks[s] = pitch_token(pitch)
                if n.duration is not None:
                    e = s + max(1, round(n.duration * STEPS_PER_BEAT))
                    if e < len(toks) and toks[e] == HOLD:
                        toks[e] = REST
        # The silence waited through is not part of the phrase: move the call later by whole
        # bars (bar positions unchanged) so it ends less than a bar before the answer.
        sounding = np.nonzero(toks != HOLD)[0]
        call_end = int(sounding[-1]) + 1 if len(sounding) else 1
        shift = max(0, (len(toks) - call_end) // spb) * spb
        if shift:
            toks = toks[: len(toks) - shift]
            s0 += shift
        for d in (self._tokens, self._states, self._prevs, self._helds):
            d.clear()
        self._phrase_repeat.clear()
        state = self.model.start(self.voices)
        prev = np.full(self.voices, START, np.int64)
        for i, t in enumerate(toks):
            k = s0 + i
            _, state = self.model.step(state, prev, self._cond(k, key, spb))
            prev = np.full(self.voices, t, np.int64)
            self._tokens[k] = prev  # the call is the history the answer looks back on
        self._state, self._prev = state, prev
        self._held = np.where(prev == HOLD, 1, 0)
        self._frontier = self._emitted = self._committed = start


@register("melody_rnn")
class MelodyRNNGenerator(Improviser):
    """The melody RNN, live. Option ``model``: a model file (default: the shipped one)."""

    kind = "melody_rnn"

    def __init__(self, name: str = "rnn", seed: int | None = None, model: str = "", voices: int = 1,
                 counter_voice: str = "bass", device: str = "") -> None:
        super().__init__(name, seed, voices, counter_voice)
        import torch

        from livegen.music.melody_rnn import MelodyModelError, MelodyStepper, load_model

        path = Path(model) if model else DEFAULT_RNN
        try:
            net, _ = load_model(path, device=None)
        except MelodyModelError as exc:
            self.error = str(exc)
            log.error("generator %s: %s; it stays silent", name, exc)
            return
        if not device and not torch.cuda.is_available():
            # One thread: a step is a few small matrix products, and the live rig runs other
            # torch work (the style net) beside it; more threads only add jitter.
            torch.set_num_threads(1)
        self.model = MelodyStepper(net, device or None)


@register("ngram")
class NGramGenerator(Improviser):
    """The n-gram baseline, live: the lightweight alternative (no torch step)."""

    kind = "ngram"

    def __init__(self, name: str = "ngram", seed: int | None = None, model: str = "", voices: int = 1,
                 counter_voice: str = "bass") -> None:
        super().__init__(name, seed, voices, counter_voice)
        from livegen.music.ngram import NGramError, NGramModel

        path = Path(model) if model else DEFAULT_NGRAM
        try:
            self.model = NGramModel.load(path)
        except NGramError as exc:
            self.error = str(exc)
            log.error("generator %s: %s; it stays silent", name, exc)
