"""Training-side tests: plinth_client, and the reference trainer run as real local processes."""
