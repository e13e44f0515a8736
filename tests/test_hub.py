"""The hub: one render per dirty topic per tick, latest-wins slots, snapshot on subscribe, one
message per client per tick built once per topic set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from livetrack.live.hub import Hub, Message, Subscriber
from livetrack.live.wire import text_frame


class Counter:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.version = 0

    def __call__(self, topic: str) -> str:
        self.calls[topic] = self.calls.get(topic, 0) + 1
        return f"<div id={topic}>{self.version}</div>"


def sink() -> tuple[list[str], Subscriber]:
    got: list[str] = []

    async def send(text: str) -> None:
        got.append(text)

    return got, Subscriber(send, ["a"])


async def test_one_render_per_dirty_topic_per_tick_whatever_the_subscriber_count() -> None:
    render = Counter()
    hub = Hub(render)
    subs = []
    for _ in range(500):
        _, s = sink()
        hub.subscribe(s)
        subs.append(s)
    assert render.calls == {"a": 1}  # the snapshot is rendered once and shared
    render.version = 1
    for _ in range(10):
        hub.mark(["a", "b"])  # many changes before a tick; nobody watches "b"
    hub.flush()
    assert render.calls == {"a": 2}
    assert all(s._slots["a"] == "<div id=a>1</div>" for s in subs)


async def test_a_stalled_client_keeps_only_the_latest_state() -> None:
    render = Counter()
    hub = Hub(render)
    never = asyncio.Event()

    async def stalled_send(text: str) -> None:
        await never.wait()  # like a phone that stopped reading: the send never completes

    stalled = Subscriber(stalled_send, ["a"])
    hub.subscribe(stalled)
    await asyncio.sleep(0)  # the snapshot is taken and its send hangs
    for v in range(1, 50):
        render.version = v
        hub.mark(["a"])
        hub.flush()
    assert stalled.pending() == 1
    assert stalled._slots["a"] == "<div id=a>49</div>"
    assert stalled.skipped == 48
    hub.unsubscribe(stalled)
    assert hub.frames_skipped == 48
    await asyncio.sleep(0)


async def test_a_stalled_direct_connection_keeps_only_the_latest_state() -> None:
    """A connection whose direct write refuses (write buffer full) merges later ticks into its
    slots, latest-wins per topic, and its one drain task waits on the ordinary send."""
    render = Counter()
    hub = Hub(render)
    never = asyncio.Event()
    sends: list[str] = []

    async def blocked_send(text: str) -> None:
        sends.append(text)
        await never.wait()

    sub = Subscriber(blocked_send, ["a", "b"], write=lambda frame: False)
    hub.subscribe(sub)
    await asyncio.sleep(0)
    assert sends == ["<div id=a>0</div><div id=b>0</div>"]  # the snapshot, in one message
    for v in range(1, 20):
        render.version = v
        hub.mark(["a"] if v % 2 else ["a", "b"])
        hub.flush()
    assert sub._slots == {"a": "<div id=a>19</div>", "b": "<div id=b>18</div>"}
    await asyncio.sleep(0)
    assert len(sends) == 1  # still one send outstanding: nothing queued behind it
    hub.unsubscribe(sub)
    await asyncio.sleep(0)


async def test_a_slow_client_does_not_delay_a_fast_one() -> None:
    render = Counter()
    hub = Hub(render)
    fast_got: list[str] = []
    gate = asyncio.Event()

    async def fast(text: str) -> None:
        fast_got.append(text)

    async def slow(text: str) -> None:
        await gate.wait()

    fast_task = asyncio.create_task(hub.serve(Subscriber(fast, ["a"])))
    slow_task = asyncio.create_task(hub.serve(Subscriber(slow, ["a"])))
    await asyncio.sleep(0.01)
    render.version = 7
    hub.mark(["a"])
    hub.flush()
    await asyncio.sleep(0.01)
    assert fast_got[-1] == "<div id=a>7</div>"
    gate.set()
    for t in (fast_task, slow_task):
        t.cancel()
    await asyncio.gather(fast_task, slow_task, return_exceptions=True)
    assert hub.clients == 0 and hub.topic_count == 0


async def test_subscribe_delivers_a_snapshot_of_every_topic() -> None:
    render = Counter()
    hub = Hub(render)
    got: list[str] = []

    async def send(text: str) -> None:
        got.append(text)

    task = asyncio.create_task(hub.serve(Subscriber(send, ["a", "b", "c"])))
    await asyncio.sleep(0.01)
    assert got == ["<div id=a>0</div><div id=b>0</div><div id=c>0</div>"]  # one message
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def direct(frames: list[bytes]) -> tuple[list[str], Subscriber]:
    """A subscriber with a direct write that always succeeds (and an ASGI send never used)."""
    got: list[str] = []

    async def send(text: str) -> None:
        got.append(text)

    def write(frame: bytes) -> bool:
        frames.append(frame)
        return True

    return got, Subscriber(send, ["race", "board", "feed"], write=write)


async def test_one_message_per_tick_with_every_changed_topic_built_once_per_topic_set() -> None:
    render = Counter()
    hub = Hub(render)
    frames: list[bytes] = []
    subs = []
    for _ in range(300):
        got, s = direct(frames)
        hub.subscribe(s)
        subs.append((got, s))
    assert len(frames) == 300 and render.calls == {"race": 1, "board": 1, "feed": 1}
    frames.clear()
    render.version = 1
    hub.mark(["feed", "board"])
    hub.flush()
    assert len(frames) == 300  # one frame each, written at once, no task switch
    assert all(f is frames[0] for f in frames)  # the same bytes object handed to every client
    assert frames[0] == text_frame(b"<div id=board>1</div><div id=feed>1</div>")  # topic order
    assert hub.messages == 1 and render.calls == {"race": 1, "board": 2, "feed": 2}
    assert all(not got and s.pending() == 0 and s.sent == 2 for got, s in subs)


async def test_subscribers_with_other_topic_sets_get_their_own_message() -> None:
    render = Counter()
    hub = Hub(render)
    frames: list[bytes] = []
    _, full = direct(frames)
    hub.subscribe(full)
    other_frames: list[bytes] = []
    other = Subscriber(
        full.send, ["feed", "runner:7"], write=lambda f: other_frames.append(f) or True
    )
    hub.subscribe(other)
    render.version = 2
    hub.mark(["feed", "race"])
    hub.flush()
    assert frames[-1] == text_frame(b"<div id=race>2</div><div id=feed>2</div>")
    assert other_frames[-1] == text_frame(b"<div id=feed>2</div>")
    assert render.calls["feed"] == 2  # rendered once for both groups
    hub.unsubscribe(full)
    hub.unsubscribe(other)
    assert hub.clients == 0 and hub.topic_count == 0 and not hub._groups


class Gate:
    """A direct write that refuses while the connection is backed up, with the ``ready``
    wait of :class:`livetrack.live.wire.DirectWrite`."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.open = asyncio.Event()
        self.open.set()

    def __call__(self, frame: bytes) -> bool:
        if not self.open.is_set():
            return False
        self.frames.append(frame)
        return True

    async def ready(self) -> None:
        await self.open.wait()


