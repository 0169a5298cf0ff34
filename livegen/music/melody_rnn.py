"""The melody RNN: an LSTM that reads the previous 16th-note token and where it is (bar
position, key, metre) and predicts the next token.

Training runs ``nn.LSTM`` over whole sequences (fast); live generation runs the same weights
one step at a time (``MelodyStepper``: about 0.15 ms a step on one CPU thread, where
``nn.LSTM`` stepped one token at a time is several times slower and erratic). The stepper
derives its matrices from the trained model when it is built: one set of weights, nothing to
keep in sync.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livegen.music.encoding import COND_DIM, INPUT_VOCAB, MAX_BAR_STEPS, MIN_PITCH, NOTE_BASE, VOCAB
from livegen.weights import WeightsFileError, load_weights

FORMAT = "livegen-melody-rnn"
FORMAT_VERSION = 2  # 2: lookback conditioning and the degree head


class MelodyModelError(ValueError):
    """A model file that cannot be used; the message is one line naming the file."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class MelodyRNNConfig:
    hidden: int = 256
    layers: int = 2
    embed: int = 64
    dropout: float = 0.2
    vocab: int = VOCAB
    input_vocab: int = INPUT_VOCAB
    cond_dim: int = COND_DIM


class MelodyRNN(nn.Module):
    """LSTM over (previous token, conditioning); two output heads added together: one over the
    absolute tokens, one over the 12 scale degrees, routed to the note-ons by the key's tonic.
    The degree head is what a melody means in any key; the token head adds register and
    rhythm. Transposition augmentation alone would have to learn the degrees twelve times."""

    def __init__(self, config: MelodyRNNConfig = MelodyRNNConfig()) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.input_vocab, config.embed)
        self.lstm = nn.LSTM(config.embed + config.cond_dim, config.hidden, config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab)
        self.degree = nn.Linear(config.hidden, 12)
        pcs = (torch.arange(config.vocab - NOTE_BASE) + MIN_PITCH) % 12  # pitch class of each note-on token
        self.register_buffer("note_pc", pcs, persistent=False)
        self.register_buffer("pc", torch.arange(12), persistent=False)

    def logits(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Output logits from LSTM outputs h (..., hidden) and the step's conditioning."""
        out = self.head(h)
        tonic = cond[..., MAX_BAR_STEPS:MAX_BAR_STEPS + 12].argmax(-1, keepdim=True)
        deg = self.degree(h).gather(-1, (self.pc - tonic) % 12)  # degree logits per absolute pitch class
        notes = out[..., NOTE_BASE:] + deg[..., self.note_pc]
        return torch.cat([out[..., :NOTE_BASE], notes], dim=-1)

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """tokens (B, T) previous tokens, cond (B, T, COND_DIM) -> logits (B, T, VOCAB), state."""
        x = torch.cat([self.embed(tokens), cond], dim=-1)
        y, state = self.lstm(x, state)
        return self.logits(self.drop(y), cond), state


class MelodyStepper:
    """One token in, one distribution out, state carried: the live API of a trained model.

    The LSTM's weights, rearranged once when the stepper is built: layer 0's input is the
    previous token (a row of a precomputed table: the embedding multiplied through the input
    weights) plus the conditioning; the two output heads are folded, per tonic, into one
    matrix (12 of them). On a CPU a step is then a handful of numpy matrix-vector products
    (about 0.15 ms median on one thread for the shipped 2x256 model; a torch step costs about
    twice that, mostly per-op overhead). On CUDA the same arithmetic runs in torch.

    State is a tuple of per-layer (h, c) for a batch of voices (numpy arrays on the CPU,
    tensors on CUDA); ``step`` never changes a state it was given, so callers can keep old
    states and re-sample from them ("mutate").
    """

    def __init__(self, model: MelodyRNN, device: torch.device | str | None = None,
                 backend: str | None = None) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.backend = backend or ("numpy" if self.device.type == "cpu" else "torch")
        self.model = model = model.to(self.device).eval()
        cfg = model.config
        lstm = model.lstm
        with torch.no_grad():
            w0 = lstm.weight_ih_l0
            # Per layer: (input weights^T, hidden weights^T, bias); layer 0's input weights
            # are the token table (input vocab rows) followed by the conditioning rows.
            token_w = model.embed.weight @ w0[:, :cfg.embed].T
            layers = [(torch.cat([token_w, w0[:, cfg.embed:].T], 0), lstm.weight_hh_l0.T,
                       lstm.bias_ih_l0 + lstm.bias_hh_l0)]
            for i in range(1, cfg.layers):
                layers.append((getattr(lstm, f"weight_ih_l{i}").T, getattr(lstm, f"weight_hh_l{i}").T,
                               getattr(lstm, f"bias_ih_l{i}") + getattr(lstm, f"bias_hh_l{i}")))
            # Output: logits(h) is affine in h for a fixed tonic; read off its matrix and bias.
            eye = torch.eye(cfg.hidden, device=self.device)
            zero = torch.zeros(1, cfg.hidden, device=self.device)
            mats, biases = [], []
            for t in range(12):
                c = torch.zeros(1, cfg.cond_dim, device=self.device)
                c[0, MAX_BAR_STEPS + t] = 1.0
                b = model.logits(zero, c)[0]
                mats.append(model.logits(eye, c.expand(cfg.hidden, -1)) - b)
                biases.append(b)
            out_w, out_b = torch.stack(mats), torch.stack(biases)  # (12, hidden, vocab), (12, vocab)
        self.input_vocab = cfg.input_vocab
        self.hidden = cfg.hidden
        if self.backend == "numpy":
            def arr(t: torch.Tensor) -> np.ndarray:
                return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
        else:
            def arr(t: torch.Tensor) -> torch.Tensor:
                return t.detach().contiguous()
        self.layers = [(arr(wi), arr(wh), arr(b)) for wi, wh, b in layers]
        self.out_w, self.out_b = arr(out_w), arr(out_b)

    def start(self, batch: int = 1):
        if self.backend == "numpy":
            z = np.zeros((batch, self.hidden), np.float32)
        else:
            z = torch.zeros(batch, self.hidden, device=self.device)
        return tuple((z, z) for _ in self.layers)

    def step(self, state, prev: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray, tuple]:
        """prev (B,) tokens, cond (B, COND_DIM) -> (B, VOCAB) natural-log probabilities, new state."""
        cond = np.asarray(cond, np.float32)
        prev = np.asarray(prev, np.int64)
        tonics = cond[:, MAX_BAR_STEPS:MAX_BAR_STEPS + 12].argmax(1)
        if self.backend == "numpy":
            return self._step_numpy(state, prev, cond, tonics)
        return self._step_torch(state, prev, cond, tonics)

    def _step_numpy(self, state, prev, cond, tonics):
        h_in = None
        new = []
        for i, ((w_in, w_hh, b), (h, c)) in enumerate(zip(self.layers, state)):
            if i == 0:
                gates = w_in[prev] + cond @ w_in[self.input_vocab:] + h @ w_hh + b
            else:
                gates = h_in @ w_in + h @ w_hh + b
            n = self.hidden
            sig = 1.0 / (1.0 + np.exp(-gates))  # PyTorch's gate order: input, forget, cell, output
            c = sig[:, n:2 * n] * c + sig[:, :n] * np.tanh(gates[:, 2 * n:3 * n])
            h_in = sig[:, 3 * n:] * np.tanh(c)
            new.append((h_in, c))
        if (tonics == tonics[0]).all():  # one key for every voice: one matrix product
            logits = h_in @ self.out_w[tonics[0]] + self.out_b[tonics[0]]
        else:
            logits = np.einsum("bh,bhv->bv", h_in, self.out_w[tonics]) + self.out_b[tonics]
        logits = logits.astype(np.float64)
        logits -= logits.max(1, keepdims=True)
        logits -= np.log(np.exp(logits).sum(1, keepdims=True))
        return logits, tuple(new)

    @torch.inference_mode()
    def _step_torch(self, state, prev, cond, tonics):
        tok = torch.as_tensor(prev, device=self.device)
        cnd = torch.as_tensor(cond, device=self.device)
        h_in = None
        new = []
        for i, ((w_in, w_hh, b), (h, c)) in enumerate(zip(self.layers, state)):
            x = w_in[tok] + cnd @ w_in[self.input_vocab:] if i == 0 else h_in @ w_in
            gates = x + h @ w_hh + b
            ig, fg, gg, og = gates.chunk(4, 1)
            c = torch.sigmoid(fg) * c + torch.sigmoid(ig) * torch.tanh(gg)
            h_in = torch.sigmoid(og) * torch.tanh(c)
            new.append((h_in, c))
        t = torch.as_tensor(tonics, device=self.device)
        logits = torch.baddbmm(self.out_b[t][:, None], h_in[:, None], self.out_w[t])[:, 0]
        return torch.log_softmax(logits.double(), dim=-1).cpu().numpy(), tuple(new)


@torch.inference_mode()
def token_log_probs(model: MelodyRNN, tokens: np.ndarray, inputs: np.ndarray, cond: np.ndarray,
                    device: torch.device | None = None) -> np.ndarray:
    """Natural-log probability of each token of one tune, read in one pass from its start."""
    device = device or next(model.parameters()).device
    model.eval()
    x = torch.as_tensor(inputs[None], device=device)
    c = torch.as_tensor(cond[None], device=device)
    logits, _ = model(x, c)
    logp = torch.log_softmax(logits[0].double(), dim=-1)
    t = torch.as_tensor(np.asarray(tokens, np.int64), device=device)
    return logp.gather(1, t[:, None])[:, 0].cpu().numpy()


# ---------------------------------------------------------------------------- files
def save_model(path: Path, model: MelodyRNN, card: dict | None = None, dtype: torch.dtype = torch.float16) -> None:
    """Weights (fp16 by default: half the size, no measurable loss for sampling) + config + card."""
    import io

    from livegen.atomic import atomic_write

    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).clone()
             for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "version": FORMAT_VERSION, "config": asdict(model.config),
            "state_dict": state, "card": card or {}}
    buf = io.BytesIO()
    torch.save(blob, buf)
    with atomic_write(Path(path)) as f:
        f.write(buf.getvalue())


