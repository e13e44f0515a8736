"""Changes, not regions: a region's patch carries only what changed, keyed rows placed where
they belong, and the hub never sends a patch to a client that missed the state it applies to."""

from __future__ import annotations

import asyncio
import random
import re
import zlib

from livetrack.live.delta import Drawing, patch
from livetrack.live.hub import Hub, Subscriber
from livetrack.live.wire import deflate_frame
from livetrack.web.parts import render_region
from livetrack.web.render import make_env

STEP = re.compile(r'<template data-p="([^"]*)">(.*?)</template>', re.S)
ID = re.compile(r'id="([^"]+)"')

BOARD = (
    '{% block board %}<section id="b">'
    '{% filter part %}<h2 id="b-h">{{ title }}</h2>{% endfilter %}\n<ol id="b-r">'
    "{% for k, v in rows %}"
    "{% filter item('b-r') %}<li id=\"r{{ k }}\">{{ v }}</li>{% endfilter %}\n"
    "{% endfor %}</ol>{% if note %}<p>{{ note }}</p>{% endif %}</section>{% endblock %}"
)


def draw(rows: list[tuple[str, str]], title: str = "Finish (2)", note: str = "") -> Drawing:
    env = make_env()
    tmpl = env.from_string(BOARD)

    def render() -> str:
        ctx = tmpl.new_context({"rows": rows, "title": title, "note": note})
        return "".join(tmpl.blocks["board"](ctx))

    return render_region(render)


def apply(rows: list[tuple[str, str, str]], parts: dict[str, str], text: str) -> None:
    """What the page's patcher does, on a keyed list and its parts (element ids -> html)."""
    for op, html in STEP.findall(text):
        kind, _, ref = op.partition(":")
        key = ID.search(html).group(1) if html else ""  # type: ignore[union-attr]
        if kind == "drop":
            rows[:] = [r for r in rows if r[0] != ref]
        elif kind == "" and key in parts:
            parts[key] = html
        elif kind == "":
            i = [k for k, _, _ in rows].index(key)
            rows[i] = (key, html, html)
        else:
            rows[:] = [r for r in rows if r[0] != key]
            at = 0 if kind == "first" else [k for k, _, _ in rows].index(ref) + 1
            rows.insert(at, (key, html, html))


def test_a_new_row_travels_alone_placed_after_its_predecessor() -> None:
    old = draw([("1", "Ada 6:58"), ("2", "Grace 7:10")])
    new = draw([("1", "Ada 6:58"), ("3", "Alan 7:05"), ("2", "Grace 7:10")], "Finish (3)")
    text = patch(old, new)
    assert text is not None
    assert STEP.findall(text) == [
        ("", '<h2 id="b-h">Finish (3)</h2>'),
        ("after:r1", '<li id="r3">Alan 7:05</li>'),
    ]
    assert "Grace" not in text and "Ada" not in text  # unchanged rows are not sent


def test_a_row_that_left_is_dropped_and_a_changed_row_replaced_in_place() -> None:
    old = draw([("1", "Ada 6:58"), ("2", "Grace 7:10"), ("3", "Alan 7:20")])
    new = draw([("1", "Ada 6:58"), ("3", "Alan 7:19")])
    text = patch(old, new)
    assert text is not None
    assert STEP.findall(text) == [("drop:r2", ""), ("", '<li id="r3">Alan 7:19</li>')]


def test_the_first_row_goes_first_in_its_list() -> None:
    old = draw([("2", "Grace")])
    new = draw([("1", "Ada"), ("2", "Grace")])
    assert STEP.findall(patch(old, new) or "") == [("first:b-r", '<li id="r1">Ada</li>')]


def test_a_changed_skeleton_sends_the_region_whole() -> None:
    old = draw([("1", "Ada")])
    new = draw([("1", "Ada")], note="Provisional")
    assert patch(old, new) is None


def test_a_patch_bigger_than_the_region_is_not_used() -> None:
    old = draw([(str(i), f"r{i}") for i in range(5)])
    new = draw([(str(i), f"r{i}") for i in reversed(range(5))])
    text = patch(old, new)
    assert text is None or len(text) < len(new.full)


def test_applying_a_patch_gives_the_new_rendering_for_any_reordering() -> None:
    rng = random.Random(7)
    for _ in range(300):
        keys = rng.sample(range(40), rng.randint(0, 12))
        old_rows = [(str(k), f"v{k}") for k in keys]
        new_keys = [k for k in keys if rng.random() > 0.2] + rng.sample(range(40, 60), 3)
        rng.shuffle(new_keys) if rng.random() < 0.5 else None
        new_rows = [(str(k), f"v{k}{'*' if rng.random() < 0.2 else ''}") for k in new_keys]
        old, new = draw(old_rows, "t"), draw(new_rows, "t")
        text = patch(old, new)
        if text is None:
            continue
        page = list(old.lists.get("b-r", []))
        parts = dict(old.parts)
        apply(page, parts, text)
        assert page == new.lists["b-r"]
        assert parts == new.parts


