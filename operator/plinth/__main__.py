"""Entry point for `python -m plinth`."""

from plinth.cli import main

raise SystemExit(main())
