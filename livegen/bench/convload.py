"""A CPU-heavy torch conv net in its own process: the stand-in for the style network.

Johnson et al.'s TransformerNet shape (32/64/128 channels, 5 residual blocks) on
320x240 frames, one torch thread, niced, looping as fast as it can: the load the real
style worker will put on the machine while the music must keep time.
"""

from __future__ import annotations

import multiprocessing as mp
import time

from livegen.realtime import lower_process_priority


def _net():
    from torch import nn

    def conv(cin, cout, k, s):
        return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, s), nn.InstanceNorm2d(cout, affine=True), nn.ReLU())

    class Res(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(conv(c, c, 3, 1), nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c, affine=True))

        def forward(self, x):
            return x + self.body(x)

    return nn.Sequential(
        conv(3, 32, 9, 1), conv(32, 64, 3, 2), conv(64, 128, 3, 2), *[Res(128) for _ in range(5)],
        nn.Upsample(scale_factor=2), conv(128, 64, 3, 1), nn.Upsample(scale_factor=2), conv(64, 32, 3, 1),
        nn.ReflectionPad2d(4), nn.Conv2d(32, 3, 9),
    ).eval()


def _worker(stop, frames, width: int, height: int, threads: int) -> None:
    lower_process_priority(10)  # the music's threads come first
    import torch

    torch.set_num_threads(threads)
    net = _net()
    x = torch.rand(1, 3, height, width)
    with torch.inference_mode():
        while not stop.is_set():
            net(x)
            with frames.get_lock():
                frames.value += 1


class ConvLoad:
    """Start/stop the load process; ``fps()`` is how fast it ran."""

    def __init__(self, width: int = 320, height: int = 240, threads: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._frames = ctx.Value("l", 0)
        self._proc = ctx.Process(target=_worker, args=(self._stop, self._frames, width, height, threads),
                                 name="livegen-convload", daemon=False)
        self._t0 = 0.0
        self._t1 = 0.0

    def start(self) -> None:
        self._proc.start()
        self._t0 = time.monotonic()

    def stop(self) -> None:
        self._t1 = time.monotonic()
        self._stop.set()
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    @property
    def frames(self) -> int:
        return self._frames.value

    def fps(self) -> float:
        end = self._t1 or time.monotonic()
        return self.frames / max(1e-9, end - self._t0)
