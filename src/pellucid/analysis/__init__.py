"""Reusable diagnostics built on :mod:`pellucid.attr` and :mod:`pellucid.metrics`.

One module per tool (``padding``, ``agnostic``, ``neurons``, ...); :mod:`pellucid.analysis.studies` holds the seed
studies run by ``python -m pellucid study NAME``.
"""
