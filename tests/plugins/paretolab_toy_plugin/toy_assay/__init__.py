"""A toy paretolab oracle plug-in: a template for packaging your own oracle.

Installed, it registers ``ToyAssay`` under the entry-point group ``paretolab.oracles`` as
``toy_assay`` (see ``pyproject.toml``); a campaign names it ``oracle: {name: toy_assay}``.
"""

from toy_assay.oracle import ToyAssay

__all__ = ["ToyAssay"]
