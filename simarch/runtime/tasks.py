"""Request tasks: a request's whole path runs as one flat loop over SimPy's event queue.

A request visits many components, and each visit is a generator (``serve``). Nesting them
with ``yield from`` would make every resume walk the whole chain of delegating generators
(cost O(depth) per event, and a RecursionError near depth 1,000). A :class:`Task` instead
keeps the chain as an explicit stack and resumes only its top, so an event costs the same
at depth 3 and at depth 1,000.

What a request generator may yield, and what the task does with it:

* a ``float`` ``t``: resume after ``t`` simulated seconds. The task itself is the scheduled
  entry on SimPy's queue, so no ``Timeout`` object is built; ``t <= 0`` resumes at once,
  scheduling nothing.
* a generator: call it (push it on the stack); its return value is sent back.
* a SimPy ``Event``: wait for it; its value is sent back.

A generator that *returns* a generator hands over to it (a tail call): the request moves on
without keeping the finished hop's frame, so a forward chain stays one frame deep.

A task starts inside the call that creates it (:func:`spawn`), at the current instant,
without an ``Initialize`` event, and schedules nothing when it ends: whoever needs its
outcome passes ``on_done``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from heapq import heappop, heappush
from types import GeneratorType
from typing import Any

from simpy.events import NORMAL, PENDING, Event

_GEN = GeneratorType




class Task:
    """One thread of control over the SimPy environment ``env``: a stack of generators.

    ``on_done(task)`` is called when the bottom generator returns; ``value`` then holds its
    return value (``PENDING`` until then).
    """

    __slots__ = ("env", "stack", "callbacks", "value", "on_done")

    _ok = True  # what SimPy's step() checks of a processed entry

    def __init__(self, env: Any, gen: Generator, on_done: Callable[[Task], None] | None = None):
        self.env = env
        self.stack = [gen]
        self.callbacks: list | None = None
        self.value: Any = PENDING
        self.on_done = on_done

    @property
    def done(self) -> bool:
        return self.value is not PENDING

    def _on_event(self, ev: Event) -> None:
        self._step(ev._value)

    def _step(self, value: Any = None) -> None:
        """Run the task until it waits. As the callback of the task's own entry on the
        event queue (a sleep that ended) it is called with the task itself: ``value`` is
        then the task, and is sent as ``None``."""
        if value is self:
            value = None
        stack = self.stack
        gen = stack[-1]
        while True:
            try:
                y = gen.send(value)
            except StopIteration as stop:
                value = stop.value
                if type(value) is _GEN:  # a tail call: the returned generator takes over
                    stack[-1] = gen = value
                    value = None
                    continue
                stack.pop()
                if not stack:
                    self.value = value
                    if self.on_done is not None:
                        self.on_done(self)
                    return
                gen = stack[-1]
                continue
            t = type(y)
            if t is not float and t is not _GEN:
                cbs = getattr(y, "callbacks", False)
                if cbs is None:  # an event already processed: its value at once
                    value = y._value
                    continue
                if cbs is not False:  # an event: resume when it is processed
                    cbs.append(self._on_event)  # bound afresh: a task never refers to itself
                    return
                y = float(y)  # a number that is not a float (an int from user code)
                t = float
            if t is float:
                if y > 0.0:
                    env = self.env
                    self.callbacks = _WAKE
                    heappush(env._queue, (env._now + y, NORMAL, next(env._eid), self))
                    return
                value = None
            else:
                stack.append(y)
                gen = y
                value = None


class RequestTask(Task):
    """The task of one request from a client: when (``t0``) it arrived and its class."""

    __slots__ = ("t0", "cls")

    def __init__(self, env: Any, gen: Generator, on_done: Callable[[Task], None], t0: float, cls: int):
        Task.__init__(self, env, gen, on_done)
        self.t0 = t0
        self.cls = cls


class RecordedTask(RequestTask):
    """A request task in a run with hop records: also its root id (-1: not recorded) and key."""

    __slots__ = ("rid", "key")

    def __init__(self, env: Any, gen: Generator, on_done: Callable[[Task], None], t0: float, cls: int,
                 rid: int, key: int):
        RequestTask.__init__(self, env, gen, on_done, t0, cls)
        self.rid = rid
        self.key = key


_WAKE = [Task._step]  # shared: SimPy's step() reads an event's callbacks, never changes the list


def run_until(env: Any, until: float) -> None:
    """``env.run(until=until)``, without its per-event method call and exception set-up.

    Events are processed in SimPy's own order (time, priority, id), every one strictly
    before ``until``, exactly as ``env.run`` does (its stop event at ``until`` is urgent, so
    it comes before anything else scheduled then); then the clock is set to ``until``.
    """
    queue = env._queue
    pop = heappop
    while queue and queue[0][0] < until:
        env._now, _, _, event = pop(queue)
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            raise event._value
    if until > env._now:
        env._now = until


def spawn(env: Any, gen: Generator, on_done: Callable[[Task], None] | None = None) -> Task:
    """Start ``gen`` as a task now; it runs until its first wait before this returns."""
    task = Task(env, gen, on_done)
    task._step(None)
    return task


def join(env: Any, tasks: list[Task]) -> Event | None:
    """An event that succeeds once every task in ``tasks`` is done (``None`` if all are)."""
    pending = [t for t in tasks if t.value is PENDING]
    if not pending:
        return None
    ev = Event(env)
    left = [len(pending)]

    def one(_task: Task) -> None:
        left[0] -= 1
        if not left[0]:
            ev.succeed()
    for t in pending:
        t.on_done = one
    return ev


def gather(env: Any, tasks: list[Task]):
    """A request generator: wait until every task in ``tasks`` is done; return the first
    non-zero value among theirs, in order (a failure status), else 0 (``OK``)."""
    wait = join(env, tasks)
    if wait is not None:
        yield wait
    for t in tasks:
        if t.value:
            return t.value
    return 0


def first_of(env: Any, tasks: list[Task], event: Event | None = None) -> Event:
    """An event that succeeds when the first of ``tasks`` is done or ``event`` (if given,
    and not yet processed) is processed, whichever comes first. The tasks' ``on_done`` is
    replaced."""
    ev = Event(env)

    def fire(_x: Any) -> None:
        if ev._value is PENDING:
            ev.succeed()
    for t in tasks:
        t.on_done = fire
    if event is not None and event.callbacks is not None:
        event.callbacks.append(fire)
    return ev
