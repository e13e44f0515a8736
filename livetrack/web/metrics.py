"""``/metrics``: this process's numbers in the Prometheus text format.

Each app has a registry of its own (never the global one), so several apps in one process,
as in tests, do not clash. Every value is read from the running service when scraped; nothing
is counted twice. All metrics are per process: sum them over processes for the service.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from livetrack.service.runtime import Runtime


class RuntimeCollector(Collector):
    """Reads the counters of one :class:`Runtime` (set once the app has started)."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        #: Whether Starlette and uvicorn have what the direct websocket write relies on
        #: (:func:`livetrack.live.wire.probe`, checked at start-up).
        self.direct_write = False

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        rt = self.runtime
        if rt is None:
            return
        reads = CounterMetricFamily(
            "livetrack_reads", "Chip reads posted to this process, by outcome", labels=["status"]
        )
        reads.add_metric(["accepted"], rt.counters.reads_accepted)
        reads.add_metric(["duplicate"], rt.counters.reads_duplicate)
        reads.add_metric(["rejected"], rt.counters.reads_rejected)
        yield reads
        yield CounterMetricFamily(
            "livetrack_records_applied",
            "Log records folded into this process's state (a restored snapshot's included)",
            value=rt.state.applied,
        )
        yield GaugeMetricFamily(
            "livetrack_log_lag_records",
            "Records in the log this process has not folded yet (as of the last head check)",
            value=0 if rt.caught_up else max(rt.lag, 1),
        )
        yield GaugeMetricFamily(
            "livetrack_caught_up",
            "1 when this process has folded everything the log held at the last head check",
            value=1 if rt.caught_up else 0,
        )
        hub = rt.hub
        yield GaugeMetricFamily(
            "livetrack_ws_clients", "Websocket clients connected to this process", value=hub.clients
        )
        yield GaugeMetricFamily(
            "livetrack_topics", "Topics with at least one subscriber", value=hub.topic_count
        )
        yield GaugeMetricFamily(
            "livetrack_ws_direct_write_available",
            "1 when the installed server has what the direct websocket write relies on",
            value=1 if self.direct_write else 0,
        )
        subs = CounterMetricFamily(
            "livetrack_ws_subscriptions",
            "Websocket subscriptions, by how their frames are written",
            labels=["write"],
        )
        subs.add_metric(["direct"], rt.counters.ws_direct)
        subs.add_metric(["asgi"], rt.counters.ws_asgi)
        yield subs
        yield GaugeMetricFamily(
            "livetrack_tick_render_seconds",
            "Time the last hub tick spent rendering dirty topics",
            value=hub.last_tick_s,
        )
        yield CounterMetricFamily("livetrack_renders", "Topic renders", value=hub.renders)
        yield CounterMetricFamily("livetrack_hub_ticks", "Hub ticks", value=hub.ticks)
        yield CounterMetricFamily(
            "livetrack_hub_messages",
            "Messages built for groups of subscribers with the same topics (at most one per"
            " group per tick)",
            value=hub.messages,
        )
        yield CounterMetricFamily(
            "livetrack_hub_flush_seconds",
            "Time the hub's ticks spent rendering and offering messages",
            value=hub.flush_s,
        )
        live_skipped = sum(s.skipped for subs in hub._subs.values() for s in subs)
        yield CounterMetricFamily(
            "livetrack_frames_skipped",
            "Fragments replaced before a slow client took them (latest-wins)",
            value=hub.frames_skipped + live_skipped,
        )
        snap = rt.snapshot
        age = snap.age_s()
        yield GaugeMetricFamily(
            "livetrack_snapshot_age_seconds",
            "Age of the newest snapshot this process loaded or saved (-1: none)",
            value=-1.0 if age is None else age,
        )
        yield GaugeMetricFamily(
            "livetrack_snapshot_records_behind",
            "Records folded since the newest snapshot this process loaded or saved",
            value=max(0, rt.state.applied - snap.applied),
        )
        yield CounterMetricFamily(
            "livetrack_snapshot_saves", "Snapshots saved by this process", value=snap.saves
        )


def make_registry() -> tuple[CollectorRegistry, RuntimeCollector]:
    """A registry of the app's own, with the collector to point at its runtime."""
    registry = CollectorRegistry(auto_describe=False)
    collector = RuntimeCollector()
    registry.register(collector)
    return registry, collector


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
