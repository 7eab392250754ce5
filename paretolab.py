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
it too. The names below are the public API; everything else is internal.
"""

import importlib.metadata as _metadata

from data.objectives import Objective
from data.results import ResultsError
from data.store import CampaignLockedError, StoreError
from flows.ask_tell import BudgetSpentError, Campaign, CampaignExistsError, Told
from flows.campaign_dir import CampaignMismatchError
from flows.config import ConfigError
from flows.config import GridSpaceConfig as GridSpace
from flows.config import MoleculeSpaceConfig as MoleculeSpace
from flows.config import SequenceSpaceConfig as SequenceSpace
from flows.steps import NotEnoughDataError

__all__ = [
    "BudgetSpentError",
    "Campaign",
    "CampaignExistsError",
    "CampaignLockedError",
    "CampaignMismatchError",
    "ConfigError",
    "GridSpace",
    "MoleculeSpace",
    "NotEnoughDataError",
    "Objective",
    "ResultsError",
    "SequenceSpace",
    "StoreError",
    "Told",
    "__version__",
]

__version__ = _metadata.version("paretolab")