def load_model(path: Path | str, device: torch.device | str | None = "cpu") -> tuple[MelodyRNN, dict]:
    """A model file -> (model in eval mode, its card). Raises MelodyModelError with one line."""
    path = Path(path)
    if not path.exists():
        raise MelodyModelError(f"{path}: melody model file not found")
    try:
        blob = load_weights(path)
    except WeightsFileError as e:
        raise MelodyModelError(f"{path}: not a readable melody model: {e}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise MelodyModelError(f"{path}: not a livegen melody RNN file (format {blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r})")
    if blob.get("version") != FORMAT_VERSION:
        raise MelodyModelError(f"{path}: melody model format version {blob.get('version')}, this livegen reads {FORMAT_VERSION}")
    try:
        config = MelodyRNNConfig(**blob["config"])
    except (TypeError, KeyError) as exc:
        raise MelodyModelError(f"{path}: bad model config ({exc})") from None
    if (config.vocab, config.input_vocab, config.cond_dim) != (VOCAB, INPUT_VOCAB, COND_DIM):
        raise MelodyModelError(
            f"{path}: made for a different encoding (vocab {config.vocab}, conditioning {config.cond_dim}; "
            f"this livegen uses {VOCAB}, {COND_DIM})")
    model = MelodyRNN(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob.get("state_dict", {}).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise MelodyModelError(f"{path}: weights do not match the model's shape: "
                               f"{' '.join(s.strip() for s in first[:3])[:200]}") from None
    if device is not None:
        model = model.to(device)
    return model.eval(), dict(blob.get("card") or {})
