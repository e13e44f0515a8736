"""The hub: topics, subscriptions, and a coalescing tick that renders each dirty topic once.

The fold marks topics dirty; every ``tick_s`` the hub renders each dirty topic that has
subscribers **once**. A subscriber holds one latest-wins slot per topic, so a slow client
skips intermediate states instead of queueing them: memory per client is bounded by its topic
count, and no client waits for another.

Delivery is one websocket message per client per tick: the changed fragments of all of its
topics, concatenated (htmx's ws extension swaps every top-level element with an id
out-of-band, so one message may carry several regions). Subscribers with the same topic set
form a :class:`Group`; the group's message is built (joined, encoded, framed) once per tick and
the same object is handed to each member. A member that can take it at once (its
:data:`~livetrack.live.wire.Write` succeeds) gets it written on the spot, without a task
switch; one that cannot keeps per-topic slots, merged latest-wins, and a short-lived task
delivers them when the connection can take more: the pending message's frame written directly
once the write can wait for the connection (``write.ready``), else through the ordinary
``send``. While a backed-up client's pending topics are all in the newest message, its slots
are that message, so it too gets the frame built once for the group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable

from livetrack.live.delta import Drawing, patch
from livetrack.live.wire import Write, deflate_frame, text_frame

log = logging.getLogger("livetrack.hub")

#: A topic's rendering: its whole fragment, or a :class:`Drawing` that can say what changed.
Render = Callable[[str], "str | Drawing"]
Send = Callable[[str], Awaitable[None]]


class Message:
    """One tick's fragments for one topic set: the text, and its frames built on first use.

    ``fragments`` are what is sent (for each topic, what changed since the previous tick, or
    the whole region); ``whole`` is every topic's whole region, for a client that missed a
    previous state (``fragments`` itself when nothing in it is a patch)."""

    __slots__ = ("_deflated", "_frame", "_whole_message", "fragments", "text", "whole")

    def __init__(self, fragments: dict[str, str], whole: dict[str, str] | None = None) -> None:
        self.fragments = fragments
        self.whole = fragments if whole is None else whole
        self.text = "".join(fragments.values())
        self._frame: bytes | None = None
        self._deflated: bytes | None = None
        self._whole_message: Message | None = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.text.encode())
        return self._frame

    @property
    def deflated(self) -> bytes:
        """The frame for a connection that negotiated permessage-deflate without context
        takeover: compressed once, the same bytes for every such client (or the plain frame
        when compressing would not make it smaller)."""
        if self._deflated is None:
            self._deflated = deflate_frame(self.text.encode()) or self.frame
        return self._deflated

    def frame_for(self, sub: Subscriber) -> bytes:
        return self.deflated if sub.deflate else self.frame

    def whole_message(self) -> Message:
        """Every topic of this message whole, built once for all the clients that need it."""
        if self.whole is self.fragments:
            return self
        if self._whole_message is None:
            self._whole_message = Message(self.whole)
        return self._whole_message


class Subscriber:
    """One connected client: its topics and one latest-wins slot per topic.

    ``send`` delivers a message (several fragments concatenated); ``write``, when given,
    delivers a pre-built frame synchronously or says it cannot (see :mod:`livetrack.live.wire`).
    The slots hold what is not yet sent; while they are exactly a group's message they share
    that message's dict (never mutated: a later offer replaces it).
    """

    __slots__ = (
        "_done",
        "_message",
        "_slots",
        "_task",
        "closed",
        "deflate",
        "send",
        "sent",
        "skipped",
        "topics",
        "write",
    )

    def __init__(self, send: Send, topics: Iterable[str], write: Write | None = None) -> None:
        self.send = send
        self.write = write
        #: The connection takes the shared compressed frames (see :mod:`livetrack.live.wire`).
        self.deflate: bool = bool(getattr(write, "deflate", False))
        self.topics = tuple(dict.fromkeys(topics))
        self._slots: dict[str, str] = {}
        self._message: Message | None = None  # set while _slots is that message's dict
        self._task: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self.closed = False
        self.sent = 0
        self.skipped = 0

    def offer(self, topic: str, fragment: str) -> None:
        """Put ``fragment`` in ``topic``'s slot, replacing an unsent older one."""
        if not fragment or self.closed:
            return
        self._own_slots()
        if topic in self._slots:
            self.skipped += 1
        self._slots[topic] = fragment
        self._kick()

    def offer_message(self, message: Message) -> None:
        """Offer a group's message: written at once when possible, else merged into the slots
        (each topic's older unsent fragment replaced by the newer one, whole: a patch is only
        valid on top of the state before it, which this client has not been sent)."""
        if self.closed:
            return
        if not self._slots:
            # the common case, once per client per tick: nothing pending, written now
            write = self.write
            if (
                write is not None
                and self._task is None
                and write(message.deflated if self.deflate else message.frame)
            ):
                self.sent += 1
                return
        self._hold(message)

    def _hold(self, message: Message) -> None:
        """Merge ``message`` into the slots (nothing of it was written) and deliver them when
        the connection can take them."""
        if not self._slots:
            self._slots = message.fragments
            self._message = message
        elif self._slots.keys() <= message.fragments.keys():
            # every pending fragment is superseded: take the group's message whole, so a
            # client that was backed up still gets a frame built once for all such members
            self.skipped += len(self._slots)
            whole = message.whole_message()
            self._slots = whole.fragments
            self._message = whole
        else:
            self._own_slots()
            slots = self._slots
            for topic, fragment in message.fragments.items():
                if topic in slots:
                    self.skipped += 1
                    slots[topic] = message.whole[topic]
                else:
                    slots[topic] = fragment
        self._kick()

    def pending(self) -> int:
        return len(self._slots)

    def _own_slots(self) -> None:
        if self._message is not None:
            self._slots = dict(self._slots)
            self._message = None

    def _take(self) -> Message:
        message = self._message or Message(self._slots)
        self._slots = {}
        self._message = None
        return message

    def _kick(self) -> None:
        """Deliver the slots: written directly if the connection takes them now, else (or
        when there is no direct write) by a task that drains them through ``send``. Outside
        an event loop they wait in their slots."""
        if self._task is not None or not self._slots:
            return
        if self.write is not None:
            if self._message is None:
                self._message = Message(self._slots)  # the slots are now this message's
            if self.write(self._message.frame_for(self)):
                self._slots = {}
                self._message = None
                self.sent += 1
                return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        """Deliver the slots once the connection can take them: with a direct write that can
        wait for that (``write.ready``), the pending message's frame is written as it is (for
        most clients the group's, built once); otherwise through ``send``, which waits."""
        ready: Callable[[], Awaitable[object]] | None = getattr(self.write, "ready", None)
        try:
            while self._slots and not self.closed:
                if ready is not None and self.write is not None:
                    await ready()
                    if self.closed or not self._slots:
                        break
                    if self._message is None:
                        self._message = Message(self._slots)
                    if self.write(self._message.frame_for(self)):
                        self._slots = {}
                        self._message = None
                        self.sent += 1
                        continue
                    # refused again (another write got in first, or the connection is
                    # closing): ``send`` waits, or raises on a connection that is gone
                await self.send(self._take().text)
                self.sent += 1
        except Exception:
            self.close()  # the connection is gone; the endpoint notices and unsubscribes
        finally:
            self._task = None

    def close(self) -> None:
        """Stop delivering (idempotent): drops the slots, cancels a drain still waiting on a
        send, and wakes :meth:`wait_closed`."""
        self.closed = True
        self._slots = {}
        self._message = None
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def wait_closed(self) -> None:
        if self.closed:
            return
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        await self._done

    async def pump(self) -> None:
        """Deliver until the client goes away (the delivery itself happens on offers)."""
        await self.wait_closed()


