"""Snapshots of the fold: a :class:`RaceState` as bytes, and back, fast.

A process that joins a long log loads the newest snapshot and tails the log from the offset
it covers, instead of replaying every record. The contract:

* ``loads(dumps(state, offset, v), event, v)`` gives a state that answers every query exactly as
  ``state`` did, and folds every later record exactly as ``state`` would have.
* A snapshot is only ever loaded by the same fold code for the same event configuration:
  its header carries the caller's code version (the web layer passes a hash of the domain
  package's source) and :func:`event_fingerprint`; :func:`loads` returns None when either
  differs, and raises :class:`SnapshotError` for bytes that are not a snapshot; either way the
  caller replays from the start instead.
* Derived structures are rebuilt, not stored, where that is cheaper than storing them: the
  event and everything reachable from it (races, courses, timing points) are not stored but
  re-linked to the current event's objects.

Format: ``MAGIC``, a 4-byte big-endian header length, a JSON header, then a zlib stream of
two pickles (protocol 5): the runners in a compact tuple form plus the big plain-data tables,
and then the rest of the state. Pickle is used only for bytes this code wrote into the
event's own log store; a snapshot store must be trusted like the log itself.

Measured on a 27,000-runner 10K (225,000 reads), plain ``pickle.dumps(state)`` spends most of
its time in the dataclasses' Python ``__getstate__``/``__setstate__`` (one call per runner,
participant and passing); the compact form turns those objects into tuples of built-in
values, which the C pickler handles without calling back into Python. ``bench/join.py``
reports both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import io
import json
import operator
import pickle
import struct
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, Final

from livetrack.domain.event import Event
from livetrack.domain.passings import Inputs, Passing
from livetrack.domain.records import ParticipantRecord
from livetrack.domain.state import RaceState, Runner

MAGIC: Final = b"LTSNAP1\n"
FORMAT: Final = 2
#: Attributes of RaceState that hold only built-in values and sorted lists of them: pickled
#: by the C pickler with no per-object hook.
_PLAIN: Final = ("reads_by_chip", "chip_owner", "boards", "finishers", "unmatched")
#: zlib level: 1 shrinks a snapshot about threefold for a few percent of its encoding time.
LEVEL: Final = 1


class SnapshotError(ValueError):
    """The bytes are not a snapshot this code can load (the caller replays instead)."""


def event_fingerprint(event: Event) -> str:
    """A hash of the whole event configuration (its ``repr`` covers every field)."""
    return hashlib.sha256(repr(event).encode()).hexdigest()[:20]


def snapshot_name(event: Event, version: str) -> str:
    """The name a snapshot of ``event`` by fold code ``version`` is saved under: one per code
    version and event configuration, so processes of two versions (during a rolling deploy)
    never replace each other's snapshots."""
    digest = hashlib.sha256(f"{FORMAT}:{version}:{event_fingerprint(event)}".encode())
    return f"fold-{digest.hexdigest()[:16]}"


# -- the event's objects: stored as paths, re-linked on load ---------------------------------


