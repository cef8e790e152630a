"""The sweep engine: Optuna ask/tell rebuilt from a sweep's status."""
