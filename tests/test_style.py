"""The style network, its fast path, blending, training, loss networks, worker and files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from livegen.visuals.loss_net import (LossNetError, RandomLossNet, StyleLoss, VGG16Features, gram, load_vgg16,
                                      make_loss_net)
from livegen.visuals.style_net import StyleModelError, load_style_net, save_style_net
from livegen.visuals.style_worker import StyleWorker
from livegen.visuals.stylizer import StyleSettings, Stylizer, preserve_colour
from style_models import distinct_styles, solid_colour


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return distinct_styles(tmp_path_factory.mktemp("style") / "three.pt")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    img = np.zeros((120, 160, 3), np.float32)
    yy, xx = np.mgrid[0:120, 0:160]
    img[..., 0] = xx / 160 * 255
    img[..., 1] = yy / 120 * 255
    img[..., 2] = 128 + 60 * np.sin(xx / 9.0)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float() / 255.0


# -- the network and its fast paths ----------------------------------------------------------

def test_fast_path_matches_fp32_reference(model_path, frame):
    ref = Stylizer(load_style_net(model_path), device="cpu", path="reference")
    fast = Stylizer(load_style_net(model_path), device="cpu", path="fast")
    assert fast.channels_last and not ref.channels_last
    for weights in ([1, 0, 0], [0.2, 0.5, 0.3]):
        a = ref.stylise_tensor(_tensor(frame), weights)
        b = fast.stylise_tensor(_tensor(frame), weights)
        assert a.shape == (1, 3, 120, 160)
        assert float((a - b).abs().max()) < 1e-4
    s = StyleSettings([0, 1, 0])
    diff = np.abs(ref(frame, s).astype(int) - fast(frame, s).astype(int))
    assert diff.max() <= 1  # rounding to 8 bits at most one step apart


def test_fast_path_reorders_a_copy_and_the_copy_cannot_be_saved(model_path, frame, tmp_path):
    net = load_style_net(model_path)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = Stylizer(net, device="cpu", path="fast")
    assert fast.net is not net and fast.net.pixel_major and not net.pixel_major
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the caller's weights untouched
    assert not torch.equal(fast.net.out.weight, net.out.weight.to(fast.net.out.weight))
    with pytest.raises(ValueError, match="reordered"):
        save_style_net(fast.net, tmp_path / "reordered.pt")
    save_style_net(net, tmp_path / "original.pt")  # the original still saves


def test_compiled_path_matches_fp32_reference(model_path, frame, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    ref = Stylizer(load_style_net(model_path), device="cpu", path="reference")
    comp = Stylizer(load_style_net(model_path), device="cpu", path="fast", compile=True)
    if not comp.compiled:
        pytest.skip("torch.compile is not available here")
    try:
        b = comp.stylise_tensor(_tensor(frame), [0.3, 0.3, 0.4])
    except Exception as e:  # no C++ compiler for inductor
        pytest.skip(f"torch.compile cannot build here: {str(e)[:120]}")
    a = ref.stylise_tensor(_tensor(frame), [0.3, 0.3, 0.4])
    assert float((a - b).abs().max()) < 1e-3


def test_odd_frame_sizes_come_back_the_same_size(model_path):
    st = Stylizer(load_style_net(model_path), device="cpu")
    for h, w in ((97, 131), (240, 320), (36, 64)):
        out = st(np.full((h, w, 3), 90, np.uint8), StyleSettings([1, 0, 0]))
        assert out.shape == (h, w, 3) and out.dtype == np.uint8


# -- blending ----------------------------------------------------------------------------

def test_one_hot_weights_give_that_style_alone(model_path, frame):
    net = load_style_net(model_path)
    st = Stylizer(net, device="cpu", path="reference")
    x = _tensor(frame)
    outs = []
    for i in range(3):
        one_hot = torch.nn.functional.one_hot(torch.tensor([i]), 3).float()
        with torch.no_grad():
            direct = net(x, one_hot)
        via = st.stylise_tensor(x, [1.0 if j == i else 0.0 for j in range(3)])
        assert torch.allclose(direct, via, atol=1e-6)
        outs.append(direct)
    # the styles really differ, so the check above could fail
    assert float((outs[0] - outs[1]).abs().mean()) > 0.02
    assert float((outs[1] - outs[2]).abs().mean()) > 0.02


def test_weights_are_normalised_and_the_remainder_is_the_source(model_path, frame):
    st = Stylizer(load_style_net(model_path), device="cpu", path="reference")
    full = st(frame, StyleSettings([1, 0, 0])).astype(int)
    assert np.array_equal(st(frame, StyleSettings([5, 0, 0])).astype(int), full)  # 5 counts as 1 (normalised)
    # weights summing to 0.5: half style, half source ("no style" takes the rest)
    half = st(frame, StyleSettings([0.5, 0, 0])).astype(int)
    expect = (frame.astype(float) * 0.5 + full * 0.5)
    assert np.abs(half - expect).max() <= 1.5
    # intensity multiplies in the same way
    assert np.abs(st(frame, StyleSettings([1, 0, 0], intensity=0.5)).astype(int) - expect).max() <= 1.5
    # nothing up: the source itself, and the network is not even run
    assert st(frame, StyleSettings([0, 0, 0])) is frame
    assert st(frame, StyleSettings([1, 1, 1], intensity=0.0)) is frame
    with pytest.raises(ValueError, match="3 styles"):
        st(frame, StyleSettings([1, 0]))


def test_blending_mixes_inside_the_network_not_the_pixels(model_path, frame):
    st = Stylizer(load_style_net(model_path), device="cpu", path="reference")
    x = _tensor(frame)
    a, b = st.stylise_tensor(x, [1, 0, 0]), st.stylise_tensor(x, [0, 1, 0])
    mid = st.stylise_tensor(x, [1, 1, 0])
    assert float((mid - a).abs().mean()) > 0.01 and float((mid - b).abs().mean()) > 0.01
    assert float((mid - (a + b) / 2).abs().mean()) > 0.005  # not a crossfade
    # and it moves continuously: a small change of weight, a small change of picture
    near = st.stylise_tensor(x, [1, 1.02, 0])
    assert float((near - mid).abs().mean()) < 0.01


def test_colour_preservation_keeps_source_chroma_and_style_luminance(model_path, frame):
    st = Stylizer(load_style_net(model_path), device="cpu", path="reference")
    x = _tensor(frame)
    styled = st.stylise_tensor(x, [0, 0, 1])
    kept = preserve_colour(styled, x, 1.0)
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
    yuv = lambda t: torch.einsum("ij,njhw->nihw", m, t)  # noqa: E731
    assert torch.allclose(yuv(kept)[:, 0], yuv(styled)[:, 0], atol=1e-4)
    assert torch.allclose(yuv(kept)[:, 1:], yuv(x)[:, 1:], atol=1e-4)
    assert torch.allclose(preserve_colour(styled, x, 0.0), styled, atol=1e-5)


# -- files ---------------------------------------------------------------------------------

def test_model_round_trip_is_fp16_and_keeps_names(model_path, tmp_path):
    net = load_style_net(model_path)
    assert net.styles == ["red", "green", "blue"]
    payload = torch.load(model_path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values())
    again = load_style_net(save_style_net(net, tmp_path / "again.pt"))
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_corrupt_or_foreign_model_files_give_one_clear_line(model_path, tmp_path):
    cases = {}
    trunc = tmp_path / "truncated.pt"
    trunc.write_bytes(model_path.read_bytes()[:3000])
    cases[trunc] = "not a readable style model"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 50)
    cases[junk] = "not a readable style model"
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    cases[foreign] = "not a livegen style model"
    code = tmp_path / "code.pt"
    torch.save({"format": "livegen-style-net", "version": 1, "x": threading.Lock}, code)  # a pickled class
    cases[code] = "not a readable style model"
    old = tmp_path / "old.pt"
    payload = torch.load(model_path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, old)
    cases[old] = "version 99"
    bad_shape = tmp_path / "shape.pt"
    payload = torch.load(model_path, weights_only=True)
    payload["config"]["channels"] = [4, 4, 4]
    torch.save(payload, bad_shape)
    cases[bad_shape] = "does not fit its own config"
    cases[tmp_path / "missing.pt"] = "no such style model file"
    for path, words in cases.items():
        with pytest.raises(StyleModelError) as e:
            load_style_net(path)
        msg = str(e.value)
        assert "\n" not in msg and str(path) in msg and words in msg, msg


# -- loss networks ---------------------------------------------------------------------------

def _torchvision_vgg16_state(seed: int = 3) -> dict[str, torch.Tensor]:
    """A state dict laid out as torchvision's vgg16 (features + classifier), random values."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    cin, idx = 3, 0
    for item in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if item == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(item, cin, 3, 3, generator=g) * 0.05
        state[f"features.{idx}.bias"] = torch.randn(item, generator=g) * 0.01
        cin, idx = item, idx + 2
    for i, (o, n) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        state[f"classifier.{i}.weight"] = torch.zeros(o, 1)  # shapes shrunk: not used by the loss
        state[f"classifier.{i}.bias"] = torch.zeros(o)
    return state


