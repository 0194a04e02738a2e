"""Built-in data and models for demos, tests and tutorials; nothing is downloaded.

* :func:`make_shapes`: images whose label is one small object at a random place, with ground-truth masks and an
  optional backdoor trigger; :func:`make_sequences`: token sequences with one deciding key token.
* :func:`load_digits`, :func:`load_diabetes`: scikit-learn's bundled datasets as tensors (``data`` extra).
* :class:`SimpleCNN`, :class:`MLP`, :class:`TinyTransformer` and :func:`train_quick`; :func:`shapes_cnn`,
  :func:`digits_mlp`, :func:`sequence_transformer` return them trained (seeded, seconds on a CPU).
* :mod:`pellucid.data.minilm`: the pretrained all-MiniLM-L6-v2 sentence encoder (``text`` extra), offline.
"""
from .models import MLP, SimpleCNN, TinyTransformer
from .quick import Trained, digits_mlp, sequence_transformer, shapes_cnn
from .sequences import SequenceData, make_sequences
from .shapes import SHAPE_CLASSES, ShapesData, add_trigger, make_shapes, trigger_patch
from .tabular import Tabular, load_diabetes, load_digits
from .train import TrainResult, evaluate, train_quick

__all__ = [
    "MLP", "SHAPE_CLASSES", "SequenceData", "ShapesData", "SimpleCNN", "Tabular", "TinyTransformer", "TrainResult",
    "Trained", "add_trigger", "digits_mlp", "evaluate", "load_diabetes", "load_digits", "make_sequences",
    "make_shapes", "sequence_transformer", "shapes_cnn", "train_quick", "trigger_patch",
]
