"""paretolab from Python: multi-objective discovery campaigns you ask and tell.

    import paretolab as pl

    space = pl.SequenceSpace(alphabet="ACDEFGHIKLMNPQRSTVWY", length=32)
    campaign = pl.Campaign.create(
        "runs/my-campaign", space=space,
        objectives=[pl.Objective("expression", "max"), pl.Objective("stability", "max")],
        generator="mogfn", batch_size=16, seed=0,
    )
    campaign.tell(measured_df)      # what you have measured already (optional)
    batch = campaign.ask()          # candidate_id, candidate, generator, acquisition, predictions
    campaign.tell(results_df)       # the batch's results, all or some of them
    campaign.pareto_front(); campaign.history(); campaign.hypervolume()

A campaign lives in its directory: ``pl.Campaign.open(directory)`` continues it from any
process, and ``paretolab status``, ``paretolab submit`` and ``paretolab run DIR`` work on
it too. The names below are the public API; everything else is internal. A plug-in
oracle subclasses :class:`Oracle` (see the README's "Plug-in oracles"):

    class MyAssay(pl.Oracle):
        objectives = (pl.Objective("yield", "max", unit="%"),)
        def _evaluate(self, xs): return pl.OracleResult(values, reasons)

The implementation lives in the subpackages ``paretolab.flows`` (orchestration, the
campaign engine, the CLI), ``paretolab.models`` (proxies, acquisition, generators),
``paretolab.oracles`` and ``paretolab.data`` (spaces, objectives, the store).
"""

import importlib as _importlib
import importlib.metadata as _metadata
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:  # what the names below are, for type checkers and IDEs
    from paretolab.data.objectives import Objective
    from paretolab.data.results import ResultsError
    from paretolab.data.spaces import SearchSpace
    from paretolab.data.store import CampaignLockedError, StoreError
    from paretolab.flows.ask_tell import BudgetSpentError, Campaign, CampaignExistsError, Told
    from paretolab.flows.campaign_dir import CampaignMismatchError
    from paretolab.flows.config import ConfigError
    from paretolab.flows.config import GridSpaceConfig as GridSpace
    from paretolab.flows.config import MoleculeSpaceConfig as MoleculeSpace
    from paretolab.flows.config import SequenceSpaceConfig as SequenceSpace
    from paretolab.flows.engine import NotEnoughDataError
    from paretolab.flows.shared_models import LoadedProxy, SharedModelError, load_generator, load_proxy
    from paretolab.oracles.base import Oracle, OracleError, OracleResult
    from paretolab.oracles.lab import LabOracle

_PUBLIC = {
    "BudgetSpentError": ("paretolab.flows.ask_tell", "BudgetSpentError"),
    "Campaign": ("paretolab.flows.ask_tell", "Campaign"),
    "CampaignExistsError": ("paretolab.flows.ask_tell", "CampaignExistsError"),
    "CampaignLockedError": ("paretolab.data.store", "CampaignLockedError"),
    "CampaignMismatchError": ("paretolab.flows.campaign_dir", "CampaignMismatchError"),
    "ConfigError": ("paretolab.flows.config", "ConfigError"),
    "GridSpace": ("paretolab.flows.config", "GridSpaceConfig"),
    "LabOracle": ("paretolab.oracles.lab", "LabOracle"),
    "LoadedProxy": ("paretolab.flows.shared_models", "LoadedProxy"),
    "MoleculeSpace": ("paretolab.flows.config", "MoleculeSpaceConfig"),
    "NotEnoughDataError": ("paretolab.flows.engine", "NotEnoughDataError"),
    "Objective": ("paretolab.data.objectives", "Objective"),
    "Oracle": ("paretolab.oracles.base", "Oracle"),
    "OracleError": ("paretolab.oracles.base", "OracleError"),
    "OracleResult": ("paretolab.oracles.base", "OracleResult"),
    "ResultsError": ("paretolab.data.results", "ResultsError"),
    "SearchSpace": ("paretolab.data.spaces", "SearchSpace"),
    "SequenceSpace": ("paretolab.flows.config", "SequenceSpaceConfig"),
    "SharedModelError": ("paretolab.flows.shared_models", "SharedModelError"),
    "StoreError": ("paretolab.data.store", "StoreError"),
    "Told": ("paretolab.flows.ask_tell", "Told"),
    "load_generator": ("paretolab.flows.shared_models", "load_generator"),
    "load_proxy": ("paretolab.flows.shared_models", "load_proxy"),
}
"""Public name -> (module, name there). Loaded on first use (PEP 562), so the command line
(``paretolab --version``, ``--help``) does not pay for importing torch and BoTorch."""

__all__ = [
    "BudgetSpentError",
    "Campaign",
    "CampaignExistsError",
    "CampaignLockedError",
    "CampaignMismatchError",
    "ConfigError",
    "GridSpace",
    "LabOracle",
    "LoadedProxy",
    "MoleculeSpace",
    "NotEnoughDataError",
    "Objective",
    "Oracle",
    "OracleError",
    "OracleResult",
    "ResultsError",
    "SearchSpace",
    "SequenceSpace",
    "SharedModelError",
    "StoreError",
    "Told",
    "__version__",
    "load_generator",
    "load_proxy",
]

__version__ = _metadata.version("paretolab")


def __getattr__(name: str) -> _Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'paretolab' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(_importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
