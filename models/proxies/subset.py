"""Which measured points a GP is fitted on once a campaign outgrows exact GPs.

An exact GP costs O(n^3) to fit and O(n^2) memory: 2,000 points take seconds, 20,000
minutes, 100,000 do not fit in memory. Past ``max_points`` the proxy is the same exact GP
on a bounded subset of the data (subset of data, Rasmussen & Williams 2006, sec. 8.3.1;
Chalupka, Williams & Murray 2013, "A framework for evaluating approximation methods for
Gaussian process regression", JMLR 14, found it a strong baseline at equal time). The
subset is chosen for what the campaign asks of the proxy: half of it is the most
important points in order (for the objectives' proxy: the best measured ones, by Pareto
rank, where the next picks are judged), the rest a uniform sample of the others, so the
model still knows the whole measured space. Cost per round then stays bounded whatever
the campaign's size; only choosing the subset (Pareto ranks) grows with it.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["bounded_subset"]


def bounded_subset(importance: Tensor, max_points: int, rng: torch.Generator) -> Tensor:
    """Sorted indices of at most ``max_points`` rows of ``importance`` (``n``, higher: more
    important; ties broken at random): the ``max_points // 2`` most important, then a
    uniform sample of all other rows, drawn with ``rng``. All rows when ``n <= max_points``."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    n = len(importance)
    if n <= max_points:
        return torch.arange(n)
    shuffled = torch.randperm(n, generator=rng)
    order = shuffled[torch.argsort(-importance.cpu()[shuffled], stable=True)]
    first, others = order[: max_points // 2], order[max_points // 2 :]
    drawn = others[torch.randperm(len(others), generator=rng)[: max_points - len(first)]]
    return torch.cat([first, drawn]).sort().values
