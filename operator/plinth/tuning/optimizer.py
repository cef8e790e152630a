"""The Optuna sampler and pruner an AutoMLSweep spec asks for.

A sampler is made fresh before every suggestion, seeded from (the sweep's seed, the trial
number): a sampler seeded once would move its random state with every ask, so a study
rebuilt after an operator restart would suggest something else. Seeding per trial makes a
rebuilt study suggest exactly what the original would have.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Callable

import optuna
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    SuccessiveHalvingPruner,
)
from optuna.samplers import BaseSampler

from plinth.api.v1alpha1 import AlgorithmName, AutoMLSweepSpec, EarlyStoppingName
from plinth.tuning.space import grid

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Some samplers are marked experimental by Optuna; their warnings would only fill the log.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

SEED_MODULUS = 2**32


class AlgorithmUnavailableError(RuntimeError):
    """The sampler needs a library this installation lacks (the message names it)."""


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed for trial `number` of a sweep seeded `seed`."""
    digest = hashlib.sha256(f"{seed}/{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % SEED_MODULUS


def default_seed(uid: str) -> int:
    """A sweep's seed when the spec sets none: derived from its uid, so it never changes."""
    return int.from_bytes(hashlib.sha256(uid.encode()).digest()[:4], "big") % SEED_MODULUS


def _gp(seed: int, spec: AutoMLSweepSpec) -> BaseSampler:
    _require("torch", "gp")
    _require("scipy", "gp")
    return optuna.samplers.GPSampler(seed=seed)


def _require(module: str, algorithm: str) -> None:
    """Optuna imports some samplers' libraries lazily, at the first ask: check up front."""
    if importlib.util.find_spec(module) is None:
        raise AlgorithmUnavailableError(
            f"algorithm {algorithm} needs the {module} package in the operator's image"
        )


def _cmaes(seed: int, spec: AutoMLSweepSpec) -> BaseSampler:
    _require("cmaes", "cmaes")
    return optuna.samplers.CmaEsSampler(seed=seed)


def _qmc(seed: int, spec: AutoMLSweepSpec) -> BaseSampler:
    _require("scipy", "qmc")
    return optuna.samplers.QMCSampler(seed=seed, scramble=True)


SAMPLERS: dict[AlgorithmName, Callable[[int, AutoMLSweepSpec], BaseSampler]] = {
    AlgorithmName.TPE: lambda seed, _spec: optuna.samplers.TPESampler(seed=seed),
    AlgorithmName.RANDOM: lambda seed, _spec: optuna.samplers.RandomSampler(seed=seed),
    AlgorithmName.GRID: lambda seed, spec: optuna.samplers.GridSampler(
        grid(spec.parameters), seed=seed
    ),
    AlgorithmName.CMAES: _cmaes,
    AlgorithmName.GP: _gp,
    AlgorithmName.QMC: _qmc,
}


def make_sampler(spec: AutoMLSweepSpec, seed: int, number: int) -> BaseSampler:
    """The sampler that suggests trial `number`. Raises AlgorithmUnavailableError."""
    return SAMPLERS[spec.algorithm.name](trial_seed(seed, number), spec)


def make_pruner(spec: AutoMLSweepSpec) -> BasePruner:
    """The pruner of `spec.earlyStopping` (Optuna's defaults where the spec sets nothing)."""
    stopping = spec.early_stopping
    min_steps = stopping.min_steps
    factor = stopping.reduction_factor or 3
    if stopping.name == EarlyStoppingName.ASHA:
        return SuccessiveHalvingPruner(min_resource=min_steps or "auto", reduction_factor=factor)
    if stopping.name == EarlyStoppingName.HYPERBAND:
        return HyperbandPruner(
            min_resource=min_steps or 1,
            max_resource=stopping.max_steps or "auto",
            reduction_factor=factor,
        )
    if stopping.name == EarlyStoppingName.MEDIAN:
        startup = 5 if stopping.startup_trials is None else stopping.startup_trials
        return MedianPruner(n_startup_trials=startup, n_warmup_steps=(min_steps or 1) - 1)
    return NopPruner()
