"""The metrics intake: training code reports step, metrics and checkpoints to the operator.

Its own package, sharing no state with the reconciler: `auth` issues and checks per-job
tokens, `book` keeps the merged reports (the sink), `server` serves the HTTP endpoint.
"""
