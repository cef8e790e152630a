"""The sweep engine: Optuna's samplers and pruners, driven by ask/tell from state kept in an
AutoMLSweep's status (no database, no suggestion service).

`space` turns the typed search space into Optuna distributions; `optimizer` makes the
sampler and pruner a spec asks for; `study` rebuilds a study from the recorded trials and
asks, judges and ranks through it; `template` makes a trial's TrainingJob spec. Pure: the
same status always gives the same suggestions and verdicts.
"""