def test_the_page_render_and_the_region_are_the_same_html() -> None:
    region = draw([("1", "Ada"), ("2", "Grace")])
    env = make_env()
    tmpl = env.from_string(BOARD)
    page = tmpl.render(rows=[("1", "Ada"), ("2", "Grace")], title="Finish (2)", note="")
    assert region.full == page
    assert "\x00" not in region.full and "Ada" not in region.skeleton


class Board:
    """A hub render: a region that gains a row per version."""

    def __init__(self) -> None:
        self.version = 2

    def __call__(self, topic: str) -> Drawing:
        return draw([(str(i), f"runner {i}") for i in range(1, self.version + 1)])


async def test_subscribers_get_the_patch_and_a_backed_up_one_gets_the_region_whole() -> None:
    board = Board()
    hub = Hub(board)
    fast: list[str] = []
    written: list[bytes] = []
    accept = [True]
    never = asyncio.Event()

    async def send_fast(text: str) -> None:
        fast.append(text)

    async def send_stalled(text: str) -> None:
        await never.wait()  # a phone that stopped reading

    def write(frame: bytes) -> bool:
        if accept[0]:
            written.append(frame)
        return accept[0]

    hub.subscribe(Subscriber(send_fast, ["board"]))
    slow = Subscriber(send_stalled, ["board"], write)
    hub.subscribe(slow)
    await asyncio.sleep(0)
    assert len(written) == 1 and b"runner 2" in written[0]  # the snapshot is whole
    accept[0] = False  # the slow connection's buffer is full from here
    board.version = 3
    hub.mark(["board"])
    hub.flush()
    await asyncio.sleep(0)  # the slow one's drain task takes version 3 and hangs sending it
    assert fast[-1].startswith('<template data-p="')  # the fast one gets what changed
    assert "runner 3" in fast[-1] and "runner 2" not in fast[-1]
    board.version = 4
    hub.mark(["board"])
    hub.flush()  # version 3 is on its way: the patch from 3 to 4 waits behind it, valid
    assert slow._slots["board"].startswith('<template data-p="after:r3">')
    board.version = 5
    hub.mark(["board"])
    hub.flush()  # the patch to 4 never left: one from 4 to 5 would not apply, so it is whole
    assert slow._slots["board"].startswith('<section id="b">')
    assert "runner 4" in slow._slots["board"] and "runner 5" in slow._slots["board"]
    assert hub.patches == 3
    slow.close()


def test_a_compressed_frame_is_plain_deflate_that_a_client_inflates() -> None:
    text = ("<li id='r1'>Ada Lovelace 6:58</li>" * 20).encode()
    frame = deflate_frame(text)
    assert frame is not None and frame[0] == 0xC1  # FIN, RSV1 (compressed), text
    size = frame[1] & 0x7F
    payload = frame[2:] if size < 126 else frame[4:]
    inflate = zlib.decompressobj(-15)  # as a client does: the sync flush's tail added back
    assert inflate.decompress(payload + b"\x00\x00\xff\xff") == text
    assert len(frame) < len(text) / 3
    assert deflate_frame(b"<p>1</p>") is None  # not worth it: the plain frame goes


RANKED = (
    '{% block board %}<section id="b"><ol id="b-r">{% for k, v in rows %}'
    "{% filter item('b-r') %}<li id=\"r{{ k }}\">"
    "<b>{% filter derived %}{{ loop.index }}{% endfilter %}</b> {{ v }}</li>{% endfilter %}"
    "{% endfor %}</ol></section>{% endblock %}"
)


def draw_ranked(rows: list[tuple[str, str]]) -> Drawing:
    tmpl = make_env().from_string(RANKED)
    return render_region(lambda: "".join(tmpl.blocks["board"](tmpl.new_context({"rows": rows}))))


def test_a_row_arriving_above_does_not_resend_the_rows_it_moved_down() -> None:
    old = draw_ranked([("2", "Grace 7:10"), ("3", "Alan 7:20")])
    new = draw_ranked([("1", "Ada 6:58"), ("2", "Grace 7:10"), ("3", "Alan 7:20")])
    assert "<b>3</b> Alan" in new.full  # the page as drawn has every position
    # the positions below are worked out again by the page: only Ada's row goes
    assert STEP.findall(patch(old, new) or "") == [
        ("first:b-r", '<li id="r1"><b>1</b> Ada 6:58</li>')
    ]


def test_rows_sharing_an_id_send_the_region_whole() -> None:
    old = draw([("1", "Ada"), ("2", "Grace")])
    new = draw([("1", "Ada"), ("2", "Grace"), ("2", "Grace again")])
    assert patch(old, new) is None  # which "r2" is which cannot be said
