"""``livegen soak``: play a patch for N minutes under a storm of random control input.

A show runs for an hour or more; a leak of a megabyte a minute, a counter that overflows
or a queue that only grows shows up only after a long time. The soak plays the default
patch through the live rig (synth on the JACK device, the melody RNN, the style network's
processes, MIDI out on a JACK port) while a separate controller process sends random OSC
(every parameter across its range, triggers, scenes, tap tempo, a little junk) and random
MIDI (CCs, pitch bend, short phrases) at a high rate. It reports, per sample interval and
in total: resident memory of every livegen process, audio underruns, note-ons late by
more than 1 and 3 ms, frames dropped, and control messages applied and rejected.

Targets for 30 minutes: memory growth < 50 MB, 0 underruns, 0 notes late by > 3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from livegen.bench.procs import descendants, rss_mb
from livegen.bench.stall_probe import StallProbe, stalls_near

log = logging.getLogger("livegen")

# Not "livegen...": livegen never listens to ports with its own name (its outputs; feedback).
CONTROLLER_PORT = "soak controller"
RSS_GROWTH_TARGET_MB = 50.0
# Actions a random performer may fire; start/stop/quit/record/screenshot/learn are left
# out: they would stop the music or write files, which is not what is being soaked.
ACTIONS = ("mutate", "answer", "tap")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patch", nargs="?", type=Path, help="patch to play (default: patches/default.toml)")
    p.add_argument("--minutes", type=float, default=30.0, help="how long to measure, after warming up")
    p.add_argument("--rate", type=float, default=200.0, help="random OSC messages per second")
    p.add_argument("--midi-rate", type=float, default=50.0, help="random MIDI messages per second (JACK only)")
    p.add_argument("--sample-seconds", type=float, default=10.0, help="how often memory and counters are read")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-visuals", action="store_true", help="music only")
    p.add_argument("--json", type=Path, help="write the whole report (with the time series) here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--no-stall-probe", action="store_true",
                   help="do not watch for the machine stalling (a probe per core; see bench/stall_probe.py)")


# ---------------------------------------------------------------------- the controller
def _controller(spec: dict) -> None:
    """The random performer, in a process of its own so it never competes for our GIL.

    Prints one JSON line of counts when told to stop (stdin closes) or time runs out.
    """
    from pythonosc.udp_client import SimpleUDPClient

    rng = random.Random(spec["seed"])
    client = SimpleUDPClient("127.0.0.1", spec["port"])
    params: list[list] = spec["params"]  # [name, min, max]
    scenes: list[str] = spec["scenes"]
    counts = {"osc": 0, "osc_junk": 0, "midi": 0, "midi_phrases": 0}
    midi = None
    if spec.get("midi"):
        import mido

        try:
            midi = mido.open_output(CONTROLLER_PORT, virtual=True)
        except Exception as e:
            print(f"soak controller: no MIDI port ({e})", file=sys.stderr)
    deadline = time.monotonic() + spec["seconds"]
    rate, midi_rate = spec["rate"], spec["midi_rate"] if midi is not None else 0.0
    period = 1.0 / max(1.0, rate + midi_rate)
    p_midi = midi_rate / max(1e-9, rate + midi_rate)
    held: list[int] = []
    next_t = time.monotonic()
    import select

    while time.monotonic() < deadline:
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
            break  # the soak closed our stdin: stop
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if midi is not None and rng.random() < p_midi:
            _random_midi(rng, midi, held, counts)
            continue
        r = rng.random()
        try:
            if r < 0.90:
                name, lo, hi = rng.choice(params)
                client.send_message(f"/livegen/param/{name}", float(rng.uniform(lo, hi)))
            elif r < 0.93 and scenes:
                client.send_message("/livegen/scene", rng.choice(scenes))
            elif r < 0.96:
                client.send_message("/livegen/trigger", rng.choice(ACTIONS))
            else:  # junk: out of range, wrong types, unknown addresses, not OSC at all
                counts["osc_junk"] += 1
                kind = rng.randrange(4)
                if kind == 0:
                    name, lo, hi = rng.choice(params)
                    client.send_message(f"/livegen/param/{name}", float(hi + (hi - lo + 1) * rng.random() * 10))
                elif kind == 1:
                    client.send_message(f"/livegen/param/{rng.choice(params)[0]}", "loud")
                elif kind == 2:
                    client.send_message(f"/livegen/nope/{rng.randrange(1000)}", 1.0)
                else:
                    client._sock.sendto(rng.randbytes(rng.randrange(1, 64)), ("127.0.0.1", spec["port"]))
            counts["osc"] += 1
        except OSError:
            pass  # a full socket buffer: the next one goes
    if midi is not None:
        for note in held:
            midi.send(mido.Message("note_off", note=note))
        midi.close()
    try:
        print(json.dumps(counts), flush=True)
    except BrokenPipeError:
        pass  # the soak is gone; nobody to tell


def _random_midi(rng: random.Random, port, held: list[int], counts: dict) -> None:
    import mido

    r = rng.random()
    if r < 0.7:
        msg = mido.Message("control_change", channel=rng.randrange(16), control=rng.randrange(120),
                           value=rng.randrange(128))
    elif r < 0.85:
        msg = mido.Message("pitchwheel", channel=rng.randrange(16), pitch=rng.randrange(-8192, 8192))
    elif held:  # let go of what the performer holds
        msg = mido.Message("note_off", note=held.pop(0))
    elif rng.random() < 0.05:  # now and then a short phrase: the RNN listens, then answers
        note = rng.randrange(55, 80)
        held.append(note)
        counts["midi_phrases"] += 1
        msg = mido.Message("note_on", note=note, velocity=rng.randrange(40, 110))
    else:
        msg = mido.Message("aftertouch", value=rng.randrange(128))
    port.send(msg)
    counts["midi"] += 1


# ---------------------------------------------------------------------- the soak
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _late_counts(note_on_times: list, start: int) -> dict:
    late = [(e - s) * 1e3 for s, e in note_on_times[start:]]
    return {"notes": len(late), "late_over_1ms": sum(x > 1.0 for x in late),
            "late_over_3ms": sum(x > 3.0 for x in late), "max_ms": max(late) if late else float("nan")}


def _memory(rig, skip: set[int]) -> dict[str, float]:
    """MiB resident per livegen process: main, audio, timing, style-N, and any other."""
    named: dict[int, str] = {os.getpid(): "main"}
    if rig.synth is not None and rig.synth.process is not None:
        named[rig.synth.process.pid] = "audio"
    if rig.timing is not None and getattr(rig.timing, "_proc", None) is not None:
        named[rig.timing._proc.pid] = "timing"
    worker = rig.pipeline.worker if rig.pipeline is not None else None
    for lane in getattr(worker, "lanes", []):
        if lane.proc is not None:
            named[lane.proc.pid] = f"style-{lane.index}"
    out: dict[str, float] = {}
    for pid in [os.getpid(), *descendants()]:
        if pid in skip:
            continue
        mb = rss_mb(pid)
        if mb is not None:
            name = named.get(pid, "other")
            out[name] = out.get(name, 0.0) + mb
    return out


async def _run(args) -> dict:
    import mido

    from livegen.bench.timing import _jack_running
    from livegen.patch.loader import load_patch
    from livegen.play import LiveRig, RigOptions

    jack = _jack_running()
    if jack and not os.path.exists("/dev/snd/seq"):
        os.environ.setdefault("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
        mido.set_backend(os.environ["MIDO_BACKEND"], load=True)
    import dataclasses

    patch = load_patch(args.patch)
    # Note timing is read where notes leave for MIDI; the synth plays on JACK when it runs.
    patch = dataclasses.replace(patch, midi=dataclasses.replace(patch.midi, virtual_output=True),
                                audio=dataclasses.replace(patch.audio, device="JACK") if jack else patch.audio)
    port = _free_port()
    rig = LiveRig(patch, RigOptions(window=False, headless_visuals=not args.no_visuals, audio=True,
                                    osc_port=port, midi_inputs=[CONTROLLER_PORT] if jack else [],
                                    seed=args.seed, watch_patch=False))
    t0 = time.monotonic()
    try:
        return await _soak(args, rig, patch, port, jack, t0)
    finally:
        await rig.close()


def _stolen_seconds() -> float:
    """CPU time the hypervisor gave to others, all cores (Linux /proc/stat "steal"; 0 elsewhere).

    On a virtual machine a stolen moment stalls even JACK's own real-time thread: the
    server then reports an xrun of every client, which nothing in livegen can prevent."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class _AudioCounters:
    """The synth's counters across the soak, even if its process is lost and reopened
    (a new process starts its counters from zero) or does not answer for a moment."""

    KEYS = ("underruns", "starved", "late_events", "callbacks")
    LAG_EDGES = (">0.5", ">1", ">2", ">3")  # ms: callbacks that began this late (sound/server.py)

    def __init__(self, rig) -> None:
        self.rig = rig
        self.done = dict.fromkeys(self.KEYS + self.LAG_EDGES, 0)  # from synth processes gone before
        self.max_start_lag = 0.0  # ms, over the readings after the first
        self.base: dict = {}
        self.last: dict = {}
        self.synth = None
        self.unanswered = 0
        self.device = None
        self.underrun_times: set[float] = set()  # monotonic s, from every synth process (each keeps its last 64)

    def read(self) -> dict:
        from livegen.sound.server import AudioUnavailable

        synth = self.rig.synth
        if synth is not self.synth:
            for k in self.KEYS + self.LAG_EDGES:
                self.done[k] += self._get(self.last, k) - self._get(self.base, k)
            self.synth, self.base, self.last = synth, {}, {}
        if synth is not None:
            try:
                st = synth.stats()
                self.device = st.get("device")
                if not self.base:
                    self.base = st
                else:
                    self.max_start_lag = max(self.max_start_lag, st.get("max_start_lag_ms", 0.0))
                self.last = st
                self.underrun_times.update(st.get("underrun_times", []))
            except AudioUnavailable:
                self.unanswered += 1
        return self.totals()

    @staticmethod
    def _get(stats: dict, key: str) -> int:
        return stats.get("start_lag_ms", {}).get(key, 0) if key in _AudioCounters.LAG_EDGES else stats.get(key, 0)

    def totals(self) -> dict:
        return {k: self.done[k] + self._get(self.last, k) - self._get(self.base, k) for k in self.KEYS + self.LAG_EDGES}


