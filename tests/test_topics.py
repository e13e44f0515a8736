"""Topics are typed (kind and fields, public or staff), and a subscription is admitted by the
rules of each topic's live region: the same role and checkpoint rules as the write API."""

from __future__ import annotations

import pytest
from factory import event, person

from livetrack.domain import topics
from livetrack.domain.records import TokenRecord
from livetrack.domain.state import RaceState, board_topic, marshal_topic, runner_topic
from livetrack.domain.topics import MAX_TOPICS, BadTopic, Kind, dom_id, is_public, parse
from livetrack.web import features
from livetrack.web.live import Refused, admit
from livetrack.web.regions import Region
from livetrack.web.render import Renderer, make_env


def _renderer() -> Renderer:
    r = features.renderer(RaceState(event()))
    for rec in (person("1"), person("2")):
        r.state.apply(rec)
    return r


def _grant(role: str, point: str = "") -> TokenRecord:
    return TokenRecord("0" * 64, role, point, "", False, 0)


def test_a_topic_name_parses_to_its_kind_and_fields_and_back() -> None:
    t = parse("board:mile:finish:all")
    assert t.kind is topics.BOARD
    assert (t["race"], t["checkpoint"], t["division"]) == ("mile", "finish", "all")
    assert t.name == str(t) == "board:mile:finish:all" == board_topic("mile", "finish")
    assert t.dom_id == dom_id(t.name) == "t-board-mile-finish-all"
    assert parse("races").values == ()
    assert parse(runner_topic("A:12")).values == ("A:12",)  # the last field may hold ':'


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("nope:1", "unknown topic"),
        ("board:mile:finish", "is not board:<race>:<checkpoint>:<division>"),
        ("runner:", "is not runner:<bib>"),
        ("races:x", "is not races"),
        ("feed", "is not feed:<race>"),
    ],
)
def test_a_name_that_is_no_topic_says_what_a_topic_of_its_kind_looks_like(
    name: str, why: str
) -> None:
    with pytest.raises(BadTopic, match=why):
        parse(name)


def test_staff_kinds_are_not_public() -> None:
    assert is_public("board:mile:finish:all") and is_public("runner:1") and is_public("races")
    assert not parse(marshal_topic("half")).public
    for name in (
        "marshal:half",
        "guns",
        "readers",
        "announce",
        "accuracy",
        "problems",
        "unmatched",
    ):
        assert not is_public(name), name
    assert not is_public("nope")  # a name that is no topic is not public either


def test_every_region_has_a_declared_kind_and_every_watchable_kind_a_region() -> None:
    r = _renderer()
    declared = {k.name for k in topics.kinds().values() if not k.signal}
    assert set(r.regions) == declared
    with pytest.raises(ValueError, match="declared twice"):
        topics.declare("board", ("race",))


def test_a_region_twice_or_of_an_undeclared_kind_is_refused_at_registration() -> None:
    r = Renderer(make_env(), RaceState(event()))
    region = features.regions()[0]
    r.register(region)
    with pytest.raises(ValueError, match="registered twice"):
        r.register(region)
    ghost = Region(Kind("ghost"), "home.html", "races", "races", lambda c, t: None)
    with pytest.raises(ValueError, match="'ghost': its kind is not the declared one"):
        r.register(ghost)


def test_admission_refuses_unknown_topics_and_more_than_the_cap() -> None:
    r = _renderer()
    assert admit(r, ["runner:1", "runner:1", "", "races"], None, False) == ["runner:1", "races"]
    with pytest.raises(Refused, match="unknown topic 'runner:9'"):
        admit(r, ["runner:1", "runner:9"], None, False)
    with pytest.raises(Refused, match="unknown topic 'board:mile:start:all'"):
        admit(r, ["board:mile:start:all"], None, False)  # no board at the start
    with pytest.raises(Refused, match="no topics"):
        admit(r, [""], None, False)
    many = [f"runner:{i}" for i in range(MAX_TOPICS + 1)]
    with pytest.raises(Refused, match=f"too many topics \\({MAX_TOPICS + 1} > {MAX_TOPICS}\\)"):
        admit(r, many, None, False)


def test_staff_regions_follow_the_write_apis_role_and_checkpoint_rules() -> None:
    r = _renderer()
    marshal = _grant("marshal", "half")
    assert admit(r, ["marshal:half", "board:mile:finish:all"], marshal, True)
    with pytest.raises(Refused, match="this marshal token is for 'half', not 'finish'"):
        admit(r, ["marshal:finish"], marshal, True)
    with pytest.raises(Refused, match="a marshal token may not do this"):
        admit(r, ["guns"], marshal, True)
    with pytest.raises(Refused, match="a reader token may not do this"):
        admit(r, ["marshal:half"], _grant("reader"), True)
    with pytest.raises(Refused, match="'problems' is for staff: sign in first"):
        admit(r, ["problems"], None, True)
    timer = _grant("timer")
    every = [
        "guns",
        "readers",
        "announce",
        "accuracy",
        "problems",
        "unmatched",
        "marshal:finish",
        "races",
    ]
    assert admit(r, every, timer, True) == every


def test_time_dependent_regions_name_their_period() -> None:
    r = _renderer()
    periods = r.touch_periods(["marshal:half", "guns", "races", "runner:1"])
    assert periods == {"marshal:half": 2.0, "guns": 1.0}


def test_a_new_live_region_needs_only_its_definition_and_a_block() -> None:
    from jinja2 import ChoiceLoader, DictLoader

    from livetrack.web.regions import is_race
    from livetrack.web.render import race_summary

    try:
        # the one Python file: a kind and its region
        kind = topics.declare("finishers_count", ("race",))
        region = race_summary(
            kind, "count.html", "count", "fc", lambda st, race: {"race": race, "n": len(st.runners)}
        )
        # the one template: the block, with the topic's id, swapped out of band
        block = (
            "{% block count %}<p id=\"{{ topic_id('finishers_count', fc.race) }}\" "
            'hx-swap-oob="true">{{ fc.n }} entered</p>{% endblock %}'
        )
        r = features.renderer(RaceState(event()))
        r.env.loader = ChoiceLoader([DictLoader({"count.html": block}), r.env.loader])  # type: ignore[list-item]
        r.register(region)
        r.state.apply(person("1"))
        assert admit(r, ["finishers_count:mile"], None, True) == ["finishers_count:mile"]
        assert r.topic("finishers_count:mile") == (
            '<p id="t-finishers_count-mile" hx-swap-oob="true">1 entered</p>'
        )
        # dirty whenever anything in its race changes, like every race summary
        assert "finishers_count:mile" in r.derive({"feed:mile"}, ())
        assert is_public("finishers_count:mile") and is_race(r.state, parse("finishers_count:mile"))
    finally:  # the kind was declared for this test only
        topics._KINDS.pop("finishers_count", None)
        parse.cache_clear()
