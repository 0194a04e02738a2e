"""Reusable diagnostics built on :mod:`pellucid.attr` and :mod:`pellucid.metrics`.

One module per tool: ``padding`` and ``blind_spots`` (padding audit, arXiv:2010.02178), ``agnostic``
(input-agnostic saliency and backdoor scan, arXiv:2303.17836), ``saturation`` (split IG curves,
arXiv:2010.12697), ``sanity`` (randomisation and smoothing checks, arXiv:2106.07475), ``neurons`` (probing and
neuron causation, arXiv:2105.08039). :mod:`pellucid.analysis.studies` holds the seed studies run by
``python -m pellucid study NAME``.
"""