async def _soak(args, rig, patch, port: int, jack: bool, t0: float) -> dict:
    from livegen.bench.timing import _jack_mode

    engine = await rig.start()
    if rig.timing is not None:
        rig.timing.record(True)
    worker = rig.pipeline.worker if rig.pipeline is not None else None
    if worker is not None:  # warmed up (and compiled) before measuring, off the loop
        await asyncio.to_thread(worker.ready.wait, 600)
    await asyncio.sleep(2.0)  # the first bars, the first frames
    warm_s = time.monotonic() - t0

    params = sorted([s.name, s.min, s.max] for s in engine.store.specs()
                    if math.isfinite(s.min) and math.isfinite(s.max))
    seconds = args.minutes * 60.0
    spec = {"port": port, "seed": args.seed, "seconds": seconds + 30.0, "rate": args.rate,
            "midi_rate": args.midi_rate, "midi": jack, "params": params, "scenes": sorted(patch.scenes)}
    controller = subprocess.Popen([sys.executable, "-m", "livegen.bench.soak", "--controller", json.dumps(spec)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ))
    skip = {controller.pid}
    audio = _AudioCounters(rig)
    await asyncio.to_thread(audio.read)
    osc0 = dict(rig.osc.stats) if rig.osc is not None else {}
    midi0 = rig.midi_in.received if rig.midi_in is not None else 0
    frames0 = rig.frames
    style0 = worker.stats() if worker is not None else {}
    timing0 = len(rig.timing.stats()["note_on_times"]) if rig.timing is not None else 0
    dropped0 = engine.stats.notes_dropped_late
    fps = patch.visuals.fps
    probe = None
    if not args.no_stall_probe:
        probe = StallProbe(seconds + 120.0).start()
        skip |= probe.pids
    steal0 = _stolen_seconds()
    t_start = time.monotonic()
    samples: list[dict] = []
    n_samples = max(1, int(round(seconds / args.sample_seconds)))
    try:
        for i in range(n_samples + 1):
            if i:
                await asyncio.sleep(max(0.0, t_start + i * seconds / n_samples - time.monotonic()))
            now = time.monotonic()
            totals = await asyncio.to_thread(audio.read)
            samples.append({
                "t": round(now - t_start, 2),
                "rss_mb": {k: round(v, 1) for k, v in (await asyncio.to_thread(_memory, rig, skip)).items()},
                "underruns": totals["underruns"],
                "late_starts_3ms": totals[">3"],
                "stolen_s": round(_stolen_seconds() - steal0, 2),
                "frames": rig.frames - frames0,
                "osc_applied": (rig.osc.stats["applied"] - osc0.get("applied", 0)) if rig.osc else 0,
                "notes": engine.stats.notes_scheduled,
            })
    finally:
        probes = probe.stop() if probe is not None else []
        with_counts = {}
        try:
            out, _ = controller.communicate(b"", timeout=10)
            lines = out.decode().strip().splitlines()
            with_counts = json.loads(lines[-1]) if lines else {}
        except (subprocess.TimeoutExpired, ValueError):
            controller.kill()
            controller.wait()
    totals = await asyncio.to_thread(audio.read)
    t_end = time.monotonic()  # after the last reading: every underrun counted falls in the measurement
    timing = rig.timing.stats() if rig.timing is not None else {"note_on_times": []}
    style = worker.stats() if worker is not None else {}
    osc = dict(rig.osc.stats) if rig.osc is not None else {}
    synth = {"device": audio.device} if audio.device is not None else {}
    alive = {"audio": rig.synth is not None and rig.synth.alive, "timing": rig.timing is not None and rig.timing.alive}

    measured = t_end - t_start
    underrun_times = sorted(u for u in audio.underrun_times if u >= t_start)
    machine = {"probes": len(probes),
               "stalls": sum(p["stalls"] for p in probes),
               "max_late_ms": max((p["max_late_ms"] for p in probes), default=float("nan")),
               "late_ms": {k: sum(p["late_ms"][k] for p in probes) for k in (probes[0]["late_ms"] if probes else {})},
               "fifo": all(p["fifo"] for p in probes) if probes else False,
               "stalls_at_s": sorted([round(t - t_start, 3), ms, p["cpu"]] for p in probes
                                     for t, ms in p["stall_times"] if t >= t_start)}
    main_rss = [s["rss_mb"].get("main", 0.0) for s in samples]
    total_rss = [sum(s["rss_mb"].values()) for s in samples]
    return {
        "machine": f"{os.cpu_count()} cores, python {sys.version.split()[0]}",
        "cpu_stolen_s": samples[-1]["stolen_s"],
        "patch": str(args.patch),
        "jack_server": _jack_mode() if jack else "none",
        "warm_up_s": round(warm_s, 1),
        "minutes": round(measured / 60.0, 2),
        "controller": {"osc_rate": args.rate, "midi_rate": args.midi_rate if jack else 0, **with_counts},
        "rss_mb": {"main_start": main_rss[0], "main_end": main_rss[-1], "main_max": max(main_rss),
                   "all_start": round(total_rss[0], 1), "all_end": round(total_rss[-1], 1),
                   "all_max": round(max(total_rss), 1),
                   "per_process_start": samples[0]["rss_mb"], "per_process_end": samples[-1]["rss_mb"]},
        "audio": ({"underruns": totals["underruns"], "render_fell_behind": totals["starved"],
                   "late_events": totals["late_events"], "callbacks": totals["callbacks"],
                   "callbacks_started_late_ms": {k: totals[k] for k in audio.LAG_EDGES},
                   "max_start_lag_ms": round(audio.max_start_lag, 3),
                   "underruns_at_s": [round(u - t_start, 3) for u in underrun_times],
                   "machine_stall_ms_at_underrun": stalls_near(underrun_times, probes) if probes else None,
                   "device": synth.get("device"), "stats_unanswered": audio.unanswered}
                  if synth else "no audio device"),
        "notes": {**_late_counts(timing["note_on_times"], timing0),
                  "dropped_late": engine.stats.notes_dropped_late - dropped0},
        "frames": {"asked": int(measured * fps) if rig.pipeline is not None else 0,
                   "shown": rig.frames - frames0,
                   "dropped": max(0, int(measured * fps) - (rig.frames - frames0)) if rig.pipeline is not None else 0,
                   "styled": style.get("done", 0) - style0.get("done", 0),
                   "replaced_before_styling": style.get("dropped", 0) - style0.get("dropped", 0),
                   "style_errors": style.get("errors", 0), "style_restarts": style.get("restarts", 0)},
        "osc": {k: osc.get(k, 0) - osc0.get(k, 0) for k in osc},
        "midi_received": (rig.midi_in.received - midi0) if rig.midi_in is not None else 0,
        "engine": {"generator_errors": engine.stats.generator_errors, "control_events": engine.stats.control_events},
        "alive_at_end": alive,
        "machine_stalls": machine if probes else "not watched",
        "samples": samples,
    }