class Lost:
    """A direct write whose connection is gone: ``ready`` returns, every write refuses."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def __call__(self, frame: bytes) -> bool:
        return False

    async def ready(self) -> None:
        await self.gate.ready()


async def test_a_backed_up_direct_connection_gets_the_shared_frame_when_it_drains() -> None:
    """Ticks that change every topic a backed-up client has pending replace its slots with the
    group's message, and its drain writes that message's frame (the one every other member
    got) when the connection takes writes again, never through the ASGI send."""
    render = Counter()
    hub = Hub(render)
    fast_frames: list[bytes] = []
    _, fast = direct(fast_frames)
    gate = Gate()
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    slow = Subscriber(send, ["race", "board", "feed"], write=gate)
    hub.subscribe(fast)
    hub.subscribe(slow)
    assert gate.frames == [fast_frames[0]]  # the snapshot, written at once
    gate.open.clear()  # the connection backs up
    for v in range(1, 6):
        render.version = v
        hub.mark(["race", "board", "feed"] if v > 1 else ["feed"])
        hub.flush()
        await asyncio.sleep(0)
    assert slow.pending() == 3 and slow.skipped == 1 + 3 * 3  # latest-wins throughout
    gate.open.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(gate.frames) == 2 and gate.frames[1] is fast_frames[-1]  # the same bytes object
    assert slow.pending() == 0 and slow.sent == 2 and not sent
    render.version = 6
    hub.mark(["feed"])
    hub.flush()
    assert gate.frames[-1] is fast_frames[-1]  # written directly again, no task in between
    hub.unsubscribe(slow)
    hub.unsubscribe(fast)


async def test_a_partly_superseded_backlog_is_merged_and_framed_for_that_client() -> None:
    render = Counter()
    hub = Hub(render)
    gate = Gate()

    async def send(text: str) -> None:
        raise AssertionError("the direct write is used")

    sub = Subscriber(send, ["race", "board", "feed"], write=gate)
    hub.subscribe(sub)
    gate.open.clear()
    render.version = 1
    hub.mark(["race", "feed"])
    hub.flush()
    render.version = 2
    hub.mark(["feed"])
    hub.flush()
    gate.open.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert gate.frames[-1] == text_frame(b"<div id=race>1</div><div id=feed>2</div>")
    assert sub.skipped == 1
    hub.unsubscribe(sub)


async def test_a_backed_up_connection_that_goes_away_falls_back_to_send_and_closes() -> None:
    """Woken by ``ready`` but refused (the connection was lost meanwhile), the drain tries the
    ordinary send, which fails, and the subscriber closes."""
    hub = Hub(Counter())
    gate = Gate()
    attempts: list[str] = []

    async def send(text: str) -> None:
        attempts.append(text)
        raise ConnectionError("gone")

    sub = Subscriber(send, ["a"], write=gate)
    gate.open.clear()
    hub.subscribe(sub)  # the snapshot waits
    sub.write = Lost(gate)  # lost while it waited
    gate.open.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert attempts == ["<div id=a>0</div>"] and sub.closed and sub.pending() == 0
    hub.unsubscribe(sub)


def test_text_frames_use_the_three_length_encodings() -> None:
    assert text_frame(b"hi") == b"\x81\x02hi"
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert text_frame(b"x" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")
    assert Message({"a": "é"}).frame == b"\x81\x02\xc3\xa9"


def test_unchanged_fragment_is_not_sent_again() -> None:
    render = Counter()
    hub = Hub(render)
    _, s = sink()
    hub.subscribe(s)
    s._slots.clear()
    hub.mark(["a"])
    hub.flush()
    assert s.pending() == 0


def test_ticks_are_counted_and_messages_only_for_ticks_that_changed_something() -> None:
    render = Counter()
    hub = Hub(render)
    _, s = sink()
    hub.subscribe(s)
    hub.mark(["a"])
    hub.flush()  # rendered again, unchanged: nothing to send
    render.version = 1
    hub.mark(["a"])
    hub.flush()
    hub.flush()  # nothing dirty
    assert (hub.ticks, hub.messages) == (3, 1)
    assert hub.flush_s >= hub.last_tick_s + hub.last_send_s >= 0


def test_a_failing_render_is_logged_and_other_topics_still_go_out() -> None:
    def render(topic: str) -> str:
        if topic == "bad":
            raise RuntimeError("template broke")
        return f"<div id={topic}></div>"

    hub = Hub(render)
    _, s = sink()
    s.topics = ("a", "bad")
    hub.subscribe(s)
    assert list(s._slots) == ["a"]
    hub.mark(["a", "bad"])
    hub.flush()
    assert hub.render_errors == 2


def test_derived_topics_are_rendered_once_per_tick_from_the_dirty_set() -> None:
    render = Counter()
    derived: list[set[str]] = []

    watching: list[set[str]] = []

    def derive(dirty: set[str], watched: Collection[str]) -> set[str]:
        derived.append(set(dirty))
        watching.append(set(watched))
        return dirty | {"summary"}

    hub = Hub(render, derive=derive)
    _, s = sink()
    s.topics = ("summary",)
    hub.subscribe(s)
    for _ in range(20):
        hub.mark(["a"])
    hub.flush()
    assert derived == [{"a"}]
    assert watching == [{"summary"}]  # what anybody watches, for derivations that need it
    assert render.calls["summary"] == 2  # the snapshot, then once for the tick


def test_the_installed_server_still_has_what_the_direct_write_relies_on() -> None:
    from livetrack.live import wire

    assert wire.probe() == ""


async def test_each_connection_gets_the_frame_it_negotiated_the_same_bytes_for_all_alike() -> None:
    """A tick's message is framed once plain and once compressed; a connection that
    negotiated permessage-deflate gets the compressed frame, the others the plain one, and
    every connection of a kind gets the very same bytes object."""

    class Writer:
        def __init__(self, deflate: bool) -> None:
            self.deflate = deflate
            self.frames: list[bytes] = []

        def __call__(self, frame: bytes) -> bool:
            self.frames.append(frame)
            return True

    async def send(text: str) -> None:
        raise AssertionError("direct writes never fall back to send here")

    text = {"a": "<div id=a>0</div>"}
    hub = Hub(lambda topic: text[topic])
    writers = [Writer(deflate=i % 2 == 0) for i in range(6)]
    for w in writers:
        hub.subscribe(Subscriber(send, ["a"], w))
    text["a"] = "<div id=a>" + "1" * 300 + "</div>"  # long enough to be worth compressing
    hub.mark(["a"])
    hub.flush()
    packed = {id(w.frames[-1]) for w in writers if w.deflate}
    plain = {id(w.frames[-1]) for w in writers if not w.deflate}
    assert len(packed) == 1 and len(plain) == 1
    assert writers[0].frames[-1][0] == 0xC1  # FIN, RSV1 (compressed), text
    assert writers[1].frames[-1] == text_frame(text["a"].encode())
    assert all(len(w.frames) == 2 for w in writers)  # the snapshot, then the change


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 10)


async def test_an_idle_hub_sends_the_first_change_at_once_and_then_waits_a_tick() -> None:
    """Nothing to send: the hub waits for news and sends it without waiting for a tick; what
    changes after that goes out together, a tick later."""
    render = Counter()
    hub = Hub(render, tick_s=3600.0)  # a tick that never comes within the test
    got, s = sink()
    hub.subscribe(s)
    await until(lambda: len(got) == 1)  # the snapshot
    runner = asyncio.create_task(hub.run())
    try:
        await asyncio.sleep(0)  # the hub is waiting, with nothing to send
        render.version = 1
        hub.mark(["a"])
        await until(lambda: len(got) == 2)
        assert got[-1] == "<div id=a>1</div>" and hub.ticks == 1
        render.version = 2
        hub.mark(["a"])  # during the tick's wait: held for the next tick
        for _ in range(20):
            await asyncio.sleep(0)
        assert hub.ticks == 1 and len(got) == 2
    finally:
        runner.cancel()
