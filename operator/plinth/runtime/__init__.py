"""One reconcile runtime for every kind: work queue, adapters, reconcile, status writer,
Kopf wiring and the operator object that holds all running state."""
