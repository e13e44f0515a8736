"""An ASGI app factory configured from the environment, for any number of server processes.

    LIVETRACK_EVENT=event.toml LIVETRACK_LOG='redis://redis:6379/0' \\
        uvicorn --factory livetrack.web.factory:create_from_env --workers 4 --port 8000

The variables are read by :func:`livetrack.config.from_env` (its module doc lists them); a
value that cannot be used raises :class:`livetrack.config.ConfigProblem` saying which.

Every process folds the same log, accepts ingest (appends go to the log), and serves its own
websocket clients from its own fold; none of them is special.
"""

from __future__ import annotations

from starlette.applications import Starlette

from livetrack import config
from livetrack.web.app import create_app


def create_from_env() -> Starlette:
    """The app for the event and log named by the environment."""
    return create_app(config.from_env())
