"""TCAV (Kim et al. 2018, arXiv:1711.11279) on pellucid's layer methods."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from ..attr.layer import LayerActivation, LayerGradientXActivation
from .classifier import Classifier, DefaultClassifier
from .concept import CAV, Concept, ConceptInterpreter, concepts_to_str


def _flat(t: Any) -> Tensor:
    parts = t if isinstance(t, (tuple, list)) else (t,)
    return torch.cat([p.reshape(p.shape[0], -1).float() for p in parts], dim=1)


class TCAV(ConceptInterpreter):
    """Concept sensitivity of a model's predictions at ``layers`` (module names, or one name).

    For each experimental set (a list of two or more :class:`Concept`, e.g. ``[stripes, random]``) and layer, a
    ``classifier`` (default :class:`DefaultClassifier`; its keyword arguments may be passed here) is trained on
    the layer's flattened activations of the concepts' examples; its weight rows are the CAVs ``v_c``.
    :meth:`interpret` computes, for every input ``x``, the directional derivative ``S_c(x) = grad_h f_t(x) . v_c``
    of the target score at the layer (``layer_attr_method``, default the layer gradient; a pellucid layer method
    instance may be given) and returns per set and layer::

        {"sign_count": mean_x [S_c(x) > 0], "magnitude": mean_x S_c(x)}    # one value per concept of the set

    ``sign_count`` is the paper's TCAV score; ``magnitude`` is the mean directional derivative (what Captum 0.9
    computes). CAVs are cached per (set, layer) in memory, and on disk under ``save_path/model_id`` when
    ``save_path`` is given (Captum writes to ``./cav/`` by default; pellucid writes nothing unless asked).
    """

    def __init__(self, model: nn.Module, layers: str | Sequence[str], model_id: str = "default_model_id",
                 classifier: Classifier | None = None, layer_attr_method: Any = None,
                 attribute_to_layer_input: bool = False, save_path: str | None = None,
                 **classifier_kwargs: Any) -> None:
        super().__init__(model)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
        names = [layers] if isinstance(layers, str) else list(layers)
        modules = dict(model.named_modules())
        for name in names:
            if not isinstance(name, str) or name not in modules:
                raise ValueError(f"layers must name submodules of the model; {name!r} is not one")
        if not names:
            raise ValueError("layers must name at least one submodule")
        if not model_id:
            raise ValueError("model_id must be a non-empty string")
        self.layers = names
        self._modules = [modules[n] for n in names]
        self.model_id = model_id
        self.classifier = classifier if classifier is not None else DefaultClassifier(**classifier_kwargs)
        self.layer_attr_method = layer_attr_method
        self.attribute_to_layer_input = attribute_to_layer_input
        self.save_path = save_path
        self.cavs: dict[str, dict[str, CAV]] = defaultdict(dict)
        self._activations: dict[tuple[Concept, str], Tensor] = {}

    # --- activations -----------------------------------------------------------------------------------------
    def generate_activation(self, layers: str | Sequence[str], concept: Concept) -> None:
        """Compute (and cache) the flattened activations ``(n_examples, n_features)`` of ``concept`` at ``layers``."""
        names = [layers] if isinstance(layers, str) else list(layers)
        todo = [n for n in names if (concept, n) not in self._activations]
        if not todo:
            return
        if concept.data_iter is None:
            raise ValueError(f"concept {concept!r} has no data_iter to compute activations from")
        modules = [self._modules[self.layers.index(n)] if n in self.layers else dict(self.model.named_modules())[n]
                   for n in todo]
        act = LayerActivation(self.model, modules if len(modules) > 1 else modules[0])
        chunks: list[list[Tensor]] = [[] for _ in todo]
        for batch in concept.data_iter:
            inputs = tuple(batch) if isinstance(batch, (tuple, list)) else batch
            out = act.attribute(inputs, attribute_to_layer_input=self.attribute_to_layer_input)
            for i, o in enumerate(out if len(modules) > 1 else [out]):
                chunks[i].append(_flat(o).detach())
        for name, parts in zip(todo, chunks):
            if not parts:
                raise ValueError(f"concept {concept!r}: data_iter yielded no batches")
            self._activations[(concept, name)] = torch.cat(parts)

    def generate_activations(self, concept_layers: dict[Concept, Sequence[str]]) -> None:
        for concept, layers in concept_layers.items():
            self.generate_activation(layers, concept)

    # --- CAVs --------------------------------------------------------------------------------------------------
    def load_cavs(self, concepts: Sequence[Concept]) -> tuple[list[str], dict[Concept, list[str]]]:
        """Load saved CAVs of ``concepts`` (when ``save_path`` is set); returns the layers still to train and the
        concept layers whose activations they need."""
        key = concepts_to_str(concepts)
        missing = []
        for layer in self.layers:
            if layer in self.cavs[key]:
                continue
            cav = CAV.load(self.save_path, self.model_id, concepts, layer) if self.save_path else None
            if cav is None:
                missing.append(layer)
            else:
                self.cavs[key][layer] = cav
        return missing, {c: missing for c in concepts}

    def compute_cavs(self, experimental_sets: Sequence[Sequence[Concept]], force_train: bool = False,
                     processes: int | None = None) -> dict[str, dict[str, CAV]]:
        """Train (or load) the CAVs of every set at every layer; ``processes`` is accepted for Captum
        compatibility (training is in-process: each fit takes milliseconds)."""
        _check_sets(experimental_sets)
        for concepts in experimental_sets:
            key = concepts_to_str(concepts)
            if force_train:
                self.cavs[key] = {}
                layers = list(self.layers)
            else:
                layers, _ = self.load_cavs(concepts)
            for layer in layers:
                for c in concepts:
                    self.generate_activation(layer, c)
                xs = [self._activations[(c, layer)] for c in concepts]
                labels = torch.cat([torch.full((x.shape[0],), c.id, dtype=torch.long) for x, c in zip(xs, concepts)])
                loader = DataLoader(TensorDataset(torch.cat(xs), labels), batch_size=4096)
                stats = self.classifier.train_and_eval(loader) or {}
                stats = {**stats, "weights": self.classifier.weights().detach().clone(),
                         "classes": list(self.classifier.classes())}
                cav = CAV(concepts, layer, stats, self.save_path, self.model_id)
                if self.save_path:
                    cav.save()
                self.cavs[key][layer] = cav
        return self.cavs

    # --- scores ------------------------------------------------------------------------------------------------
    def _layer_gradients(self, inputs: Any, target: Any, additional_forward_args: Any,
                         **kwargs: Any) -> list[Tensor]:
        if self.layer_attr_method is None:
            method = LayerGradientXActivation(self.model, self._modules if len(self._modules) > 1 else self._modules[0],
                                              multiply_by_inputs=False)
            out = method.attribute(inputs, target=target, additional_forward_args=additional_forward_args,
                                   attribute_to_layer_input=self.attribute_to_layer_input, **kwargs)
            return [_flat(o) for o in (out if len(self._modules) > 1 else [out])]
        results = []
        for module in self._modules:
            self.layer_attr_method.layer = module
            out = self.layer_attr_method.attribute(inputs, target=target, additional_forward_args=additional_forward_args,
                                                   attribute_to_layer_input=self.attribute_to_layer_input, **kwargs)
            results.append(_flat(out))
        return results

    def interpret(self, inputs: Tensor | tuple[Tensor, ...], experimental_sets: Sequence[Sequence[Concept]],
                  target: Any = None, additional_forward_args: Any = None, processes: int | None = None,
                  **kwargs: Any) -> dict[str, dict[str, dict[str, Tensor]]]:
        """``{set_key: {layer: {"sign_count": (n_concepts,), "magnitude": (n_concepts,)}}}`` with values in the
        order of each set's concepts; ``set_key`` is :func:`concepts_to_str` of the set."""
        self.compute_cavs(experimental_sets, processes=processes)
        grads = self._layer_gradients(inputs, target, additional_forward_args, **kwargs)
        scores: dict[str, dict[str, dict[str, Tensor]]] = defaultdict(dict)
        for layer, grad in zip(self.layers, grads):
            for concepts in experimental_sets:
                key = concepts_to_str(concepts)
                stats = self.cavs[key][layer].stats
                weights = stats["weights"].to(grad)
                order = [stats["classes"].index(c.id) for c in concepts]
                directional = grad @ weights[order].T  # (n_inputs, n_concepts)
                scores[key][layer] = {"sign_count": (directional > 0).float().mean(dim=0),
                                      "magnitude": directional.mean(dim=0)}
        return scores


