"""How hard the stress tests push: a quick size for ``make test``, the full one to soak.

Every guarantee a stress test proves is exercised at both sizes (eight racing
processes, every kind of kill point, faults at every call position class); the full
sizes (``TTFLOW_SOAK=1``, ``make soak``) only repeat them more often, so a rare
interleaving gets more chances to show. The quick sizes keep ``make test`` in minutes
on a 2-core machine.
"""

from __future__ import annotations

import os

#: ``TTFLOW_SOAK=1`` runs every stress test at its full size.
SOAK = os.environ.get("TTFLOW_SOAK") == "1"


def scale(quick: int, full: int) -> int:
    """``full`` when soaking, else ``quick``."""
    return full if SOAK else quick
