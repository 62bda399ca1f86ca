"""Entry point for ``python -m synreal``; with ``SYNREAL_WARM=1``, a warm start if it can."""

import sys

from synreal import warm

if warm.enabled():
    code = warm.run(sys.argv[1:])
    if code is not None:
        raise SystemExit(code)

from synreal.cli import main  # noqa: E402 (a warm start never needs it)

raise SystemExit(main())
