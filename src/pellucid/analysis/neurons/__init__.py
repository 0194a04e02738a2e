"""Neuron analysis (NeuroX-style probing, with causation by attribution), on pellucid's engine.

The NAACL 2021 tutorial on fine-grained interpretation (Sajjad, Durrani & Dalvi, arXiv:2105.08039) pairs *neuron
probing* (which neurons encode a property?) with *causation* (do they matter to the model?). This package does both:

* extraction: :func:`extract_activations` (any layers of any model, per example or per token, streamed to disk) and
  :func:`extract_word_activations` (Hugging Face models, sub-word tokens aggregated per word: first/last/mean);
* probes: :func:`train_probe` (logistic/linear regression with an elastic net; Dalvi et al., 2019),
  :class:`GaussianProbe` and :func:`gaussian_ranking` (Torroba Hennigen et al., 2020);
* rankings: :func:`top_neurons`, :func:`bottom_neurons`, :func:`neuron_ordering` (probe weight mass),
  :func:`probeless_ranking` (class-mean differences; Antverg & Belinkov, 2022), :func:`concept_ranking` (average
  precision / IoU for a binary concept), :func:`correlation_clusters` and :func:`independent_neurons` (redundancy;
  Dalvi et al., 2020);
* evaluation: :class:`ablate_neurons` (context manager in the model), :func:`ablate_columns` and
  :func:`probe_ablation` (top vs random vs bottom), retraining with ``train_probe(..., neurons=top)``,
  :func:`control_labels` and :func:`selectivity` (Hewitt & Liang, 2019), :func:`top_words`;
* causation: :func:`neuron_attributions` (neuron conductance / neuron IG to the inputs) and :func:`ablation_effect`.

``python -m pellucid study neurons`` runs the whole pipeline on a model with planted neurons and on MiniLM.
"""
from .ablation import ablate_columns, ablate_neurons, probe_ablation
from .activations import Activations, extract_activations
from .causation import ablation_effect, neuron_attributions
from .clustering import correlation_clusters, correlation_matrix, independent_neurons
from .concept import ap_scores, concept_ranking, iou_scores
from .control import control_labels, selectivity
from .corpus import top_words
from .gaussian import GaussianProbe, gaussian_ranking
from .probe import LinearProbe, encode_labels, probe_accuracy, probe_mse, train_probe
from .probeless import class_means, probeless_ranking, probeless_scores
from .ranking import bottom_neurons, entry_points, neuron_ordering, random_neurons, top_neurons
from .words import aggregate_words, extract_word_activations

__all__ = [
    "Activations", "GaussianProbe", "LinearProbe", "ablate_columns", "ablate_neurons", "ablation_effect",
    "aggregate_words", "ap_scores", "bottom_neurons", "class_means", "concept_ranking", "control_labels",
    "correlation_clusters", "correlation_matrix", "encode_labels", "entry_points", "extract_activations",
    "extract_word_activations", "gaussian_ranking", "independent_neurons", "iou_scores", "neuron_attributions",
    "neuron_ordering", "probe_ablation", "probe_accuracy", "probe_mse", "probeless_ranking", "probeless_scores",
    "random_neurons", "selectivity", "top_neurons", "top_words", "train_probe",
]
