"""``python -m pellucid ...``: see :mod:`pellucid.cli`."""
import sys

from .cli import main

sys.exit(main())
