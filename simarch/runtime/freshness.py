"""Freshness accounting: which reads returned a value older than the last write, and by how much.

A **write** to a key commits a new version of it at the key's system of record (a datastore's
primary, its W-th copy for a quorum write, or a write-back cache's acknowledgement): the
owner's :class:`KeyClock` keeps the commit times of each key's versions, in order. A copy of
the data (a replica, a cache entry) holds some version ``seen`` of a key. A **read** that
returns version ``seen`` at time ``now`` is *stale* when the key has a later committed version;
its staleness **age** is ``now`` minus the commit time of the first version it missed (how long
the newer value has existed without the read seeing it).

Each component that serves reads from a copy keeps a :class:`ReadLog`: per request class, the
reads it served in the measurement window, the stale ones and their ages, and, for requests
that carry a session (see :class:`Sessions`), violations of read-your-writes and of monotonic
reads. Collection turns the logs into :meth:`simarch.results.result.Result.freshness` and the
``stale_reads`` column of the summary.

The accounting costs nothing unless a component tracks freshness: nothing here is built for
a design without copies that can lag.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np


class KeyClock:
    """The committed versions of each key of one system of record.

    Versions count from 1 (version 0 is the value before the run's first write). The commit
    times of every key's versions are kept in one array, each linked to the key's previous
    version (no object per key: a long run's keys add no garbage-collected objects), so the
    commit time of a version is found by walking back from the newest, a few steps for the
    versions a copy is usually behind by.
    """

    __slots__ = ("_count", "_last", "_times", "_prev")

    def __init__(self) -> None:
        self._count: dict[int, int] = {}  # key -> its newest version
        self._last: dict[int, int] = {}  # key -> the index of its newest version's commit
        self._times = array("d")  # commit time of each write, in commit order
        self._prev = array("q")  # index of the same key's previous write (-1: none)

    def commit(self, key: int, now: float) -> int:
        """Commit a new version of ``key`` at ``now``; returns its number."""
        v = self._count.get(key, 0) + 1
        self._count[key] = v
        self._prev.append(self._last.get(key, -1))
        self._last[key] = len(self._times)
        self._times.append(now)
        return v

    def version(self, key: int) -> int:
        """The newest committed version of ``key`` (0: never written)."""
        return self._count.get(key, 0)

    def committed_at(self, key: int, version: int) -> float:
        """When ``version`` (1 to the newest) of ``key`` was committed."""
        v = self._count[key]
        if not 1 <= version <= v:
            raise IndexError(f"key {key} has versions 1 to {v}, not {version}")
        i = self._last[key]
        prev = self._prev
        for _ in range(v - version):
            i = prev[i]
        return self._times[i]

    def age(self, key: int, seen: int, now: float) -> float:
        """How long a read at ``now`` that returns version ``seen`` of ``key`` is behind: 0.0
        when ``seen`` is the newest version, else ``now`` minus the commit time of version
        ``seen + 1``."""
        if seen >= self._count.get(key, 0):
            return 0.0
        return now - self.committed_at(key, seen + 1)

    def writes(self) -> int:
        """Versions committed in all (every key)."""
        return len(self._times)


class Sessions:
    """What each client session has written and read, for the session guarantees.

    A request's session is its key when the request class says ``session: key`` (a client
    that reads and writes its own record: a profile, a cart). ``wrote[s]`` is the newest
    version the session's own acknowledged writes made; ``read[s]`` the newest version it has
    read. A read that returns a version older than ``wrote[s]`` violates read-your-writes; one
    older than ``read[s]`` violates monotonic reads.
    """

    __slots__ = ("wrote", "read")

    def __init__(self) -> None:
        self.wrote: dict[int, int] = {}
        self.read: dict[int, int] = {}

    def wrote_version(self, session: int, version: int) -> None:
        if version > self.wrote.get(session, 0):
            self.wrote[session] = version

    def check_read(self, session: int, version: int) -> tuple[bool, bool]:
        """Record a read of ``version`` by ``session``; returns (read-your-writes violated,
        monotonic reads violated)."""
        ryw = version < self.wrote.get(session, 0)
        last = self.read.get(session, 0)
        mono = version < last
        if version > last:
            self.read[session] = version
        return ryw, mono


class ReadLog:
    """The reads one component served, per request class (counted from the warm-up on)."""

    __slots__ = ("component", "warmup", "reads", "stale", "ages", "ryw", "mono", "session_reads",
                 "lost_writes")

    def __init__(self, component: str, n_classes: int, warmup: float):
        self.component = component
        self.warmup = warmup
        self.reads = [0] * n_classes
        self.stale = [0] * n_classes
        self.ages = [array("d") for _ in range(n_classes)]  # the stale reads' ages (s)
        self.ryw = [0] * n_classes
        self.mono = [0] * n_classes
        self.session_reads = [0] * n_classes  # reads whose request carried a session
        self.lost_writes = 0  # acknowledged writes lost with the copy (a write-back cache)

    def read(self, cls: int, age: float, now: float) -> None:
        """A read of class ``cls`` at ``now`` returned a value ``age`` seconds behind (0: fresh)."""
        if now < self.warmup:
            return
        self.reads[cls] += 1
        if age > 0.0:
            self.stale[cls] += 1
            self.ages[cls].append(age)

    def session(self, cls: int, ryw: bool, mono: bool, now: float) -> None:
        """The session-guarantee verdict of a read counted by :meth:`read`."""
        if now < self.warmup:
            return
        self.session_reads[cls] += 1
        if ryw:
            self.ryw[cls] += 1
        if mono:
            self.mono[cls] += 1

    def rows(self, classes: list[str]) -> list[dict[str, Any]]:
        """One plain record per class with reads (the stale share and the age percentiles)."""
        out = []
        for c, name in enumerate(classes):
            n = self.reads[c]
            if not n:
                continue
            out.append(_row(self.component, name, n, self.stale[c], np.frombuffer(self.ages[c], dtype=float),
                            self.session_reads[c], self.ryw[c], self.mono[c]))
        return out


def _row(component: str, cls: str, reads: int, stale: int, ages: np.ndarray, session_reads: int,
         ryw: int, mono: int) -> dict[str, Any]:
    has = len(ages) > 0
    return {
        "component": component,
        "class": cls,
        "reads": int(reads),
        "stale": int(stale),
        "stale_fraction": stale / reads if reads else float("nan"),
        "age_mean_ms": float(ages.mean()) * 1e3 if has else float("nan"),
        "age_p50_ms": float(np.percentile(ages, 50)) * 1e3 if has else float("nan"),
        "age_p99_ms": float(np.percentile(ages, 99)) * 1e3 if has else float("nan"),
        "age_max_ms": float(ages.max()) * 1e3 if has else float("nan"),
        "session_reads": int(session_reads),
        "read_your_writes_violations": int(ryw),
        "monotonic_read_violations": int(mono),
    }


class Freshness:
    """The run's freshness accounting: one :class:`KeyClock` per system of record, one
    :class:`ReadLog` per component that serves reads from copies, and the sessions."""

    def __init__(self, n_classes: int, warmup: float):
        self.n_classes = n_classes
        self.warmup = warmup
        self.clocks: dict[str, KeyClock] = {}
        self.logs: dict[str, ReadLog] = {}
        self.sessions: dict[str, Sessions] = {}
        # the version the last read served returned (a side channel: a copy that serves a
        # read sets it just before it returns; a caller that keeps the value, a cache filling
        # an entry, reads it as soon as the call returns, in the same step of the request's
        # task, see :meth:`served` and :meth:`returned`)
        self.last_owner: str | None = None
        self.last_key = -1
        self.last_version = 0

    def served(self, owner: str, key: int, version: int) -> None:
        """A read of ``key`` from the data of ``owner`` returned ``version``."""
        self.last_owner, self.last_key, self.last_version = owner, key, version

    def returned(self, owner: str, key: int) -> int:
        """The version of ``key`` that the read just returned: the one :meth:`served` noted
        if it was of this key and owner, else the newest committed version (a call path that
        returned through a wait: the value is taken as fresh as the store's)."""
        if self.last_key == key and self.last_owner == owner:
            self.last_key = -1
            return self.last_version
        return self.clock(owner).version(key)

    def clock(self, owner: str) -> KeyClock:
        """The key clock of the system of record ``owner`` (made on first use)."""
        c = self.clocks.get(owner)
        if c is None:
            c = self.clocks[owner] = KeyClock()
        return c

    def log(self, component: str) -> ReadLog:
        """The read log of ``component`` (made on first use)."""
        g = self.logs.get(component)
        if g is None:
            g = self.logs[component] = ReadLog(component, self.n_classes, self.warmup)
        return g

    def session_book(self, owner: str) -> Sessions:
        """The sessions' writes and reads of the keys of ``owner``."""
        s = self.sessions.get(owner)
        if s is None:
            s = self.sessions[owner] = Sessions()
        return s

    def rows(self, classes: list[str]) -> list[dict[str, Any]]:
        """Per component and class, then per component over all classes (``class`` = ``all``)."""
        out: list[dict[str, Any]] = []
        for g in self.logs.values():
            per = g.rows(classes)
            out += per
            if len(per) > 1:
                ages = np.concatenate([np.frombuffer(a, dtype=float) for a in g.ages])
                out.append(_row(g.component, "all", sum(g.reads), sum(g.stale), ages,
                                sum(g.session_reads), sum(g.ryw), sum(g.mono)))
        return out

    def per_class(self, classes: list[str], behind: dict[str, set[str]] | None = None) -> dict[str, float]:
        """The stale share of reads per class (and ``all``): the ``stale_reads`` column of the
        summary. A class with no tracked reads has 0.0.

        A read is counted where its value leaves the copies for the caller: a component that
        serves reads behind another that logs them (a store behind a cache: the cache logs
        the version the store returned on a miss) is left out for the classes both log, so
        that no read counts twice. ``behind[x]`` is the set of components whose calls reach
        ``x`` (directly or not)."""
        behind = behind or {}
        reads = [0] * len(classes)
        stale = [0] * len(classes)
        for name, g in self.logs.items():
            front = [o for o in behind.get(name, ()) if o in self.logs and o != name]
            for c in range(len(classes)):
                if any(self.logs[o].reads[c] for o in front):
                    continue  # (these reads were counted in front of it)
                reads[c] += g.reads[c]
                stale[c] += g.stale[c]
        out = {name: (stale[c] / reads[c] if reads[c] else 0.0) for c, name in enumerate(classes)}
        out["all"] = sum(stale) / sum(reads) if sum(reads) else 0.0
        return out

    def lost_writes(self) -> dict[str, int]:
        return {n: g.lost_writes for n, g in self.logs.items() if g.lost_writes}
