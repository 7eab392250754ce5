"""External results: a campaign whose measurements come from outside paretolab.

Nothing is measured by paretolab itself. Each selected batch is a request (written as
files, like a lab's, so the candidate ids are at hand) and results come back through the
Python API's ``Campaign.tell``, ``paretolab submit`` or the inbox folder. A scheduled or
command-line run stops at "waiting for results" and goes on once they are recorded.
"""

from __future__ import annotations

from paretolab.oracles.lab import LabOracle

__all__ = ["ExternalOracle"]


class ExternalOracle(LabOracle):
    """Results told from outside: from Python (``Campaign.tell``), ``paretolab submit`` or
    a results file dropped into the inbox. ``objectives``: one ``{name, direction, unit}``
    per measured quantity."""
