"""The melody RNN: an LSTM that reads the previous 16th-note token and where it is (bar
position, key, metre) and predicts the next token.

Training runs ``nn.LSTM`` over whole sequences (fast); live generation runs the same weights
one step at a time through ``nn.LSTMCell`` (0.1-0.2 ms a step on one CPU thread, where
``nn.LSTM`` stepped one token at a time is several times slower and erratic). The cells share
the LSTM's parameters, so there is one set of weights and nothing to keep in sync.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livegen.music.encoding import COND_DIM, INPUT_VOCAB, MAX_BAR_STEPS, MIN_PITCH, NOTE_BASE, VOCAB

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

    State is a tuple of per-layer (h, c) tensors for a batch of voices; ``step`` never changes
    a state it was given, so callers can keep old states and re-sample from them ("mutate").
    """

    def __init__(self, model: MelodyRNN, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        model = model.to(self.device).eval()
        self.model = model
        cfg = model.config
        self.cells = []
        for i in range(cfg.layers):
            cell = nn.LSTMCell(cfg.embed + cfg.cond_dim if i == 0 else cfg.hidden, cfg.hidden).to(self.device)
            cell.weight_ih = getattr(model.lstm, f"weight_ih_l{i}")
            cell.weight_hh = getattr(model.lstm, f"weight_hh_l{i}")
            cell.bias_ih = getattr(model.lstm, f"bias_ih_l{i}")
            cell.bias_hh = getattr(model.lstm, f"bias_hh_l{i}")
            self.cells.append(cell.eval())

    def start(self, batch: int = 1):
        z = torch.zeros(batch, self.model.config.hidden, device=self.device)
        return tuple((z, z) for _ in self.cells)

    @torch.inference_mode()
    def step(self, state, prev: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray, tuple]:
        """prev (B,) tokens, cond (B, COND_DIM) -> (B, VOCAB) natural-log probabilities, new state."""
        tok = torch.as_tensor(np.asarray(prev, np.int64), device=self.device)
        c = torch.as_tensor(np.asarray(cond, np.float32), device=self.device)
        x = torch.cat([self.model.embed(tok), c], dim=-1)
        new = []
        for cell, (h, cc) in zip(self.cells, state):
            h, cc = cell(x, (h, cc))
            new.append((h, cc))
            x = h
        logp = torch.log_softmax(self.model.logits(x, c), dim=-1)
        return logp.double().cpu().numpy(), tuple(new)

    @torch.inference_mode()
    def batch_states(self, states: list) -> tuple:
        """Stack single-voice states into one batched state."""
        return tuple((torch.cat([s[i][0] for s in states]), torch.cat([s[i][1] for s in states]))
                     for i in range(len(self.cells)))

    @staticmethod
    def voice_state(state, index: int) -> tuple:
        return tuple((h[index:index + 1], c[index:index + 1]) for h, c in state)


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
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or not a torch file at all
        import zipfile

        if not zipfile.is_zipfile(path):
            detail = "not a torch zip archive"
        elif "Weights only load failed" in str(exc):
            detail = "holds objects other than tensors and plain data, refused (weights_only)"
        else:
            detail = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise MelodyModelError(f"{path}: not a readable melody model (truncated or corrupt?): {detail}") from None
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
