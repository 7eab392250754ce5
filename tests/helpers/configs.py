"""Small, fast campaign configs for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def small_config(**overrides: Any) -> dict[str, Any]:
    """A campaign that runs a round in about a second."""
    config: dict[str, Any] = {
        "name": "test_campaign",
        "seed": 3,
        "space": {"kind": "grid", "dims": 2, "levels": 16},
        "oracle": {"name": "branin_currin"},
        "initial_design": 6,
        "rounds": 3,
        "batch_size": 3,
        "acquisition": {"kind": "qlognehvi", "mc_samples": 32},
        "generators": [{"kind": "random", "pool_size": 64}, {"kind": "genetic", "pool_size": 64}],
        "oracle_retries": 1,
    }
    config.update(overrides)
    return config


def write_config(path: Path, **overrides: Any) -> Path:
    """Write ``small_config(**overrides)`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(small_config(**overrides)))
    return path
