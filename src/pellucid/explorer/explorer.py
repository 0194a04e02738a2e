"""The :class:`Explorer`: models, a dataset and what its examples are, browsed and explained in a web app."""
from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..core.guard import ModelGuard, model_device
from .features import Examples, ImageFeature, TextFeature
from .methods import Context, MethodSpec, catalogue


class Explorer:
    """Interactive explorer of one or more classifiers on one dataset (the successor of Captum Insights).

    Args:
        models: a classifier ``nn.Module`` (logits ``(N, K)``) or a mapping ``{name: model}`` of models that take the
            same inputs (compare two models side by side).
        dataset: a sequence of ``(input, label)`` pairs, or a pair of tensors ``(inputs, labels)``
            (see :mod:`pellucid.explorer.features`).
        classes: class names, index = label (default ``"0"``, ``"1"``, ...).
        features: :class:`ImageFeature` (default; also ``"image"``) or :class:`TextFeature` (token ids attributed at
            an embedding layer); a one-element list of either is accepted, as Captum Insights takes them.
        name: the dataset's name in the app. input_key: for mapping inputs, the positional entry (default: first).

    The app computes through :mod:`pellucid.attr` and :mod:`pellucid.metrics` and draws through
    :mod:`pellucid.viz`. Models are used as they are (put into eval mode during a computation and restored).
    ``serve()`` starts the web app in a background thread and returns its URL; ``stop()`` stops it.
    """

    def __init__(self, models: nn.Module | Mapping[str, nn.Module], dataset: Any, classes: Sequence[str] | None = None,
                 features: Any = None, name: str = "data", input_key: str | None = None):
        if isinstance(models, nn.Module):
            models = {type(models).__name__: models}
        if not isinstance(models, Mapping) or not models:
            raise TypeError(f"models must be an nn.Module or a non-empty dict {{name: nn.Module}}; received "
                            f"{type(models).__name__}")
        for k, m in models.items():
            if not isinstance(k, str) or not isinstance(m, nn.Module):
                raise TypeError(f"models must map names (str) to nn.Module; received {k!r}: {type(m).__name__}")
        if isinstance(features, (list, tuple)) and len(features) == 1:  # Captum Insights passes a list
            features = features[0]
        if features is None or features == "image":
            features = ImageFeature()
        if not isinstance(features, (ImageFeature, TextFeature)):
            raise TypeError(f"features must be ImageFeature(), TextFeature(...) or 'image'; received {features!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; received {name!r}")
        self.models = dict(models)
        self.examples = Examples(dataset, input_key)
        self.feature = features
        self.name = name
        self.lock = threading.RLock()  # one computation on the models at a time
        self._pred: dict[str, tuple[Tensor, Tensor]] = {}
        self._labels: Tensor | None = None
        self._ctx: dict[str, Context] = {}
        self._catalogue: dict[str, dict[str, MethodSpec]] = {}
        n_classes = self._n_classes()
        if classes is None:
            classes = [str(i) for i in range(n_classes)]
        classes = [str(c) for c in classes]
        if len(classes) != n_classes:
            raise ValueError(f"classes has {len(classes)} names but the model has {n_classes} outputs")
        self.classes = classes
        self._server: Any = None

    @property
    def modality(self) -> str:
        return self.feature.modality

    # ------------------------------------------------------------------ predictions and layers (cached per model)
    def predictions(self, model_name: str) -> tuple[Tensor, Tensor]:
        """``(predicted class (N,), probabilities (N, K))`` of every example (computed once)."""
        if model_name in self._pred:
            return self._pred[model_name]
        model = self.models[model_name]
        dev = model_device(model)
        n = len(self.examples)
        probs = []
        with self.lock, ModelGuard(model), torch.no_grad():
            model.eval()
            for start in range(0, n, 64):
                idx = list(range(start, min(n, start + 64)))
                try:
                    x, kw, _ = self.examples.batch(idx)
                    parts = [model(x.to(dev), **{k: v.to(dev) for k, v in kw.items()})]
                except RuntimeError:  # examples of different lengths: one at a time
                    parts = [model(e.x, **e.kwargs) for e in (self.examples[i].to(dev) for i in idx)]
                for out in parts:
                    if not isinstance(out, Tensor) or out.dim() != 2:
                        raise ValueError("the explorer needs classifiers returning logits (N, K); model "
                                         f"{model_name!r} returned {type(out).__name__} "
                                         f"{tuple(out.shape) if isinstance(out, Tensor) else ''}")
                    probs.append(torch.softmax(out.float(), -1).cpu())
        p = torch.cat(probs)
        self._pred[model_name] = (p.argmax(1), p)
        return self._pred[model_name]

    def _n_classes(self) -> int:
        """Number of outputs, from one forward of example 0 per model (all must agree)."""
        sizes = {}
        for name, model in self.models.items():
            ex = self.examples[0].to(model_device(model))
            with self.lock, ModelGuard(model), torch.no_grad():
                model.eval()
                out = model(ex.x, **ex.kwargs)
            if not isinstance(out, Tensor) or out.dim() != 2:
                raise ValueError("the explorer needs classifiers returning logits (N, K); model "
                                 f"{name!r} returned {type(out).__name__} "
                                 f"{tuple(out.shape) if isinstance(out, Tensor) else ''}")
            sizes[name] = int(out.shape[1])
        if len(set(sizes.values())) != 1:
            raise ValueError(f"the models must have the same number of classes; received {sizes}")
        return next(iter(sizes.values()))

    def labels(self) -> Tensor:
        """The label of every example ``(N,)`` (read once)."""
        if self._labels is None:
            self._labels = torch.tensor([self.examples[i].label for i in range(len(self.examples))])
        return self._labels

    def context(self, model_name: str) -> Context:
        """The layers of a model whose outputs can be drawn over the input (one forward of example 0 with hooks,
        removed after), and the default layer (the last convolution for images)."""
        if model_name in self._ctx:
            return self._ctx[model_name]
        model = self.models[model_name]
        ex = self.examples[0].to(model_device(model))
        shapes: dict[str, list] = {}
        handles = []
        emb = self.feature.module(model) if isinstance(self.feature, TextFeature) else None

        def hook(name):
            def fn(module, args, out):
                shapes.setdefault(name, []).append(tuple(out.shape) if isinstance(out, Tensor) else None)
            return fn

        with self.lock, ModelGuard(model), torch.no_grad():
            model.eval()
            try:
                for name, m in model.named_modules():
                    if name and m is not emb:
                        handles.append(m.register_forward_hook(hook(name)))
                model(ex.x, **ex.kwargs)
            finally:
                for h in handles:
                    h.remove()
        layers: dict[str, tuple[int, ...]] = {}
        for name, calls in shapes.items():
            if len(calls) != 1 or calls[0] is None:
                continue
            s = calls[0]
            if self.modality == "image" and len(s) == 4 and s[0] == 1:
                layers[name] = s[1:]
            elif self.modality == "text" and len(s) >= 2 and s[0] == 1 and s[1] == ex.x.shape[1]:
                layers[name] = s[1:]
        modules = dict(model.named_modules())
        convs = [n for n in layers if isinstance(modules[n], nn.Conv2d)]
        default = convs[-1] if convs else (list(layers)[-1] if layers else None)
        if isinstance(self.feature, TextFeature):
            d = emb(ex.x).shape[2:]
            spatial = (int(ex.x.shape[1]),) + tuple(int(v) for v in d)
        else:
            spatial = tuple(int(v) for v in ex.x.shape[1:])
        self._ctx[model_name] = Context(self.modality, layers, default, spatial)
        return self._ctx[model_name]

    def methods(self, model_name: str) -> dict[str, MethodSpec]:
        """The methods offered for a model, with their forms."""
        if model_name not in self._catalogue:
            self._catalogue[model_name] = catalogue(self.context(model_name))
        return self._catalogue[model_name]

    def references(self, n: int) -> Tensor:
        """Up to ``n`` dataset inputs (distribution baselines)."""
        return self.examples.batch(list(range(min(n, len(self.examples)))))[0]

    # ------------------------------------------------------------------ serving
    def serve(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None, *,
              others: Sequence["Explorer"] = ()) -> str:
        """Start the web app in a background thread; returns its URL (with ``?token=...`` when one is needed).

        Binds to loopback by default. On any other address a token is required: one is generated unless given,
        and every request must carry it (the URL sets a cookie). ``others``: more explorers served by the same
        app (e.g. an image and a text dataset). ``stop()`` shuts the server down.
        """
        from .serve import Server

        if self._server is not None:
            raise RuntimeError(f"this explorer is already serving at {self._server.url}; call stop() first")
        self._server = Server([self, *others], host=host, port=port, token=token)
        return self._server.start()

    @property
    def url(self) -> str | None:
        return None if self._server is None else self._server.url

    def stop(self) -> None:
        """Stop the server started by :meth:`serve` (cancels running jobs)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
