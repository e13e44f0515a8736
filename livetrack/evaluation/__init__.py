"""Scoring the finish-time predictor against published results (``livetrack
evaluate-predictions``): :mod:`~livetrack.evaluation.formats` reads published results with
checkpoint splits, :mod:`~livetrack.evaluation.replay` replays them through the predictor,
:mod:`~livetrack.evaluation.loo` holds each race out in turn and sums up.
No part of the production path imports it.
"""