def _walk(obj: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        yield path, obj
        for f in dataclasses.fields(obj):
            yield from _walk(getattr(obj, f.name), (*path, f.name))
    elif isinstance(obj, dict) or type(obj).__name__ == "mappingproxy":
        for k, v in obj.items():
            yield from _walk(v, (*path, k))
    elif isinstance(obj, tuple):
        for i, v in enumerate(obj):
            yield from _walk(v, (*path, i))


def _event_objects(event: Event) -> dict[tuple[Any, ...], Any]:
    """Every dataclass instance reachable from ``event``, by its first path."""
    out: dict[tuple[Any, ...], Any] = {}
    seen: set[int] = set()
    for path, obj in _walk(event, ()):
        if id(obj) not in seen:
            seen.add(id(obj))
            out[path] = obj
    return out


# -- runners in compact form ------------------------------------------------------------------


@cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@cache
def _fields_of(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the tuple of an instance's field values, in field order (in C)."""
    names = _names(cls)
    if len(names) == 1:
        return lambda obj: (getattr(obj, names[0]),)
    get: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
    return get


def _runner_encoder() -> Callable[[Runner], tuple[Any, ...]]:
    names = _names(Runner)
    at_p, at_race, at_inputs, at_passings = (
        names.index(n) for n in ("p", "race", "inputs", "passings")
    )
    runner_fields, p_fields = _fields_of(Runner), _fields_of(ParticipantRecord)
    inputs_fields = _fields_of(Inputs)

    def encode(r: Runner) -> tuple[Any, ...]:
        row = list(runner_fields(r))
        row[at_p] = p_fields(row[at_p])
        row[at_race] = row[at_race].id
        row[at_inputs] = inputs_fields(row[at_inputs])
        row[at_passings] = list(map(tuple, row[at_passings].values()))
        return tuple(row)

    return encode


@cache
def _maker(cls: type) -> Callable[..., Any]:
    """A function of a dataclass's field values, in field order, that makes an instance
    holding exactly those values: the class itself when its ``__init__`` takes every field
    in order and does nothing more (the fast way), else one that sets each field."""
    fields = dataclasses.fields(cls)
    if all(f.init and not f.kw_only for f in fields) and not hasattr(cls, "__post_init__"):
        return cls
    names = tuple(f.name for f in fields)
    new, setter = object.__new__, object.__setattr__

    def make(*values: Any) -> Any:
        obj: Any = new(cls)
        for name, value in zip(names, values, strict=True):
            setter(obj, name, value)
        return obj

    return make


def _runner_decoder(event: Event) -> Callable[[tuple[Any, ...]], Runner]:
    names = _names(Runner)
    at_p, at_race, at_inputs, at_passings = (
        names.index(n) for n in ("p", "race", "inputs", "passings")
    )
    make_runner, make_p, make_inputs = _maker(Runner), _maker(ParticipantRecord), _maker(Inputs)
    races = event.races
    # a Passing is a named tuple: made from its stored tuple in C, with no call per passing
    new_passing = functools.partial(tuple.__new__, Passing)
    checkpoint = operator.itemgetter(0)

    def decode(row: tuple[Any, ...]) -> Runner:
        values = list(row)
        values[at_p] = make_p(*values[at_p])
        values[at_race] = races[values[at_race]]
        values[at_inputs] = make_inputs(*values[at_inputs])
        passings = values[at_passings]
        values[at_passings] = dict(
            zip(map(checkpoint, passings), map(new_passing, passings), strict=True)
        )
        runner: Runner = make_runner(*values)
        return runner

    return decode


# -- dumps / loads ----------------------------------------------------------------------------


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: building millions of tuples, lists and dicts
    otherwise triggers full collections that traverse them all again and again (this more
    than halves the time to load a large snapshot). Nothing here creates cycles to collect."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _ref(kind: str, *path: Any) -> Any:
    """Stands in a snapshot for an object the loading side supplies: a runner, or one of the
    event's objects (see :class:`_Unpickler`). Never called outside a snapshot's loading."""
    raise pickle.UnpicklingError(f"reference {(kind, *path)!r} outside a snapshot")


class _Pickler(pickle.Pickler):
    """Stores the event's objects and runners as references (see :class:`_Unpickler`).

    A ``reducer_override`` rather than a ``persistent_id``: the pickler asks it only about
    objects that are not of a built-in type, where it would ask ``persistent_id`` about every
    dict, list, tuple, string and number in the state."""

    def __init__(self, file: io.BytesIO, refs: dict[int, tuple[Any, ...]]) -> None:
        super().__init__(file, protocol=5)
        self._refs = refs

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Runner:
            return _ref, ("runner", obj.p.bib)
        ref = self._refs.get(id(obj))
        if ref is not None:
            return _ref, ref
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(
        self, file: io.BytesIO, objects: dict[tuple[Any, ...], Any], runners: dict[str, Runner]
    ) -> None:
        super().__init__(file)
        self._objects = objects
        self._runners = runners

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "_ref":
            return self._resolve
        return super().find_class(module, name)

    def _resolve(self, kind: Any, *path: Any) -> Any:
        if kind == "runner" and len(path) == 1:
            return self._runners[path[0]]
        if kind == "event":
            try:
                return self._objects[path]
            except KeyError:
                raise pickle.UnpicklingError(f"no event object at {path!r}") from None
        raise pickle.UnpicklingError(f"unknown reference {(kind, *path)!r}")


def header(state: RaceState, offset: str, version: str, taken_ms: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "code": version,
        "taken_ms": taken_ms,
        "event": event_fingerprint(state.event),
        "offset": offset,
        "applied": state.applied,
        "runners": len(state.runners),
    }


def encode(state: RaceState, offset: str, version: str, taken_ms: int) -> tuple[bytes, bytes]:
    """The header and the uncompressed payload of a snapshot of ``state`` (which covers the
    log up to and including ``offset``), written by fold code ``version`` at ``taken_ms``.
    Must run where nothing folds meanwhile: the payload is built from the live objects."""
    with _no_gc():
        return _encode(state, offset, version, taken_ms)


def _encode(state: RaceState, offset: str, version: str, taken_ms: int) -> tuple[bytes, bytes]:
    bulk = {
        "runners": list(map(_runner_encoder(), state.runners.values())),
        **{name: getattr(state, name) for name in _PLAIN},
    }
    rest = {
        k: v for k, v in vars(state).items() if k not in _PLAIN and k not in ("event", "runners")
    }
    refs = {id(obj): ("event", *path) for path, obj in _event_objects(state.event).items()}
    buf = io.BytesIO()
    pickle.dump(bulk, buf, protocol=5)
    _Pickler(buf, refs).dump(rest)
    head = json.dumps(header(state, offset, version, taken_ms), sort_keys=True).encode()
    return head, buf.getvalue()


def pack(head: bytes, payload: bytes, level: int = LEVEL) -> bytes:
    """Frame and compress an :func:`encode` result (safe to run in a worker thread)."""
    return MAGIC + struct.pack(">I", len(head)) + head + zlib.compress(payload, level)


def dumps(state: RaceState, offset: str, version: str, taken_ms: int = 0) -> bytes:
    """A snapshot of ``state`` as covering the log up to and including ``offset``."""
    return pack(*encode(state, offset, version, taken_ms))


def read_header(body: bytes) -> dict[str, Any]:
    """The header of a snapshot; raises :class:`SnapshotError` when ``body`` is not one."""
    if not body.startswith(MAGIC) or len(body) < len(MAGIC) + 4:
        raise SnapshotError("not a livetrack snapshot")
    (n,) = struct.unpack_from(">I", body, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        head = json.loads(body[start : start + n])
    except ValueError as exc:
        raise SnapshotError(f"snapshot header is not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise SnapshotError("snapshot header is not an object")
    return head


def compatible(head: dict[str, Any], event: Event, version: str) -> str | None:
    """Why a snapshot with ``head`` cannot be loaded for ``event`` by fold code ``version``,
    or None if it can."""
    if head.get("format") != FORMAT:
        return f"snapshot format {head.get('format')!r} is not {FORMAT}"
    if head.get("code") != version:
        return "snapshot was written by a different version of the fold"
    if head.get("event") != event_fingerprint(event):
        return "snapshot is of a different event configuration"
    if not isinstance(head.get("offset"), str):
        return "snapshot has no offset"
    return None


def loads(body: bytes, event: Event, version: str) -> tuple[str, RaceState] | None:
    """``(offset, state)`` from a snapshot of ``event`` written by fold code ``version``, or
    None when the snapshot is of another event configuration or code version. Raises
    :class:`SnapshotError` for bytes that are damaged or not a snapshot."""
    head = read_header(body)
    if compatible(head, event, version) is not None:
        return None
    start = len(MAGIC) + 4 + struct.unpack_from(">I", body, len(MAGIC))[0]
    with _no_gc():
        return _decode(body, start, head, event)


def _decode(
    body: bytes, start: int, head: dict[str, Any], event: Event
) -> tuple[str, RaceState] | None:
    try:
        buf = io.BytesIO(zlib.decompress(memoryview(body)[start:]))
        bulk = pickle.load(buf)
        decode = _runner_decoder(event)
        runners: dict[str, Runner] = {}
        for row in bulk.pop("runners"):
            runner = decode(row)
            runners[runner.p.bib] = runner
        rest = _Unpickler(buf, _event_objects(event), runners).load()
    except (zlib.error, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot cannot be read: {type(exc).__name__}: {exc}") from None
    state = RaceState(event)
    vars(state).update(rest)
    vars(state).update(bulk)
    state.runners = runners
    return str(head["offset"]), state
