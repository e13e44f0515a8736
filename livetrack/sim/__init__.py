"""Simulated race days: realistic fields and passings played into a running server.

Used by ``livetrack demo`` and ``livetrack simulate``, by the benchmarks and by the tests; no
part of the production path imports it.
"""

from livetrack.sim.marshals import judgements
from livetrack.sim.race import Action, make_participants, plan, play

__all__ = ["Action", "judgements", "make_participants", "plan", "play"]