class Group:
    """Subscribers with the same topic set: their message is built once per tick."""

    __slots__ = ("members", "pending", "topics")

    def __init__(self, topics: tuple[str, ...]) -> None:
        self.topics = topics
        self.members: dict[Subscriber, None] = {}
        self.pending: dict[str, str] = {}

    def offer(self, message: Message) -> None:
        """:meth:`Subscriber.offer_message` to every member, with its common case (nothing
        pending, a direct write that takes the frame now) done here: this loop runs once per
        client per tick, so each call and property look-up it saves is paid thousands of
        times a tick."""
        plain: bytes | None = None
        packed: bytes | None = None
        for sub in list(self.members):
            write = sub.write
            if write is None or sub._slots or sub._task is not None or sub.closed:
                sub.offer_message(message)
                continue
            if sub.deflate:
                if packed is None:
                    packed = message.deflated
                frame = packed
            else:
                if plain is None:
                    plain = message.frame
                frame = plain
            if write(frame):
                sub.sent += 1
            else:
                sub._hold(message)


class Hub:
    """Coalesces changes into at most one render per topic per tick."""

    def __init__(
        self,
        render: Render,
        *,
        tick_s: float = 0.25,
        derive: Callable[[set[str], Collection[str]], set[str]] | None = None,
    ) -> None:
        self._render = render
        self._derive = derive
        self.tick_s = tick_s
        self._subs: dict[str, set[Subscriber]] = {}
        self._groups: dict[tuple[str, ...], Group] = {}
        self._topic_groups: dict[str, set[Group]] = {}
        self._dirty: set[str] = set()
        self._wake: asyncio.Event | None = None  # set by mark() while run() waits for news
        #: Each watched topic's last rendering: what every subscriber has been sent (or has
        #: waiting in its slots), so the next tick's patch applies on top of it.
        self._cache: dict[str, str | Drawing] = {}
        self.renders = 0
        #: Renderings sent as what changed rather than whole.
        self.patches = 0
        self.render_errors = 0
        self._failing: set[str] = set()  # topics whose last render failed (logged already)
        self.ticks = 0
        self.last_tick_s = 0.0
        self.last_send_s = 0.0
        #: Time spent in ticks (rendering and offering), in total.
        self.flush_s = 0.0
        #: Messages built for groups (one per group whose topics changed, per tick).
        self.messages = 0
        self.clients = 0
        #: Fragments skipped (replaced unsent) by clients that have since gone away; the
        #: live ones keep their own count in ``Subscriber.skipped``.
        self.frames_skipped = 0

    def subscribe(self, sub: Subscriber) -> None:
        """Register ``sub`` and offer it the current fragment of every topic (the snapshot,
        delivered as one message)."""
        self.clients += 1
        group = self._groups.get(sub.topics)
        if group is None:
            group = self._groups[sub.topics] = Group(sub.topics)
            for topic in sub.topics:
                self._topic_groups.setdefault(topic, set()).add(group)
        group.members[sub] = None
        snapshot: dict[str, str] = {}
        for topic in sub.topics:
            self._subs.setdefault(topic, set()).add(sub)
            fragment = self._current(topic)
            if fragment:
                snapshot[topic] = fragment
        if snapshot:
            sub.offer_message(Message(snapshot))

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        self.clients -= 1
        self.frames_skipped += sub.skipped
        group = self._groups.get(sub.topics)
        if group is not None:
            group.members.pop(sub, None)
            if not group.members:
                del self._groups[sub.topics]
                for topic in sub.topics:
                    groups = self._topic_groups.get(topic)
                    if groups is not None:
                        groups.discard(group)
                        if not groups:
                            del self._topic_groups[topic]
        for topic in sub.topics:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[topic]
                    self._cache.pop(topic, None)

    def _current(self, topic: str) -> str:
        """The region as the topic's other subscribers have it (rendered now if nobody
        watched it): a change since then reaches the new subscriber with theirs, next tick."""
        cached = self._cache.get(topic)
        if cached is None:
            cached = self._cache[topic] = self._safe_render(topic)
        return str(cached)

    def _safe_render(self, topic: str) -> str | Drawing:
        """Render ``topic``; a failure yields an empty fragment, so one broken region never
        takes the others (or the tick) down with it. It is logged with its traceback once
        while it keeps failing (then at debug level), and again once it failed anew."""
        self.renders += 1
        try:
            drawn = self._render(topic)
        except Exception:
            self.render_errors += 1
            if topic in self._failing:
                log.debug("rendering topic %r failed again", topic, exc_info=True)
            else:
                self._failing.add(topic)
                log.exception("rendering topic %r failed", topic)
            return ""
        self._failing.discard(topic)
        return drawn

    def mark(self, topics: Iterable[str]) -> None:
        """Note that ``topics`` changed; rendered at the next tick if anyone watches them."""
        self._dirty.update(topics)
        if self._wake is not None and self._dirty:
            self._wake.set()

    def subscribed(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    @property
    def topic_count(self) -> int:
        return len(self._subs)

    def flush(self) -> int:
        """Render each dirty, watched topic once; offer each group whose topics changed one
        message (its changed fragments, in its topic order), the same object to every member.
        Returns the number of renders."""
        dirty, self._dirty = self._dirty, set()
        if self._derive is not None and dirty:
            dirty = self._derive(dirty, self._subs.keys())
        rendered = 0
        started = time.perf_counter()
        touched: dict[Group, None] = {}
        wholes: dict[str, str] = {}
        for topic in dirty:
            if topic not in self._subs:
                self._cache.pop(topic, None)
                continue
            region = self._safe_render(topic)
            rendered += 1
            whole = str(region)
            old = self._cache.get(topic)
            if not whole or (old is not None and whole == str(old)):
                continue
            self._cache[topic] = region
            fragment = whole
            if isinstance(region, Drawing) and isinstance(old, Drawing):
                fragment = patch(old, region) or whole
                if fragment is not whole:
                    self.patches += 1
            wholes[topic] = whole
            for group in self._topic_groups.get(topic, ()):
                group.pending[topic] = fragment
                touched[group] = None
        rendered_at = time.perf_counter()
        for group in touched:
            pending, group.pending = group.pending, {}
            fragments = {t: pending[t] for t in group.topics if t in pending}
            whole_of = {t: wholes[t] for t in fragments}
            message = Message(fragments, whole_of if whole_of != fragments else None)
            self.messages += 1
            group.offer(message)
        self.ticks += 1
        done = time.perf_counter()
        self.last_tick_s = rendered_at - started
        self.last_send_s = done - rendered_at
        self.flush_s += done - started
        return rendered

    async def run(self) -> None:
        """Tick forever (cancel to stop); a failing render is logged, never fatal.

        A tick is followed by a full tick's wait, so changes arriving meanwhile go out
        together; a hub with nothing to send then waits for the next change and sends it at
        once, rather than at a tick that might be nearly a whole tick away (or ticking for
        nothing: on a busy server an empty tick is a tick's wait lost)."""
        wake = self._wake = asyncio.Event()
        while True:
            if not self._dirty:
                wake.clear()
                await wake.wait()
            try:
                self.flush()
            except Exception:
                log.exception("hub tick failed")
            await asyncio.sleep(self.tick_s)

    async def serve(self, sub: Subscriber) -> None:
        """Subscribe ``sub`` and deliver to it until it closes, fails to send, or this is
        cancelled; then unsubscribe it."""
        self.subscribe(sub)
        try:
            await sub.wait_closed()
        finally:
            self.unsubscribe(sub)