def test_vgg16_loads_torchvision_key_names_from_a_local_file(tmp_path):
    state = _torchvision_vgg16_state()
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = load_vgg16(path)
    assert isinstance(net, VGG16Features)
    assert torch.equal(net.features[0].weight, state["features.0.weight"])
    assert torch.equal(net.features[21].weight, state["features.21.weight"])  # conv4_3, before relu4_3 (22)
    feats = net(torch.rand(1, 3, 64, 64))
    assert sorted(feats) == [3, 8, 15, 22]
    assert feats[22].shape == (1, 512, 8, 8) and feats[8].shape == (1, 128, 32, 32)
    # the same through make_loss_net, as `--loss-net PATH` does
    assert torch.equal(make_loss_net(str(path)).features[2].weight, state["features.2.weight"])


def test_vgg16_loads_through_torch_hub_from_a_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    state = _torchvision_vgg16_state(5)
    path = tmp_path / "vgg16-local.pth"
    torch.save(state, path)
    net = load_vgg16(path.as_uri())  # file:// through torch.hub.load_state_dict_from_url
    assert torch.equal(net.features[19].weight, state["features.19.weight"])
    assert list((tmp_path / "hub" / "hub" / "checkpoints").glob("vgg16-local.pth"))  # cached like the real one


def test_bad_vgg16_files_are_one_line_errors(tmp_path):
    state = _torchvision_vgg16_state()
    del state["features.10.weight"]
    p = tmp_path / "partial.pth"
    torch.save(state, p)
    with pytest.raises(LossNetError, match="no features.10.weight"):
        load_vgg16(p)
    state = _torchvision_vgg16_state()
    state["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(state, p)
    with pytest.raises(LossNetError, match=r"features.0.weight has shape \(32, 3, 3, 3\)"):
        load_vgg16(p)
    with pytest.raises(LossNetError, match="no such VGG16 weights file"):
        load_vgg16(tmp_path / "nope.pth")


def test_random_loss_net_is_fixed_by_its_seed_and_losses_are_normalised():
    a, b, c = RandomLossNet(0), RandomLossNet(0), RandomLossNet(1)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    crit = StyleLoss(a)
    img = torch.rand(3, 64, 64)
    targets = crit.style_targets([img, torch.rand(3, 64, 64) * 0.2])
    w = torch.tensor([[1.0, 0.0]])
    cl, sl = crit(img.unsqueeze(0), img.unsqueeze(0), targets, w)
    assert float(cl) == pytest.approx(0.0, abs=1e-6) and float(sl) == pytest.approx(0.0, abs=1e-6)
    cl, sl = crit(torch.zeros(1, 3, 64, 64), img.unsqueeze(0), targets, w)
    assert 0.05 < float(cl) < 10 and 0.05 < float(sl) < 10  # relative errors: order 1, whatever the scale
    f = torch.randn(2, 4, 5, 5)
    assert gram(f).shape == (2, 4, 4) and torch.allclose(gram(f), gram(f).transpose(1, 2))


# -- training ----------------------------------------------------------------------------------

def _tiny_train_config(tmp_path: Path, **kw):
    from livegen.visuals.train_style import StyleTrainConfig

    styles = []
    rng = np.random.default_rng(0)
    for name, colour in (("stripes", (255, 200, 0)), ("dots", (0, 80, 255))):
        img = np.zeros((64, 64, 3), np.uint8)
        if name == "stripes":
            img[::6] = colour
            img[1::6] = colour
        else:
            img[rng.random((64, 64)) < 0.15] = colour
        p = tmp_path / f"{name}.png"
        from livegen.visuals.stylize import save_image

        save_image(p, img)
        styles.append(str(p))
    base = dict(styles=styles, out=str(tmp_path / "run"), size=32, render_size=(64, 48), style_size=48, batch=2, steps=75,
                scene_seconds=1.0, preview_every=50, checkpoint_every=50, threads=1)
    base.update(kw)
    return StyleTrainConfig(**base)


def test_a_few_training_steps_lower_the_loss_and_write_the_reports(tmp_path):
    from livegen.visuals.train_style import train

    cfg = _tiny_train_config(tmp_path)
    summary = train(cfg, progress=False)
    out = Path(cfg.out)
    history = summary and __import__("json").loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [25, 50, 75]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"], history
    assert history[-1]["style"] < history[0]["style"]
    net = load_style_net(out / "style.pt")
    assert net.styles == ["stripes", "dots"] and net.meta["steps"] == 75
    for name in ("preview.png", "previews/step-00050.png", "MODEL_CARD.md", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "MODEL_CARD.md").read_text()
    assert "`stripes`" in card and "75 steps" in card


def test_training_resumes_from_its_checkpoint(tmp_path):
    from livegen.visuals.train_style import train

    cfg = _tiny_train_config(tmp_path, steps=50, temporal_weight=0.0)
    train(cfg, progress=False)
    cfg = _tiny_train_config(tmp_path, steps=75, temporal_weight=0.0, resume=True)
    summary = train(cfg, progress=False)
    assert summary["steps"] == 75
    steps = [h["step"] for h in __import__("json").loads((Path(cfg.out) / "history.json").read_text())]
    assert steps == [25, 50, 75]  # the first 50 were not trained again


def test_init_starts_from_a_saved_model_and_refuses_another_architecture(tmp_path):
    from livegen.visuals.train_style import train

    first = _tiny_train_config(tmp_path, steps=25, temporal_weight=0.0)
    train(first, progress=False)
    saved = Path(first.out) / "style.pt"
    again = _tiny_train_config(tmp_path, out=str(tmp_path / "again"), steps=0, init=str(saved))
    train(again, progress=False)
    a, b = load_style_net(saved), load_style_net(tmp_path / "again" / "style.pt")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    other = _tiny_train_config(tmp_path, out=str(tmp_path / "other"), steps=1, res_blocks=2, init=str(saved))
    with pytest.raises(ValueError, match="--init model"):
        train(other, progress=False)


def test_temporal_term_only_punishes_output_change_beyond_the_gain():
    from livegen.visuals.train_style import temporal_loss

    x1 = torch.rand(2, 3, 16, 16)
    x2 = x1.clone()
    x2[..., 4:8, 4:8] += 0.2  # a moving patch
    y1 = torch.rand(2, 3, 16, 16)
    calm = y1 + 0.6 * (x2 - x1)       # changes where the input does, by less
    assert float(temporal_loss(y1, calm, x1, x2, gain=0.7)) == 0.0
    loud = y1 + 1.5 * (x2 - x1)       # amplifies the motion
    flicker = y1.clone()
    flicker[..., 10:14, 10:14] += 0.1  # changes where the input stood still
    assert float(temporal_loss(y1, loud, x1, x2, gain=0.7)) == pytest.approx((0.8 * 0.2) ** 2 * 16 / 256, rel=1e-4)
    assert float(temporal_loss(y1, flicker, x1, x2, gain=0.7)) == pytest.approx(0.1 ** 2 * 16 / 256, rel=1e-4)


@pytest.mark.parametrize("upsample,skips,blocks", [("shuffle", True, 3), ("nearest", False, 4), ("shuffle", False, 2)])
def test_every_architecture_keeps_any_frame_size_and_round_trips(upsample, skips, blocks, tmp_path):
    from livegen.visuals.style_net import StyleNet, StyleNetConfig

    torch.manual_seed(0)
    net = StyleNet(StyleNetConfig(styles=["a", "b"], channels=(8, 8, 16), res_blocks=blocks,
                                  upsample=upsample, skips=skips)).eval()
    w = torch.tensor([[0.3, 0.7]])
    for h, wd in ((64, 96), (61, 83), (9, 13)):
        with torch.no_grad():
            assert net(torch.rand(1, 3, h, wd), w).shape == (1, 3, h, wd)
    again = load_style_net(save_style_net(net, tmp_path / "net.pt"))
    assert (again.config.upsample, again.config.skips, again.config.res_blocks) == (upsample, skips, blocks)
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():  # the file is fp16: the same picture within fp16 rounding
        assert float((again(x, w) - net(x, w)).abs().max()) < 5e-3


def test_version_1_files_still_load(tmp_path):
    """Files written before skips and pixel shuffle: nearest upsampling, no skips."""
    from livegen.visuals.style_net import StyleNet, StyleNetConfig

    net = StyleNet(StyleNetConfig(styles=["old"], channels=(8, 8, 8), res_blocks=4, upsample="nearest", skips=False))
    path = save_style_net(net, tmp_path / "v1.pt")
    payload = torch.load(path, weights_only=True)
    payload["version"] = 1
    payload["config"] = {k: payload["config"][k] for k in ("styles", "channels", "res_blocks")}
    torch.save(payload, path)
    old = load_style_net(path)
    assert (old.config.upsample, old.config.skips, old.config.res_blocks) == ("nearest", False, 4)
    assert old(torch.rand(1, 3, 24, 32), torch.ones(1, 1)).shape == (1, 3, 24, 32)


# -- the worker ---------------------------------------------------------------------------------

class _SlowStylizer:
    styles = ["a"]

    def __init__(self, delay: float = 0.05, fail_on: int | None = None) -> None:
        self.delay, self.fail_on, self.calls = delay, fail_on, 0

    def __call__(self, frame, settings):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail_on is not None and int(frame[0, 0, 0]) == self.fail_on:
            raise RuntimeError("boom")
        return 255 - frame


def test_worker_keeps_only_the_newest_frame_and_never_blocks():
    st = _SlowStylizer(0.1)
    w = StyleWorker(st, threads=None).start()  # type: ignore[arg-type]
    try:
        t0 = time.perf_counter()
        seqs = [w.submit(np.full((4, 4, 3), i, np.uint8), StyleSettings([1.0])) for i in range(10)]
        assert time.perf_counter() - t0 < 0.05  # submitting never waits for the network
        res = w.wait_for(seqs[-1], timeout=5)
        assert res is not None and res.seq == seqs[-1] and res.styled
        assert int(res.frame[0, 0, 0]) == 255 - 9  # the newest frame's result
        assert st.calls < 10 and w.dropped >= 7  # the ones in between were skipped
        assert w.latest() is res and res.latency > 0
    finally:
        w.stop()
    assert w._thread is None


def test_worker_survives_a_failing_network_and_passes_the_frame_through(caplog):
    st = _SlowStylizer(0.0, fail_on=7)
    w = StyleWorker(st, threads=None).start()  # type: ignore[arg-type]
    try:
        bad = np.full((4, 4, 3), 7, np.uint8)
        res = w.wait_for(w.submit(bad, StyleSettings([1.0])))
        assert res is not None and not res.styled and res.frame is bad
        for _ in range(3):
            w.wait_for(w.submit(bad, StyleSettings([1.0])))
        res = w.wait_for(w.submit(np.full((4, 4, 3), 1, np.uint8), StyleSettings([1.0])))
        assert res is not None and res.styled and int(res.frame[0, 0, 0]) == 254
    finally:
        w.stop()
    assert w.errors == 4
    assert sum("style network failed" in r.getMessage() for r in caplog.records) == 1  # said once


def test_worker_on_the_real_network(model_path, frame):
    st = Stylizer(load_style_net(model_path), device="cpu")
    w = StyleWorker(st, threads=1, warm_up=(120, 160)).start()
    try:
        assert w.ready.wait(30)
        res = w.wait_for(w.submit(frame, StyleSettings([0, 1, 0])), timeout=30)
        assert res is not None and res.styled
        assert np.array_equal(res.frame, st(frame, StyleSettings([0, 1, 0])))
    finally:
        w.stop()


def test_solid_colour_model_is_what_the_window_tests_look_for(tmp_path):
    st = Stylizer(load_style_net(solid_colour(tmp_path / "green.pt")), device="cpu")
    out = st(np.zeros((48, 64, 3), np.uint8), StyleSettings([1.0]))
    assert (out[..., 1] > 250).all() and (out[..., 0] < 5).all() and (out[..., 2] < 5).all()


def test_a_compile_failure_on_first_call_falls_back_to_the_plain_network(model_path, frame, caplog):
    ref = Stylizer(load_style_net(model_path), device="cpu", path="reference")
    st = Stylizer(load_style_net(model_path), device="cpu", path="fast")

    def broken(x, w):
        raise RuntimeError("InductorError: no C++ compiler")

    st._run, st.compiled = broken, True  # what a failing torch.compile does on its first call
    out = st(frame, StyleSettings([0, 0, 1]))
    assert not st.compiled and st._run is st.net
    assert np.abs(out.astype(int) - ref(frame, StyleSettings([0, 0, 1])).astype(int)).max() <= 1
    assert sum("torch.compile failed" in r.getMessage() for r in caplog.records) == 1


# -- the worker process (the default in a show) ---------------------------------------------------

def test_style_process_gives_the_same_picture_and_never_blocks(model_path, frame):
    from livegen.visuals.style_process import StyleProcess

    st = Stylizer(load_style_net(model_path), device="cpu")
    proc = StyleProcess(model_path, st.styles, frame.shape[:2], threads=1).start()
    try:
        assert proc.ready.wait(60), "the style process did not start"
        t0 = time.perf_counter()
        seqs = [proc.submit(frame, StyleSettings([0, 1, 0])) for _ in range(5)]
        assert time.perf_counter() - t0 < 0.05
        res = proc.wait_for(seqs[-1], timeout=30)
        assert res is not None and res.styled and res.seq == seqs[-1]
        assert np.array_equal(res.frame, st(frame, StyleSettings([0, 1, 0])))
        # a frame of another size is not sent (the window shows it unstyled)
        n = proc.submit(np.zeros((10, 10, 3), np.uint8), StyleSettings([1, 0, 0]))
        assert proc.wait_for(n, timeout=0.5) is None
        assert proc.stats()["done"] >= 1
    finally:
        proc.stop()
    assert all(lane.proc is None and lane.shms == [] for lane in proc.lanes)


def test_style_process_is_restarted_after_a_crash(model_path, frame, caplog):
    import os
    import signal

    from livegen.visuals.style_process import StyleProcess

    proc = StyleProcess(model_path, ["red", "green", "blue"], frame.shape[:2], processes=1).start()
    try:
        assert proc.ready.wait(60)
        first = proc.lanes[0].proc.pid
        os.kill(first, signal.SIGKILL)  # a driver crash, the OOM killer...
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (proc.restarts == 1 and proc.ready.is_set()):
            time.sleep(0.05)
        assert proc.restarts == 1 and proc.ready.is_set() and proc.lanes[0].proc.pid != first
        res = proc.wait_for(proc.submit(frame, StyleSettings([1, 0, 0])), timeout=30)
        assert res is not None and res.styled
    finally:
        proc.stop()
    assert any("restarting it" in r.getMessage() for r in caplog.records)


def test_a_result_older_than_the_one_shown_is_dropped(model_path):
    from livegen.visuals.style_process import StyleProcess
    from livegen.visuals.style_worker import StyledFrame

    proc = StyleProcess(model_path, ["red", "green", "blue"], (8, 8), processes=2)  # not started
    try:
        img = np.zeros((8, 8, 3), np.uint8)
        proc._publish(StyledFrame(img, 5, 0.0, 0.1, True), 1.0)
        proc._publish(StyledFrame(img, 4, 0.0, 0.2, True), 1.0)  # the slower process, an older frame
        assert proc.latest().seq == 5 and proc.stats()["stale"] == 1 and proc.done == 1
        proc._publish(StyledFrame(img, 6, 0.0, 0.3, True), 1.0)
        assert proc.latest().seq == 6 and proc.done == 2
    finally:
        proc.stop()


def test_two_style_processes_share_the_frames_and_show_them_in_order(model_path, frame):
    import os
    import signal

    from livegen.visuals.style_process import StyleProcess

    st = Stylizer(load_style_net(model_path), device="cpu")
    proc = StyleProcess(model_path, st.styles, frame.shape[:2], processes=2).start()
    try:
        assert proc.ready.wait(60) and all(lane.ready.is_set() for lane in proc.lanes)
        shown = []
        for i in range(24):  # bursts of frames faster than one process styles them
            seq = proc.submit(frame, StyleSettings([1, 0, 0]))
            res = proc.latest()
            if res is not None:
                shown.append(res.seq)
            if i % 4 == 3:
                time.sleep(0.01)
        last = proc.wait_for(seq, timeout=30)
        assert last is not None and last.styled and np.array_equal(last.frame, st(frame, StyleSettings([1, 0, 0])))
        assert shown == sorted(shown)  # a slower process never puts an older picture back
        assert proc.stats()["processes"] == 2
        assert all(lane.frames > 0 for lane in proc.lanes)  # with one busy, frames go to the other
        # one process dies: the other keeps styling while it restarts
        os.kill(proc.lanes[0].proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.lanes[0].ready.is_set():
            time.sleep(0.02)
        assert proc.ready.is_set() and not proc.lanes[0].ready.is_set()
        sent = [lane.frames for lane in proc.lanes]
        res = proc.wait_for(proc.submit(frame, StyleSettings([0, 0, 1])), timeout=30)
        assert res is not None and res.styled
        assert [lane.frames for lane in proc.lanes] == [sent[0], sent[1] + 1]  # the live one took it
    finally:
        proc.stop()
    assert all(lane.proc is None and lane.shms == [] for lane in proc.lanes)
