"""One small adapter per kind on the shared runtime (`plinth.runtime`), and the registry."""
