"""GFlowNet generators, split along the maths (torchgfn's layout): environments (what can
be built), policies (how it is parametrized), the sampler (how it is rolled out) and loss
objects (what is optimized)."""

from models.generators.gflownet.conditioning import Conditioning, ConditionSampler, simplex_grid, thermometer
from models.generators.gflownet.envs import (
    Environment,
    HyperGridEnvironment,
    SequenceEnvironment,
    environment_for,
)
from models.generators.gflownet.exact import terminal_distribution, total_variation
from models.generators.gflownet.losses import TrajectoryBalance, TrajectoryScores
from models.generators.gflownet.mogfn import MOGFN, MOGFNGenerator, MOGFNSettings
from models.generators.gflownet.policy import CausalTransformerPolicy, LogPartition, MLPPolicy, Policy
from models.generators.gflownet.sampler import (
    Trajectories,
    backward_trajectories,
    sample_trajectories,
    trajectory_log_probs,
)

__all__ = [
    "MOGFN",
    "CausalTransformerPolicy",
    "ConditionSampler",
    "Conditioning",
    "Environment",
    "HyperGridEnvironment",
    "LogPartition",
    "MLPPolicy",
    "MOGFNGenerator",
    "MOGFNSettings",
    "Policy",
    "SequenceEnvironment",
    "Trajectories",
    "TrajectoryBalance",
    "TrajectoryScores",
    "backward_trajectories",
    "environment_for",
    "sample_trajectories",
    "simplex_grid",
    "terminal_distribution",
    "thermometer",
    "total_variation",
    "trajectory_log_probs",
]
