"""Entry point for ``python -m synreal``."""

from synreal.cli import main

raise SystemExit(main())
