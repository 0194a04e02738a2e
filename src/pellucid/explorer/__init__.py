"""The explorer: an interactive web app to browse a dataset, explain a model's predictions with any method of
:mod:`pellucid.attr`, score the explanations with :mod:`pellucid.metrics` and compare methods or models side by
side (the successor of Captum Insights). Needs the ``explorer`` extra (FastAPI, uvicorn, matplotlib).

>>> from pellucid.explorer import Explorer
>>> url = Explorer({"cnn": model}, dataset, classes=["square", "plus"]).serve()   # doctest: +SKIP

``python -m pellucid explore`` serves the built-in demo (a CNN on procedural shapes, and a MiniLM sentence
classifier when the ``text`` extra is installed). See ``docs/explorer.md``.
"""
from .explorer import Explorer
from .features import ImageFeature, TextFeature

__all__ = ["Explorer", "ImageFeature", "TextFeature", "create_app"]


def create_app(*args, **kwargs):
    """The FastAPI app of one or more explorers (:func:`pellucid.explorer.server.create_app`)."""
    from .server import create_app as make

    return make(*args, **kwargs)