def targets(r: dict) -> dict[str, bool]:
    """Each soak target and whether it was met."""
    audio = r["audio"]
    return {
        f"memory growth < {RSS_GROWTH_TARGET_MB:g} MB": r["rss_mb"]["all_max"] - r["rss_mb"]["all_start"] < RSS_GROWTH_TARGET_MB,
        "0 audio underruns": not isinstance(audio, dict) or audio["underruns"] + audio["render_fell_behind"] == 0,
        "0 notes late by > 3 ms": r["notes"]["late_over_3ms"] == 0,
    }


def format_report(r: dict) -> str:
    m, a, n, f = r["rss_mb"], r["audio"], r["notes"], r["frames"]
    c = r["controller"]
    lines = [f"livegen soak — {r['minutes']:g} min of {r['patch']} after {r['warm_up_s']:g} s warm-up ({r['machine']}, "
             f"JACK {r['jack_server']})",
             f"control: {c.get('osc', 0)} OSC messages ({c.get('osc_junk', 0)} junk) at {c['osc_rate']:g}/s, "
             f"{c.get('midi', 0)} MIDI messages ({c.get('midi_phrases', 0)} phrases) at {c['midi_rate']:g}/s; "
             f"OSC applied {r['osc'].get('applied', 0)}, rejected {r['osc'].get('rejected', 0)}, "
             f"malformed {r['osc'].get('malformed', 0)}; MIDI received {r.get('midi_received', 0)}",
             "",
             "| minute | " + " | ".join(sorted(r["samples"][0]["rss_mb"])) + " | all (MiB) | underruns "
             "| callbacks begun > 3 ms late | CPU stolen (s) | frames |",
             "|---" * (len(r["samples"][0]["rss_mb"]) + 6) + "|"]
    step = max(1, len(r["samples"]) // 12)
    shown = r["samples"][::step] + ([r["samples"][-1]] if (len(r["samples"]) - 1) % step else [])
    for s in shown:
        rss = s["rss_mb"]
        lines.append(f"| {s['t'] / 60:.1f} | " + " | ".join(f"{rss.get(k, 0):.1f}" for k in sorted(r["samples"][0]["rss_mb"]))
                     + f" | {sum(rss.values()):.1f} | {s['underruns']} | {s.get('late_starts_3ms', 0)} "
                       f"| {s.get('stolen_s', 0.0):.2f} | {s['frames']} |")
    lines += ["",
              f"memory, all processes: start {m['all_start']:.1f} MiB, end {m['all_end']:.1f}, max {m['all_max']:.1f} "
              f"(growth {m['all_max'] - m['all_start']:+.1f}); main process start {m['main_start']:.1f}, "
              f"end {m['main_end']:.1f}, max {m['main_max']:.1f}"]
    if isinstance(a, dict):
        lines.append(f"audio on {a['device']}: {a['callbacks']} callbacks, underruns {a['underruns']}, render fell behind "
                     f"{a['render_fell_behind']}, events late at the synth {a['late_events']}")
        lags = ", ".join(f"{k} ms: {n}" for k, n in a["callbacks_started_late_ms"].items())
        lines.append(f"audio callbacks that began late: {lags}; latest {a['max_start_lag_ms']:.3f} ms; "
                     f"CPU time stolen by the hypervisor: {r.get('cpu_stolen_s', 0.0):.2f} s")
        if a.get("underruns_at_s"):
            near = a.get("machine_stall_ms_at_underrun") or [None] * len(a["underruns_at_s"])
            lines.append("underruns at (s into the measurement): " + ", ".join(
                f"{t:.3f}" + (f" (machine stalled {st:g} ms just before)" if st is not None else " (no machine stall)")
                for t, st in zip(a["underruns_at_s"], near)))
    else:
        lines.append(f"audio: {a}")
    ms = r.get("machine_stalls")
    if isinstance(ms, dict):
        lines.append(f"machine stalls (a top-priority thread on a core woken > 2 ms late; {ms['probes']} probes, "
                     f"{'real-time' if ms['fifo'] else 'NOT real-time: these count our own load too'}): {ms['stalls']}, "
                     f"latest {ms['max_late_ms']:.2f} ms; late " + ", ".join(f"{k} ms: {n}" for k, n in ms["late_ms"].items())
                     + ("; at " + ", ".join(f"{t:.1f} s ({late:g} ms, core {cpu})" for t, late, cpu in ms["stalls_at_s"][:20])
                        + (" ..." if len(ms["stalls_at_s"]) > 20 else "") if ms["stalls_at_s"] else ""))
    lines.append(f"note-ons at the MIDI port: {n['notes']}, late > 1 ms: {n['late_over_1ms']}, > 3 ms: {n['late_over_3ms']}, "
                 f"max {n['max_ms']:.3f} ms; dropped for being late: {n['dropped_late']}")
    lines.append(f"frames: {f['shown']} of {f['asked']} shown ({f['dropped']} dropped), {f['styled']} styled, "
                 f"{f['replaced_before_styling']} replaced before styling, style errors {f['style_errors']}, "
                 f"restarts {f['style_restarts']}")
    lines.append(f"engine: generator errors {r['engine']['generator_errors']}; still running at the end: "
                 + ", ".join(k for k, ok in r["alive_at_end"].items() if ok))
    lines.append("targets: " + ", ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in targets(r).items()))
    return "\n".join(lines)


def main(args) -> int:
    from livegen.bench.timing import _ensure_jack

    if args.patch is None:
        from livegen.cli import _default_patch

        args.patch = _default_patch()
    # Scene changes and the like are logged at info, several a second under random control:
    # the terminal gets warnings only, the log file everything.
    for handler in logging.getLogger("livegen").handlers:
        if type(handler) is logging.StreamHandler and handler.level < logging.WARNING and not args.verbose:
            handler.setLevel(logging.WARNING)
    jack = _ensure_jack()
    try:
        report = asyncio.run(_run(args))
    finally:
        if jack is not None:
            from livegen.control.midi_ports import close_listers

            close_listers()  # before the server goes: a client of a dying server aborts Python
            jack.terminate()
            jack.wait(5)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if args.strict and not all(targets(report).values()) else 0


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--controller":
    _controller(json.loads(sys.argv[2]))
