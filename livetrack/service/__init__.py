"""The running service between the log (:mod:`livetrack.store`) and HTTP (:mod:`livetrack.web`).

:mod:`~livetrack.service.runtime` tails the log into the fold and runs the hub;
:mod:`~livetrack.service.snapshots` saves and restores the fold; :mod:`~livetrack.service.entries`
seeds the log with a participants file; :mod:`~livetrack.service.readers` supervises the
decoder connectors; :mod:`~livetrack.service.link` pushes a site's log to the public server
that follows it. Nothing here imports Starlette.
"""
