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

import importlib.metadata as _metadata

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
from paretolab.oracles.base import Oracle, OracleError, OracleResult
from paretolab.oracles.lab import LabOracle

__all__ = [
    "BudgetSpentError",
    "Campaign",
    "CampaignExistsError",
    "CampaignLockedError",
    "CampaignMismatchError",
    "ConfigError",
    "GridSpace",
    "LabOracle",
    "MoleculeSpace",
    "NotEnoughDataError",
    "Objective",
    "Oracle",
    "OracleError",
    "OracleResult",
    "ResultsError",
    "SearchSpace",
    "SequenceSpace",
    "StoreError",
    "Told",
    "__version__",
]

__version__ = _metadata.version("paretolab")
