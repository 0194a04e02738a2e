"""The result of an LLM attribution (Captum's ``LLMAttributionResult``), with its plots."""
from __future__ import annotations

import warnings
from textwrap import shorten
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor


def _tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a tensor or an array of numbers; received {type(value).__name__}") from None


class LLMAttributionResult:
    """Attributions of a generated (or given) target to the input's features.

    Attributes:
        input_tokens: the input's feature labels (``n`` of them; tokens, or template segments).
        output_tokens: the target's tokens (``T``), readable (no byte-level markers).
        seq_attr: ``(n,)``, attribution of the whole target sequence's log-probability (or probability).
        token_attr: ``(T, n)``, attribution of each target token's log-probability (None if not computed).
        output_probs: ``(T,)``, each target token's probability after the unperturbed input (None if unknown).
        inp: the interpretable input explained (optional).
        output_ids: the target's token ids ``(T,)`` (set by the attribution classes; None otherwise).

    Keyword-only constructor, as Captum's. ``seq_attr_dict`` maps each input token to its score.
    """

    def __init__(self, *, input_tokens: Sequence[str], output_tokens: Sequence[str], seq_attr: Any,
                 token_attr: Any = None, output_probs: Any = None, inp: Any = None) -> None:
        self.input_tokens = list(input_tokens)
        self.output_tokens = list(output_tokens)
        self.seq_attr = seq_attr
        self.token_attr = token_attr
        self.output_probs = output_probs
        self.inp = inp
        self.output_ids: Tensor | None = None

    @property
    def seq_attr(self) -> Tensor:
        return self._seq_attr

    @seq_attr.setter
    def seq_attr(self, value: Any) -> None:
        t = _tensor(value, "seq_attr")
        if t.dim() != 1 or t.shape[0] != len(self.input_tokens):
            raise ValueError(f"seq_attr must have shape ({len(self.input_tokens)},) (one value per input token); "
                             f"received {tuple(t.shape)}")
        self._seq_attr = t

    @property
    def token_attr(self) -> Tensor | None:
        return self._token_attr

    @token_attr.setter
    def token_attr(self, value: Any) -> None:
        if value is None:
            self._token_attr = None
            return
        t = _tensor(value, "token_attr")
        want = (len(self.output_tokens), len(self.input_tokens))
        if tuple(t.shape) != want:
            raise ValueError(f"token_attr must have shape {want} (output tokens x input tokens); received {tuple(t.shape)}")
        self._token_attr = t

    @property
    def output_probs(self) -> Tensor | None:
        return self._output_probs

    @output_probs.setter
    def output_probs(self, value: Any) -> None:
        if value is None:
            self._output_probs = None
            return
        t = _tensor(value, "output_probs")
        if t.dim() != 1 or t.shape[0] != len(self.output_tokens):
            raise ValueError(f"output_probs must have shape ({len(self.output_tokens)},); received {tuple(t.shape)}")
        self._output_probs = t

    @property
    def seq_attr_dict(self) -> dict[str, float]:
        """``{input token: sequence attribution}`` (a repeated token keeps its last value, as Captum)."""
        return {k: v for v, k in zip(self.seq_attr.cpu().tolist(), self.input_tokens)}

    def __repr__(self) -> str:
        return (f"LLMAttributionResult(input_tokens={self.input_tokens!r}, output_tokens={self.output_tokens!r}, "
                f"seq_attr={self.seq_attr!r}, token_attr={'None' if self.token_attr is None else tuple(self.token_attr.shape)})")

    # -- plots (matplotlib, imported when used) ------------------------------------------------------------
    @staticmethod
    def _labels(tokens: Sequence[str]) -> list[str]:
        return [shorten(repr(t)[1:-1], width=50, placeholder="...") for t in tokens]

    @staticmethod
    def _cmap() -> Any:
        import matplotlib.colors as mcolors

        return mcolors.LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"])

    def plot_token_attr(self, show: bool = False, ax: Any = None) -> Any:
        """Heat map of ``token_attr`` (rows: output tokens, columns: input tokens), red negative, green positive,
        centred at 0, values written in the cells. Returns ``(fig, ax)``, or None with ``show=True``."""
        if self.token_attr is None:
            raise ValueError("token_attr is None (no per-token attribution was computed); use plot_seq_attr")
        import matplotlib.pyplot as plt

        data = self.token_attr.detach().cpu().double().numpy()
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(data.shape[1] * 1.3, 6.4), max(data.shape[0] / 2.5, 4.8)))
        else:
            fig = ax.figure
        vmax = float(np.abs(data).max()) or 1.0
        im = ax.imshow(data, vmin=-vmax, vmax=vmax, cmap=self._cmap(), aspect="auto")
        cbar = fig.colorbar(im, ax=ax)
        cbar.ax.set_ylabel("Token Attribution", rotation=-90, va="bottom")
        ax.set_xticks(np.arange(data.shape[1]), labels=self._labels(self.input_tokens))
        ax.set_yticks(np.arange(data.shape[0]), labels=[repr(t)[1:-1] for t in self.output_tokens])
        ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
        plt.setp(ax.get_xticklabels(), rotation=-30, ha="right", rotation_mode="anchor")
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                v = data[i, j]
                ax.text(j, i, f"{v:.4f}", ha="center", va="center",
                        color="black" if 0.2 < im.norm(v) < 0.8 else "white")
        if show:
            plt.show()
            return None
        return fig, ax

    def plot_seq_attr(self, show: bool = False, ax: Any = None) -> Any:
        """Bar chart of ``seq_attr`` per input token (blue positive, red negative). Returns ``(fig, ax)``, or None
        with ``show=True``."""
        import matplotlib.pyplot as plt

        data = self.seq_attr.detach().cpu().double().numpy()
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(data.shape[0] / 2, 6.4), max(data.shape[0] / 4, 4.8)))
        else:
            fig = ax.figure
        x = np.arange(data.shape[0])
        ax.set_xticks(x, labels=self._labels(self.input_tokens))
        ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
        plt.setp(ax.get_xticklabels(), rotation=-30, ha="right", rotation_mode="anchor")
        ax.bar(x, np.maximum(data, 0), align="center", color="#4772b3")
        ax.bar(x, np.minimum(data, 0), align="center", color="#d0365b")
        ax.set_ylabel("Sequence Attribution", rotation=90, va="bottom")
        if show:
            plt.show()
            return None
        return fig, ax


def pretty_tokens(ids: Tensor, tokenizer: Any) -> list[str]:
    """Readable strings for token ids: the text each token covers in the decoded string (found by re-encoding it
    with offsets), so byte-level markers such as ``Ġ`` and ``##`` disappear; falls back to decoding each id alone
    when re-encoding does not give the same ids back."""
    ids_list = [int(i) for i in ids.reshape(-1).tolist()]
    text = tokenizer.decode(ids_list)
    try:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        again, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    except (TypeError, ValueError, NotImplementedError, KeyError):
        again, offsets = [], []
    if again == ids_list and len(offsets) == len(ids_list):
        out = []
        for i, (start, end) in enumerate(offsets):
            if start == end:  # a token without its own span: up to the next token's start
                end = offsets[i + 1][0] if i + 1 < len(offsets) else len(text)
            out.append(text[start:end].replace("\n", "\\n").strip())
        return out
    if again:
        warnings.warn("re-encoding the decoded target gives different ids; output tokens are decoded one by one",
                      stacklevel=2)
    return [tokenizer.decode([i]).replace("\n", "\\n").strip() for i in ids_list]
