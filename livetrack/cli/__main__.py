"""``python -m livetrack.cli``."""

from livetrack.cli import main

raise SystemExit(main())