def _check_sets(experimental_sets: Any) -> None:
    if not isinstance(experimental_sets, (list, tuple)) or not experimental_sets:
        raise TypeError("experimental_sets must be a non-empty list of lists of Concept")
    for s in experimental_sets:
        if not isinstance(s, (list, tuple)) or len(s) < 2 or not all(isinstance(c, Concept) for c in s):
            raise TypeError(f"each experimental set must be a list of at least two Concept objects; received {s!r}")
        if len({c.id for c in s}) != len(s):
            raise ValueError(f"the concepts of an experimental set need distinct ids; received {s!r}")


def tcav_significance(concept_scores: Sequence[float] | Tensor, random_scores: Sequence[float] | Tensor,
                      alpha: float = 0.05, n_tests: int = 1, equal_var: bool = True) -> dict[str, Any]:
    """Two-sided t-test of TCAV scores of a concept (one per CAV trained against a different random set)
    against scores of random-vs-random CAVs (Kim et al. 2018, section 3.3), Bonferroni-corrected for
    ``n_tests``. Returns ``{"t_statistic", "p_value", "significant", "concept_mean", "random_mean"}``.
    Needs scipy (``pip install pellucid[data]``)."""
    a = torch.as_tensor(concept_scores, dtype=torch.float64).flatten()
    b = torch.as_tensor(random_scores, dtype=torch.float64).flatten()
    if a.numel() < 2 or b.numel() < 2:
        raise ValueError("concept_scores and random_scores need at least two runs each for a t-test")
    try:
        from scipy import stats
    except ImportError as e:  # pragma: no cover
        raise ImportError("tcav_significance needs scipy: pip install 'pellucid[data]'") from e
    t, p = stats.ttest_ind(a.numpy(), b.numpy(), equal_var=equal_var)
    p = float(p) if math.isfinite(float(p)) else 1.0
    return {"t_statistic": float(t), "p_value": p, "significant": p < alpha / n_tests,
            "concept_mean": float(a.mean()), "random_mean": float(b.mean())}
