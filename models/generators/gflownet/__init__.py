"""GFlowNet generators, split along the maths (torchgfn's layout): environments (what can
be built), policies (how it is parametrized), the sampler (how it is rolled out), training
signals (what objective values become) and loss objects (what is optimized). MOGFN-PC and
OP-GFN share everything but their signal and loss."""

from paretolab.models.generators.gflownet.conditioning import (
    Conditioning,
    ConditionSampler,
    simplex_grid,
    thermometer,
)
from paretolab.models.generators.gflownet.envs import (
    Environment,
    HyperGridEnvironment,
    SequenceEnvironment,
    environment_for,
)
from paretolab.models.generators.gflownet.exact import terminal_distribution, total_variation
from paretolab.models.generators.gflownet.generator import GFlowNetGenerator
from paretolab.models.generators.gflownet.losses import (
    Loss,
    OrderPreserving,
    TrajectoryBalance,
    TrajectoryScores,
    order_target,
    pair_target,
)
from paretolab.models.generators.gflownet.mogfn import MOGFN, MOGFNGenerator, MOGFNSettings
from paretolab.models.generators.gflownet.opgfn import OPGFN, OPGFNGenerator
from paretolab.models.generators.gflownet.policy import (
    CausalTransformerPolicy,
    LogPartition,
    MLPPolicy,
    Policy,
)
from paretolab.models.generators.gflownet.sampler import (
    Trajectories,
    ancestors,
    backward_trajectories,
    sample_trajectories,
    trajectory_log_probs,
)
from paretolab.models.generators.gflownet.signals import ParetoOrder, PreferenceReward
from paretolab.models.generators.gflownet.trainer import (
    GFlowNet,
    GFlowNetSettings,
    ObjectiveFn,
    TrainingSignal,
)

__all__ = [
    "MOGFN",
    "OPGFN",
    "GFlowNet",
    "GFlowNetGenerator",
    "GFlowNetSettings",
    "Loss",
    "OPGFNGenerator",
    "ObjectiveFn",
    "OrderPreserving",
    "ParetoOrder",
    "PreferenceReward",
    "TrainingSignal",
    "order_target",
    "pair_target",
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
    "ancestors",
    "backward_trajectories",
    "environment_for",
    "sample_trajectories",
    "simplex_grid",
    "terminal_distribution",
    "thermometer",
    "total_variation",
    "trajectory_log_probs",
]
