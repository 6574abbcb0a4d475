"""The datastore kind: shards on a consistent-hash ring, each shard a list of replica pools
(replica 0 the primary). Writes go to the primary and are copied to the other replicas
(synchronously or not); reads go to any live replica or to the primary only. A dead primary
is replaced by a live replica after the failover time.

A store that sets any of the replication features (``lag``, ``quorum``, ``scatter_gather``, a
``replication`` of ``semi_sync``/``majority``, ``read_from: bounded_staleness`` or
``read_your_writes``), or runs with freshness accounting, serves through :meth:`Datastore._serve_repl`
instead, chosen at construction; a design without them runs the plain path as before.

Versions (when freshness is tracked): a write commits a version of its key at the primary
when the primary's visit ends (a quorum write: at its W-th acknowledgement); each replica
applies it when its copy's service ends, and keeps the newest version it has applied per key
(a later copy never undoes a newer one). A read is stale when it returns a version older
than the one committed when it reached the store; its age is how long the first version it
missed had existed. Each replica keeps, in send order, the commit times of the writes in
flight to it: its lag is now minus the oldest of them (0 with none in flight).

Regions: a design with regions always serves through the replication path, and each caller
region calls the store through its own entry point (:meth:`Datastore.serve_from`, chosen at
wiring), which takes the one-way time to the copy that serves the call and back: a write's
leader (the shard's current primary; with ``leaders: per_region`` the leader of the caller's
region, the first copy there, which commits it and copies it to every other copy), a read's
copy by the read policy among the nearest region's. With leaders per region the one key
clock orders the versions by commit time (last writer wins); a write that commits at a
leader which has not yet received the key's newest version is a conflict.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from simpy.events import Event

from ..model.dists import sampler
from ..model.keys import shard_of_keys
from ..model.metrics import ratio
from ..model.status import FAILED, OK
from ..runtime.hops import ASYNC, COPY
from ..runtime.pickers import make_live_picker, make_picker
from ..runtime.pools import ANY, INF, Pool
from ..runtime.streams import integer_sampler
from ..runtime.tasks import gather, spawn
from .base import Kind, Route, Station
from .registry import register


def _shard_shares(spec: Any, flows: dict[str, Any], classes: list[str]) -> dict[str, np.ndarray]:
    """Per class with visits, the share of its visits that each shard receives: from the
    hash-ring placement of its key popularity, or even for a class without keys."""
    n_keys = max((len(f.keys) for f in flows.values() if f.keys is not None), default=0)
    shard_of = shard_of_keys(n_keys, spec.shards, spec.vnodes) if n_keys else None
    out: dict[str, np.ndarray] = {}
    for c in classes:
        f = flows[c]
        if f.rate <= 0:
            continue
        if f.keys is not None and shard_of is not None:
            share = np.bincount(shard_of[: len(f.keys)], weights=f.keys, minlength=spec.shards)
            out[c] = share / share.sum()
        else:
            out[c] = np.full(spec.shards, 1.0 / spec.shards)
    return out


@register
class Datastore(Kind):
    kind = "datastore"
    label = "datastore"
    colour = "#dcefdc"
    routes_internally = True
    count_fields = ("shards", "replicas")

    def __init__(self, sim: Any, name: str, spec: Any):
        super().__init__(sim, name, spec)
        self.shards = spec.shards
        self.replicas: list[list[Pool]] = [
            self.pools[s * spec.replicas:(s + 1) * spec.replicas] for s in range(spec.shards)]
        n_keys = max((rc.keys.count for rc in sim.spec.workload.requests.values() if rc.keys), default=0)
        self.shard_of = array("i", shard_of_keys(n_keys, spec.shards, spec.vnodes).tolist())
        self.shard_load = [0] * spec.shards
        self._rand_shard = integer_sampler(sim.rng(name, "shard"), spec.shards)
        self.is_write = [sim.spec.workload.op(c) == "write" for c in sim.classes]
        # the cluster's view: the primary of each shard and the replicas it knows are alive
        self.primary: list[Pool] = [reps[0] for reps in self.replicas]
        self.members: list[list[Pool]] = [list(reps) for reps in self.replicas]
        self.readable: list[list[Pool]] = [
            m if spec.read_from != "primary" else [self.primary[s]] for s, m in enumerate(self.members)]
        self.read_pick = [make_live_picker(spec.policy, self.readable[s], sim.rng(name, "replica", s))
                          for s in range(spec.shards)]
        self.sync = spec.replication == "sync"
        self._no_calls: list = []
        self.failovers: list[tuple[float, int, str, str]] = []  # (time, shard, old, new primary)
        # the replication features (one helper object; None: the plain path as before)
        self.repl: _Replication | None = None
        if _needs_repl(sim, spec):
            self.repl = _Replication(self, sim, spec)
            self.serve = self._serve_quorum if spec.quorum is not None else self._serve_repl

    def start(self) -> None:
        super().start()
        if self.repl is not None:
            self.repl.locate(self, self.sim)

    @property
    def commits_writes(self) -> bool:
        """Whether the store commits its writes' versions in its key clock (with freshness
        accounting): a cache in front of it then leaves them to it."""
        return self.repl is not None and self.repl.track

    def make_pools(self) -> list[Pool]:
        s = self.spec
        qlimit = INF if s.queue is None else s.queue
        return [Pool(f"{self.name}.shard{i}.replica{r}", s.workers, qlimit, s.zone_of(r))
                for i in range(s.shards) for r in range(s.replicas)]

    def picker(self, policy: str | None = None, tag: str | int = "") -> Callable[[], Pool]:
        return itertools.repeat(ANY).__next__

    def serve(self, pool: Pool | None, cls: int, key: int, parent: int):
        if key >= 0:
            shard = self.shard_of[key] if self.shards > 1 else 0
        else:
            shard = self._rand_shard() if self.shards > 1 else 0
        self.shard_load[shard] += 1
        if self.is_write[cls]:
            primary = self.primary[shard]
            status = yield self._serve(primary, cls, key, parent, self.calls[cls], self.fwd[cls])
            members = self.members[shard]
            if status == OK and len(members) > 1:
                env = self.env
                # the copies' hop rows hang off the primary's visit (the row just written)
                up = self.hops.last_id() * 4 + (COPY if self.sync else ASYNC) if parent >= 0 else -1
                copies = [spawn(env, self._serve(r, cls, key, up, self._no_calls, self._no_calls, False))
                          for r in members if r is not primary]
                if self.sync:
                    return gather(env, copies)  # hands over: a failed copy fails the write
            return status
        replica = self.read_pick[shard]()
        if replica is None:
            self.arrived += 1
            return FAILED  # no live copy of this shard
        return self._serve(replica, cls, key, parent, self.calls[cls], self.fwd[cls])  # hands over

    # -- the replication features (see the module docstring)
    def _shard_of(self, key: int) -> int:
        if self.shards == 1:
            return 0
        return self.shard_of[key] if key >= 0 else self._rand_shard()

    def _serve_repl(self, pool: Pool | None, cls: int, key: int, parent: int):
        """``serve`` of a primary-replica store with replication features."""
        if self.is_write[cls]:
            shard = self._shard_of(key)
            self.shard_load[shard] += 1
            return self._write(shard, cls, key, parent, self.primary[shard])
        if self.repl.scatter:
            for s in range(self.shards):
                self.shard_load[s] += 1
            return self._scatter(cls, key, parent)
        shard = self._shard_of(key)
        self.shard_load[shard] += 1
        return self._read(shard, cls, key, parent)

    def _write(self, shard: int, cls: int, key: int, parent: int, primary: Pool):
        """A write of ``shard``'s key at ``primary`` (the shard's primary, or with
        ``leaders: per_region`` the leader of the caller's region), then its copies."""
        rp = self.repl
        env = self.env
        status = yield self._serve(primary, cls, key, parent, self.calls[cls], self.fwd[cls])
        if status != OK:
            return status
        track = rp.track and key >= 0
        v = 0
        if track:
            if rp.multi and rp.applied[rp.index[primary]].get(key, 0) < rp.clock.version(key):
                rp.conflicts += 1  # a newer write committed at another leader has not reached this one
            v = rp.clock.commit(key, env._now)
            rp.applied[rp.index[primary]][key] = v
        others = [r for r in self.members[shard] if r is not primary]
        need = rp.acks(len(others))
        if need > len(others):
            return FAILED  # a majority of the copies is not in the cluster
        if others:
            waits = need > 0
            up = self.hops.last_id() * 4 + (COPY if waits else ASYNC) if parent >= 0 else -1
            src = rp.index[primary]
            q = _Acks(env, need, len(others)) if waits and not rp.all else None
            copies = [spawn(env, self._copy(src, r, cls, key, v, up, q, waits)) for r in others]
            if rp.all:
                status = yield gather(env, copies)  # sync: a failed copy fails the write
            elif q is not None:
                yield q.ev
                status = q.status
        if track and status == OK and rp.session[cls]:
            rp.book.wrote_version(key, v)
        return status

    def _copy(self, src: int, dst: Pool, cls: int, key: int, v: int, up: int, q: _Acks | None,
              ack: bool):
        """A write's copy to replica ``dst``: the network, the replica's queue and service,
        then (when the write waits for it) the acknowledgement's way back."""
        rp = self.repl
        i = rp.index[dst]
        seq = rp.send(i, self.env._now) if rp.track else 0
        d = rp.delay(src, i)
        if d > 0.0:
            origin = self.pools[src]
            epoch = origin.epoch
            yield d
            if origin.epoch != epoch:  # the primary crashed with the copy still on its way: lost
                if rp.track:
                    rp.finish(i, seq)
                if q is not None:
                    q.one(FAILED, 0)
                return FAILED
        status = yield self._serve(dst, cls, key, up, self._no_calls, self._no_calls, False)
        if rp.track:
            if status == OK and v:
                rp.apply(i, key, v)
            rp.finish(i, seq)
        if ack:
            d = rp.delay(i, src)
            if d > 0.0:
                yield d
        if q is not None:
            q.one(status, 0)
        return status

    def _choose(self, shard: int, cls: int, key: int, ctx: _FromRegion | None = None) -> Pool | None:
        """The replica a read goes to, by the read policy (``ctx``: for callers in one region,
        their region's copies first, and their leader as the fallback)."""
        rp = self.repl
        if ctx is None:
            pick = self.read_pick[shard]
            home = self.primary
        else:
            pick = ctx.picks[shard]
            home = ctx.lead
        if rp.policy == _BOUNDED:
            now = self.env._now
            for _ in range(len(self.members[shard])):
                r = pick()
                if r is None:
                    break
                if rp.lag(rp.index[r], now) <= rp.max_staleness:
                    return r
            return home[shard]  # every replica tried lags too far
        if rp.policy == _RYW and key >= 0 and rp.session[cls]:
            need = rp.book.wrote.get(key, 0)
            if need:
                for _ in range(len(self.members[shard])):
                    r = pick()
                    if r is None:
                        break
                    if rp.applied[rp.index[r]].get(key, 0) >= need:
                        return r
                return home[shard]
        return pick()

    def _read(self, shard: int, cls: int, key: int, parent: int):
        replica = self._choose(shard, cls, key)
        if replica is None:
            self.arrived += 1
            return _failed()  # no live copy of this shard
        return self._read_at(replica, cls, key, parent)

    def _read_at(self, replica: Pool, cls: int, key: int, parent: int):
        """A read served by ``replica`` (its version logged, with freshness accounting)."""
        rp = self.repl
        if not rp.track or key < 0:
            return self._serve(replica, cls, key, parent, self.calls[cls], self.fwd[cls])
        v0 = rp.clock.version(key)
        w0 = rp.book.wrote.get(key, 0) if rp.session[cls] else 0
        status = yield self._serve(replica, cls, key, parent, self.calls[cls], self.fwd[cls])
        if status == OK:
            rp.read(cls, key, v0, w0, rp.applied[rp.index[replica]].get(key, 0), self.env._now)
        return status

    def _scatter(self, cls: int, key: int, parent: int, via: Any = None):
        """A read that asks every shard at once and waits for the slowest (``via``: from a
        caller region, each shard's copy picked there first, with the trips to it)."""
        env = self.env
        tasks = []
        far = 0.0
        for s in range(self.shards):
            r = self.read_pick[s]() if via is None else via.ctx.picks[s]()
            if r is None:
                self.arrived += 1
                return FAILED  # a shard with no live copy
            gen = self._serve(r, cls, key, parent, self.calls[cls], self._no_calls)
            if via is not None:
                d = via.row[self.repl.index[r]]
                if d > 0.0:
                    gen = _trip(d, gen)
                    far = max(far, d)
            tasks.append(spawn(env, gen))
        if far > 0.0:
            via.crossed += 1
            via.added += 2.0 * far
        status = yield gather(env, tasks)  # the first failure, else OK
        return status

    # -- calls from a region (see :class:`~simarch.runtime.regions.PlacedServe`)
    def serve_from(self, via: Any) -> Callable:
        """The entry point of the callers in region ``via.rix``, built at wiring: each call
        takes the one-way time from the caller's region to the copy that serves it before the
        visit, and back after the op (a write: to the shard's current primary, or with
        ``leaders: per_region`` to the caller region's leader; a read: to the copy the read
        policy picks among the nearest region's copies that are up)."""
        rp = self.repl
        rp.place(self)
        via.ctx = _FromRegion(self, via.rix)
        return self._enter_quorum if self.spec.quorum is not None else self._enter

    def _enter(self, via: Any, cls: int, key: int, parent: int):
        ctx = via.ctx
        rp = self.repl
        if self.is_write[cls]:
            shard = self._shard_of(key)
            self.shard_load[shard] += 1
            lead = ctx.lead[shard]
            d = via.row[rp.index[lead]]
            if d > 0.0:
                via.crossed += 1
                via.added += 2.0 * d
                return _trip(d, self._write(shard, cls, key, parent, lead))
            return self._write(shard, cls, key, parent, lead)
        if rp.scatter:
            for s in range(self.shards):
                self.shard_load[s] += 1
            return self._scatter(cls, key, parent, via)
        shard = self._shard_of(key)
        self.shard_load[shard] += 1
        replica = self._choose(shard, cls, key, ctx)
        if replica is None:
            self.arrived += 1
            return _failed()  # no live copy of this shard
        d = via.row[rp.index[replica]]
        if d > 0.0:
            via.crossed += 1
            via.added += 2.0 * d
            return _trip(d, self._read_at(replica, cls, key, parent))
        return self._read_at(replica, cls, key, parent)

    def _enter_quorum(self, via: Any, cls: int, key: int, parent: int):
        """A quorum op from a caller region: the caller's region coordinates it, each copy's
        legs take the one-way time between the caller's region and the copy's."""
        shard = self._shard_of(key)
        self.shard_load[shard] += 1
        rp = self.repl
        write = self.is_write[cls]
        add = via.ctx.q_added[1 if write else 0]
        if add > 0.0:
            via.crossed += 1
            via.added += add
        return self._quorum_op(self.replicas[shard], cls, key, parent, rp.w if write else rp.r, write,
                               via.row)

    def _serve_quorum(self, pool: Pool | None, cls: int, key: int, parent: int):
        """``serve`` of a quorum store: the op goes to every copy of its shard and ends with
        the R-th (read) or W-th (write) answer; it fails at once when fewer copies are up."""
        shard = self._shard_of(key)
        self.shard_load[shard] += 1
        rp = self.repl
        write = self.is_write[cls]
        reps = self.replicas[shard]
        return self._quorum_op(reps, cls, key, parent, rp.w if write else rp.r, write)

    def _quorum_op(self, reps: list[Pool], cls: int, key: int, parent: int, k: int, write: bool,
                   row: list[float] | None = None):
        rp = self.repl
        env = self.env
        live = 0
        for p in reps:
            if not p.down:
                live += 1
        if live < k:
            self.arrived += 1
            return FAILED  # too few copies up to answer
        track = rp.track and key >= 0
        v0 = rp.clock.version(key) if track and not write else 0
        w0 = rp.book.wrote.get(key, 0) if track and rp.session[cls] else 0
        q = _Acks(env, k, len(reps))
        for p in reps:
            spawn(env, self._qcopy(p, cls, key, parent, q, write, track, row))
        yield q.ev
        status = q.status
        if track and status == OK:
            now = env._now
            if write:
                v = q.v = rp.clock.commit(key, now)
                for i in q.early:
                    rp.apply(i, key, v)
                if rp.session[cls]:
                    rp.book.wrote_version(key, v)
            else:
                rp.read(cls, key, v0, w0, q.best, now)
        return status

    def _qcopy(self, pool: Pool, cls: int, key: int, parent: int, q: _Acks, write: bool, track: bool,
               row: list[float] | None = None):
        """One copy's part of a quorum op: the request's way there, the copy's queue and
        service (a write is applied, a read takes the copy's version, when it ends), the
        answer's way back (``row``: from and to the caller's region, else the shard's first
        copy's)."""
        rp = self.repl
        i = rp.index[pool]
        d = rp.delay(-1, i) if row is None else rp.leg(row, i)
        if d > 0.0:
            yield d
        status = yield self._serve(pool, cls, key, parent, self._no_calls, self._no_calls)
        v = 0
        if track and status == OK:
            if write:
                if q.v:
                    rp.apply(i, key, q.v)
                else:
                    q.early.append(i)  # applied before the write committed: gets its version then
            else:
                v = rp.applied[i].get(key, 0)
        d = rp.delay(i, -1) if row is None else rp.leg(row, i)
        if d > 0.0:
            yield d
        q.one(status, v)
        return status

    # -- faults and failover
    def pools_for(self, fault: Any) -> list[Pool]:
        shard = getattr(fault, "shard", None)
        if shard is not None:
            replica = getattr(fault, "replica", None)
            return [self.replicas[shard][replica]] if replica is not None else list(self.replicas[shard])
        return super().pools_for(fault)

    def crash(self, pools: list[Pool], hang: bool) -> None:
        super().crash(pools, hang)
        for p in pools:
            if self.spec.failover is not None and p.down == 1 and self.spec.quorum is None:
                self.env.process(self._failover(p, p.epoch))

    def _shard(self, pool: Pool) -> int:
        return self.pools.index(pool) // self.spec.replicas

    def _failover(self, pool: Pool, epoch: int):
        """After the failover time, a still-dead copy leaves the cluster; a dead primary is
        replaced by the first live replica (writes to the shard fail until then)."""
        yield self.env.timeout(self.spec.failover)
        if not pool.down or pool.epoch != epoch:
            return
        s = self._shard(pool)
        members = self.members[s]
        if pool in members:
            members.remove(pool)
        rp = self.repl
        was_primary = self.primary[s] is pool
        if was_primary:
            live = [p for p in members if not p.down]
            if live:
                self.primary[s] = live[0]
                self.failovers.append((self.env.now, s, pool.name, live[0].name))
                if rp is not None and rp.track and not rp.multi:
                    rp.promoted(pool, live[0])
                if self.spec.read_from == "primary":
                    self.readable[s][:] = [live[0]]
        if rp is not None and rp.rlead is not None:
            rp.lost_leader(self, s, pool, was_primary)

    def recover(self, pools: list[Pool]) -> None:
        super().recover(pools)
        for p in pools:
            if p.down:
                continue
            s = self._shard(p)
            rp = self.repl
            if rp is not None and rp.track and self.spec.quorum is None:
                if rp.multi:  # every leader's writes
                    for q in self.members[s]:
                        if q is not p and not q.down:
                            rp.catch_up(p, q)
                elif p is not self.primary[s]:
                    rp.catch_up(p, self.primary[s])
            if p not in self.members[s]:
                self.members[s].append(p)  # rejoins as a replica
                if self.primary[s].down and self.primary[s] not in self.members[s]:
                    self.primary[s] = p  # the shard had no live primary: this copy takes over
                    self.failovers.append((self.env.now, s, "-", p.name))
                    if self.spec.read_from == "primary":
                        self.readable[s][:] = [p]
                if rp is not None and rp.rlead is not None:
                    rp.rejoined(self, s, p)

    # -- statistics
    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out["shard_load"] = list(self.shard_load)
        if self.repl is not None and self.repl.multi:
            out["conflicts"] = self.repl.conflicts
        return out

    def window_stats(self, now, then, T, row, pool_rows):
        loads = [a - b for a, b in zip(now["shard_load"], then["shard_load"], strict=True)]
        total = sum(loads)
        shards = []
        for s, ld in enumerate(loads):
            reps = pool_rows[s * self.spec.replicas:(s + 1) * self.spec.replicas]
            shards.append({
                "component": self.name,
                "shard": s,
                "requests": ld,
                "rate_rps": ld / T,
                "share": ratio(ld, total),
                "utilization": float(np.mean([r["utilization"] for r in reps])),
                "max_replica_utilization": float(max(r["utilization"] for r in reps)),
            })
        row["hottest_shard_share"] = max((r["share"] for r in shards), default=float("nan"))
        if "conflicts" in now:  # (leaders: per_region) writes that LWW set against a concurrent one
            row["conflicts"] = now["conflicts"] - then.get("conflicts", 0)
        return {"shards": shards}

    def events(self) -> list[dict[str, Any]]:
        return [{"time_s": t, "what": "failover", "where": f"{self.name}.shard{shard}",
                 "from": old, "to": new} for t, shard, old, new in self.failovers]

    # -- work estimate and static capacity model
    @classmethod
    def work_per_visit(cls, spec: Any) -> float:
        return float(spec.replicas)  # a write is copied to every replica

    @classmethod
    def extra_hold(cls, spec: Any, op: str, own: float) -> float:
        # a synchronous write waits for the copies too (as long again, in parallel; semi_sync
        # and majority taken as sync: an upper bound)
        return own if op == "write" and spec.replication != "async" and spec.replicas > 1 else 0.0

    @classmethod
    def utilization(cls, spec, name, flows, busy, classes, workload):
        """Utilisation of the busiest replica, from per-shard rates and read/write service
        times (the hottest replica decides)."""
        shares = _shard_shares(spec, flows, classes)
        if spec.scatter_gather:  # every read visits every shard
            shares = {c: (np.ones(spec.shards) if workload.op(c) != "write" else x) for c, x in shares.items()}
        work = np.zeros((spec.shards, spec.replicas))
        for c, share in shares.items():
            f = flows[c]
            op = workload.op(c)
            d = spec.service_time.lookup(c, op)
            s = d.mean if d is not None else 0.0
            shard_rate = f.rate * share
            if op == "write":
                work[:, 0] += shard_rate * s
                if spec.replicas > 1:
                    work[:, 1:] += (shard_rate * s)[:, None]
            elif spec.quorum is not None:
                work += (shard_rate * s)[:, None]  # every copy serves every quorum read
            elif spec.read_from == "primary":
                work[:, 0] += shard_rate * s
            else:
                work += (shard_rate * s / spec.replicas)[:, None]
        util = work / spec.workers
        hot_shard = int(np.unravel_index(np.argmax(util), util.shape)[0])
        share_total = util.sum(axis=1)
        note = ""
        if spec.shards > 1 and share_total.sum() > 0:
            note = (f"hottest shard {hot_shard} carries "
                    f"{share_total[hot_shard] / share_total.sum():.0%} of the work")
        return spec.shards * spec.replicas * spec.workers, float(util.max()), note

    # -- availability model
    @classmethod
    def steady_availability(cls, spec, mtbf, mttr, detect, needed, write_share, demand=None):
        """Replicas of a shard fail independently, each down a share ``u = mttr / (mtbf +
        mttr)`` of the time. A dead copy stays a member of its shard until the ``failover``
        time has passed (or its repair, when there is no failover): until then it keeps its
        share of the reads (``read_from: any`` and the other replica policies), which fail,
        so reads lose ``u^r + s (1 - u^(r-1))`` with ``s`` that member-while-dead share of
        each copy's time. Writes fail while the shard's primary is dead and not yet replaced
        (``s``), and, when the write waits for every copy's acknowledgement (``sync``; a
        ``semi_sync`` or ``majority`` write that needs all the others), while any copy is dead
        and still a member. A quorum store has no primary and no failover: an op fails when
        fewer than R (reads) or W (writes) of its N copies are up (binomial)."""
        cycle = mtbf + mttr
        r = spec.replicas
        u = mttr / cycle
        none_left = u ** r
        if spec.quorum is not None:
            rq, wq = spec.quorum_sizes

            def short(k: int) -> float:  # P(fewer than k of the r copies up)
                return sum(math.comb(r, j) * (1 - u) ** j * u ** (r - j) for j in range(k))
            read_loss, write_loss = short(rq), short(wq)
            avail = 1.0 - (1 - write_share) * read_loss - write_share * write_loss
            return avail, (f"quorum of {r} copies: reads need {rq} up, writes {wq} "
                           "(no primary, no failover)")
        stall = (mttr if spec.failover is None or r == 1 else min(spec.failover, mttr)) / cycle
        others = r - 1
        waits_all = spec.replication == "sync" or (
            others > 0 and spec.replication == "semi_sync" and others == 1) or (
            others > 0 and spec.replication == "majority" and r // 2 >= others)
        write_loss = min(1.0, none_left + stall * (r if waits_all else 1))
        if spec.read_from == "primary":
            read_loss = write_loss if not waits_all else min(1.0, none_left + stall)
        else:
            read_loss = min(1.0, none_left + (stall * (1.0 - u ** others) if r > 1 else 0.0))
        avail = 1.0 - (1 - write_share) * read_loss - write_share * write_loss
        failover = "never" if spec.failover is None else f"{spec.failover:g}s"
        return avail, (f"{r} replica(s) per shard; a dead copy fails its reads until it leaves "
                       f"the shard and writes stall {stall * cycle:.3g}s per primary failure "
                       f"(failover {failover})")

    @classmethod
    def crash_availability(cls, spec, lost, fault, detect, needed, write_share, duration):
        """A crash of a shard's copies: with none left its keys fail; the dead copies fail
        their share of the reads until the failover takes them out of the shard (the whole
        crash without a failover); with the primary among them, writes stall until the
        failover promotes a live replica. A quorum store loses an op only when fewer than R
        (W) copies are left."""
        shards = 1.0 / spec.shards if fault.shard is not None else 1.0
        if fault.zone is not None or getattr(fault, "region", None) is not None:
            primary = spec.zone_of(0) == fault.zone if fault.zone is not None else True
        else:
            primary = getattr(fault, "replica", None) in (None, 0)
        if lost >= spec.replicas:
            return 1.0 - shards, f"every copy of {shards:.0%} of the keys down"
        if spec.quorum is not None:
            rq, wq = spec.quorum_sizes
            left = spec.replicas - lost
            loss = (1 - write_share) * (left < rq) + write_share * (left < wq)
            return 1.0 - shards * loss, f"{lost} of {spec.replicas} copies down, {left} answer"
        stall = 1.0 if spec.failover is None else min(1.0, spec.failover / duration) if duration > 0 else 0.0
        if spec.read_from == "primary":
            read_loss = stall if primary else 0.0
        else:
            read_loss = stall * lost / spec.replicas  # their share of the reads, until they leave
        write_loss = stall if primary or spec.replication == "sync" else 0.0
        loss = (1 - write_share) * read_loss + write_share * write_loss
        return 1.0 - shards * loss, (f"{lost} of {spec.replicas} replicas down, their reads fail "
                                     "until the failover" + (", writes stall until then" if primary else ""))

    # -- queueing model
    @classmethod
    def queueing_layout(cls, spec, flows, classes, workload, policy):
        """One station per replica (``shard * replicas + replica``, replica 0 the primary):
        a class's visits go to the shards by the hash-ring placement of its key popularity;
        reads spread evenly over the replicas of their shard (``read_from: any``) or go to
        the primary; writes go to the primary, and every other replica of the shard serves a
        copy (the write waits for them with ``replication: sync``). With the round-robin
        policy each replica gets every r-th read of its shard (gaps of squared coefficient of
        variation 1/r); a replica's arrivals mix that with the Poisson writes and copies."""
        r = spec.replicas
        shares = _shard_shares(spec, flows, classes)
        # semi_sync and majority taken as sync (an upper bound); a quorum op goes to every
        # copy and is taken to wait for all of them (an upper bound unless R or W is N)
        sync = (spec.replication != "async" or spec.quorum is not None) and r > 1
        quorum = spec.quorum is not None
        # the replication network, there and back, of each copy an op waits for
        net = spec.lag.network if spec.lag is not None else None
        leg = (2.0 * net.mean, 2.0 * net.variance) if net is not None else (0.0, 0.0)
        read_scv = 1.0 / r if spec.policy == "round_robin" else 1.0
        rate = np.zeros(spec.shards * r)  # visits per replica at unit load, and their gaps' SCV
        scv_rate = np.zeros(spec.shards * r)
        routes: dict[str, list[Route]] = {}
        for c in classes:
            share = shares.get(c)
            if share is None:
                share = np.full(spec.shards, 1.0 / spec.shards)
            f = flows[c].rate
            out: list[Route] = []
            write = workload.op(c) == "write"
            for s_, x in enumerate(share.tolist()):
                if not x > 0:
                    continue
                base = s_ * r
                if write or quorum:
                    need = (spec.quorum_sizes[1] if write else spec.quorum_sizes[0]) if quorum else 0
                    out.append(Route(x, base, tuple(range(base + 1, base + r)), sync, need, leg))
                    rate[base:base + r] += f * x
                    scv_rate[base:base + r] += f * x
                elif spec.read_from == "primary":
                    out.append(Route(x, base))
                    rate[base] += f * x
                    scv_rate[base] += f * x
                else:
                    out.extend(Route(x / r, base + j) for j in range(r))
                    rate[base:base + r] += f * x / r
                    scv_rate[base:base + r] += f * x / r * read_scv
            routes[c] = out
        scv = np.where(rate > 0, scv_rate / np.where(rate > 0, rate, 1.0), 1.0)
        stations = [Station(spec.workers, spec.queue, 1, float(v)) for v in scv.tolist()]
        return stations, routes

    # -- SPOF analysis
    @classmethod
    def redundancy(cls, spec, name, comp):
        if comp.replicas < 2:
            return False, comp.replicas, (f"one copy per shard: each of the {comp.shards} shard(s) is a "
                                          "single point of failure for its keys")
        if comp.failover is None:
            return False, comp.replicas, "replicas but no automatic failover: a dead primary stops writes"
        return True, comp.replicas, f"{comp.replicas} replicas per shard, failover in {comp.failover:g}s"

    @classmethod
    def spof_crash(cls, name, comp):
        return ({"kind": "crash", "target": name, "shard": 0, "replica": 0},
                "shard 0 primary" if comp.replicas > 1 else "shard 0")


_ANY, _BOUNDED, _RYW = 0, 1, 2


def _failed():
    """A visit that fails at once (a request generator: ``serve`` must hand one over)."""
    return FAILED
    yield  # (a generator)


def _needs_repl(sim: Any, spec: Any) -> bool:
    """Whether the store serves through the replication path (else the plain one); a design
    with regions always does (its callers' trips to the copies are the store's business)."""
    return (spec.quorum is not None or spec.scatter_gather or spec.lag is not None
            or spec.replication in ("semi_sync", "majority")
            or spec.read_from in ("bounded_staleness", "read_your_writes")
            or sim.freshness is not None or sim.spec.regions is not None)


def _trip(d: float, gen: Any):
    """A call from another region: ``d`` (one way) to the copy, the op, ``d`` back."""
    yield d
    status = yield gen
    yield d
    return status


class _FromRegion:
    """What the calls from one caller region use (built at wiring): per shard, the pick of
    the copy a read goes to (the region's own copies first, then the nearest region's with one
    up; ``read_from: primary``: the leader), and ``lead``, the copy each shard's writes go to
    (the shard's primary; with ``leaders: per_region`` the caller region's leader), a list
    the failovers update in place. ``q_added``: a quorum read's and write's added round trip
    (the R-th and W-th nearest copy's)."""

    __slots__ = ("picks", "lead", "q_added")

    def __init__(self, store: Datastore, rix: int):
        rp = store.repl
        spec = store.spec
        self.lead: list[Pool] = rp.leads[rix] if rp.rlead is not None and rix >= 0 else store.primary
        self.picks: list[Callable[[], Pool | None]]
        if spec.read_from == "primary":
            self.picks = [functools.partial(operator.getitem, self.lead, s) for s in range(store.shards)]
        elif rix < 0:
            self.picks = store.read_pick
        else:
            order = rp.order[rix]
            self.picks = [_nearest_picker(store, s, rix, order) for s in range(store.shards)]
        self.q_added = (0.0, 0.0)
        if spec.quorum is not None and rix >= 0:
            sim = store.sim
            trips = sorted(sim.regions.rtt_of(rix, p.rix) for p in store.replicas[0])
            self.q_added = (trips[rp.r - 1], trips[rp.w - 1])


def _nearest_picker(store: Datastore, s: int, rix: int, order: list[int]) -> Callable[[], Pool | None]:
    """The read pick of shard ``s`` for callers in region ``rix``: by the store's policy among
    the copies of the nearest region (in ``order``) that has one up; with none up, the plain
    pick (which fails)."""
    spec = store.spec
    cands = []
    for r in order:
        group = [p for p in store.replicas[s] if p.rix == r]
        if group:
            cands.append((group, make_picker(spec.policy, group,
                                             store.sim.rng(store.name, "replica", "region", rix, s, r))))
    fallback = store.read_pick[s]
    if len(cands) == 1 and len(cands[0][0]) == 1:
        only = cands[0][0][0]

        def pick_one() -> Pool | None:
            return only if not only.down else fallback()
        return pick_one

    def pick() -> Pool | None:
        for group, pk in cands:
            for p in group:
                if not p.down:
                    return pk()
        return fallback()
    return pick


class _Acks:
    """The answers a replicated op waits for: done when ``need`` copies answered OK (status
    OK) or when too many failed to get there (the failure's status). ``best`` is the newest
    version among the OK answers counted (a quorum read's result); ``v`` and ``early`` are a
    quorum write's version, once committed, and the copies that applied it before."""

    __slots__ = ("ev", "need", "spare", "status", "best", "v", "early")

    def __init__(self, env: Any, need: int, n: int):
        self.ev = Event(env)
        self.need = need
        self.spare = n - need
        self.status: int | None = None
        self.best = 0
        self.v = 0
        self.early: list[int] = []

    def one(self, status: int, version: int) -> None:
        if self.status is not None:
            return  # (already decided: a late answer)
        if status == OK:
            if version > self.best:
                self.best = version
            self.need -= 1
            if not self.need:
                self.status = OK
                self.ev.succeed()
        else:
            self.spare -= 1
            if self.spare < 0:
                self.status = status
                self.ev.succeed()


class _Replication:
    """The replication state of one datastore (versions per replica, the writes in flight
    to each, the network of the replication stream), indexed by the store's pool number."""

    def __init__(self, store: Datastore, sim: Any, spec: Any):
        fr = sim.freshness
        # with freshness accounting every store commits its writes' versions (a cache in
        # front of it reads them); a store with copies that can lag also logs its reads
        self.track = fr is not None
        self.logs_reads = spec.replicas > 1 or spec.quorum is not None
        self.fr = fr
        name = store.name
        n = len(store.pools)
        self.index: dict[Pool, int] = {p: i for i, p in enumerate(store.pools)}
        self.scatter = spec.scatter_gather
        self.policy = {"bounded_staleness": _BOUNDED, "read_your_writes": _RYW}.get(spec.read_from, _ANY)
        self.max_staleness = spec.max_staleness if spec.max_staleness is not None else 0.0
        self.replication = spec.replication
        self.all = spec.replication == "sync"
        self.replicas = spec.replicas
        if spec.quorum is not None:
            self.r, self.w = spec.quorum_sizes
        # the network of the replication stream: one draw per leg, from its own stream
        self.net: Callable[[], float] | None = (
            sampler(spec.lag.network, sim.rng(name, "lag", "network")) if spec.lag is not None else None)
        self.region: list[list[float]] | None = None  # (set by :meth:`locate`)
        # leaders per region (``leaders: per_region``): the writes that LWW set against a
        # concurrent one, and, once callers in regions are wired (:meth:`place`), the regions
        # with copies nearest first per caller region, each region's leader per shard
        # (``rlead[s][r]``, None: no live copy there) and the leader each caller region's
        # writes go to (``leads[u][s]``)
        self.multi = spec.leaders == "per_region"
        self.conflicts = 0
        self.order: list[list[int]] | None = None
        self.rlead: list[list[Pool | None]] | None = None
        self.leads: list[list[Pool]] = []
        self.applied: list[dict[int, int]] = [{} for _ in range(n)]
        self.fifo: list[deque] = [deque() for _ in range(n)]
        self.head = [0] * n
        self.sent = [0] * n
        self.done: list[set[int]] = [set() for _ in range(n)]
        if self.track:
            self.clock = fr.clock(name)
            self.log = fr.log(name)
            self.book = fr.session_book(name)
            self.name = name
            reqs = sim.spec.workload.requests
            self.session = [reqs[c].session is not None for c in sim.classes]
        else:
            self.session = [False] * len(sim.classes)

    def locate(self, store: Datastore, sim: Any) -> None:
        """In a design with regions (pools know their regions once the run is built): the
        one-way delay between the copies of each shard (and, at index -1, to the shard's
        first copy, a quorum op's coordinator)."""
        if getattr(sim, "regions", None) is None:
            return
        pools = store.pools
        r = self.replicas
        self.region = [[float(sim.region_delay(pools[i], pools[(i // r) * r + j])) for j in range(r)]
                       for i in range(len(pools))]

    def place(self, store: Datastore) -> None:
        """At wiring, once the pools know their regions (idempotent): the regions with copies
        nearest first from each region and, with leaders per region, the leaders."""
        if self.order is not None:
            return
        regions = store.sim.regions
        k = len(regions.names)
        have = sorted({p.rix for p in store.replicas[0] if p.rix >= 0})
        self.order = [sorted(have, key=lambda r, u=u: (regions.rtt_of(u, r), r != u, r)) for u in range(k)]
        if not self.multi:
            return
        self.rlead = []
        for reps in store.replicas:
            first: list[Pool | None] = [None] * k
            for p in reps:
                if p.rix >= 0 and first[p.rix] is None:
                    first[p.rix] = p
            self.rlead.append(first)
        self.leads = [list(store.primary) for _ in range(k)]
        for s in range(store.shards):
            self._route(store, s)

    def _route(self, store: Datastore, s: int) -> None:
        """Shard ``s``'s writes from each caller region: to the leader of the nearest region
        that has one (none anywhere: the shard's primary)."""
        first = self.rlead[s]
        for u, order in enumerate(self.order):
            self.leads[u][s] = next((first[r] for r in order if first[r] is not None), store.primary[s])

    def lost_leader(self, store: Datastore, s: int, pool: Pool, was_primary: bool) -> None:
        """A dead copy left shard ``s``'s cluster: if it led its region, the region's next live
        copy leads (none: the region's writes go to the nearest other leader)."""
        r = pool.rix
        if r < 0 or self.rlead[s][r] is not pool:
            return
        new = next((p for p in store.members[s] if p.rix == r and not p.down), None)
        self.rlead[s][r] = new
        self._route(store, s)
        if not was_primary:  # (a primary's failover is logged already)
            store.failovers.append((store.env.now, s, pool.name, new.name if new is not None else "-"))

    def rejoined(self, store: Datastore, s: int, pool: Pool) -> None:
        """A copy back in shard ``s``'s cluster leads its region if no copy there does."""
        r = pool.rix
        if r >= 0 and self.rlead[s][r] is None:
            self.rlead[s][r] = pool
            self._route(store, s)

    def leg(self, row: list[float], i: int) -> float:
        """One leg between a caller region and pool ``i`` (``row``: the one-way times from it)."""
        d = self.net() if self.net is not None else 0.0
        return d + row[i]

    def acks(self, others: int) -> int:
        """How many replica copies a write waits for, besides the primary's."""
        m = self.replication
        if m == "async":
            return 0
        if m == "semi_sync":
            return min(1, others)
        if m == "majority":
            return self.replicas // 2  # with the primary, a majority of the copies
        return others

    def delay(self, src: int, dst: int) -> float:
        """One leg of the replication stream between pool numbers ``src`` and ``dst``
        (``-1``: the op's coordinator, at the shard's first copy)."""
        d = self.net() if self.net is not None else 0.0
        if self.region is not None:
            r = self.replicas
            if src < 0:
                d += self.region[(dst // r) * r][dst % r]
            elif dst < 0:
                d += self.region[src][0]
            else:
                d += self.region[src][dst % r]
        return d

    def send(self, i: int, now: float) -> int:
        """A write committed at ``now`` is in flight to pool ``i``: its place in the queue."""
        self.fifo[i].append(now)
        seq = self.sent[i]
        self.sent[i] = seq + 1
        return seq

    def finish(self, i: int, seq: int) -> None:
        """The copy ``seq`` to pool ``i`` is over (applied, or lost with a failed copy)."""
        head = self.head[i]
        if seq < head:
            return  # (cleared by a catch-up)
        if seq != head:
            self.done[i].add(seq)
            return
        fifo, done = self.fifo[i], self.done[i]
        fifo.popleft()
        head += 1
        while head in done:
            done.remove(head)
            fifo.popleft()
            head += 1
        self.head[i] = head

    def lag(self, i: int, now: float) -> float:
        """How far pool ``i`` is behind: now minus the commit time of the oldest write not
        yet applied there (0.0 when none is in flight)."""
        f = self.fifo[i]
        return now - f[0] if f else 0.0

    def apply(self, i: int, key: int, v: int) -> None:
        d = self.applied[i]
        if v > d.get(key, 0):
            d[key] = v

    def read(self, cls: int, key: int, v0: int, w0: int, seen: int, now: float) -> None:
        """A read of ``key`` that reached the store when version ``v0`` was the newest and
        ``w0`` its session's last acknowledged write returned version ``seen`` at ``now``:
        log it (and its session's verdict; a write acknowledged while the read was under way
        is concurrent with it, not one the read had to see)."""
        if not self.logs_reads:  # one copy: the system of record itself, never behind
            self.fr.served(self.name, key, self.clock.version(key))
            return
        self.log.read(cls, now - self.clock.committed_at(key, seen + 1) if seen < v0 else 0.0, now)
        if self.session[cls]:
            _, mono = self.book.check_read(key, seen)
            self.log.session(cls, seen < w0, mono, now)
        self.fr.served(self.name, key, seen)

    def promoted(self, old: Pool, new: Pool) -> None:
        """A failover to ``new``: the acknowledged writes it had not applied are lost (their
        versions stay committed: reads of those keys are stale until the key's next write)."""
        mine = self.applied[self.index[new]]
        lost = 0
        for k, v in self.applied[self.index[old]].items():
            have = mine.get(k, 0)
            if v > have:
                lost += v - have
        self.log.lost_writes += lost

    def catch_up(self, pool: Pool, primary: Pool) -> None:
        """A copy back from a crash replays the primary's data at once; its queue of writes
        in flight starts afresh."""
        i = self.index[pool]
        d = self.applied[i]
        for k, v in self.applied[self.index[primary]].items():
            if v > d.get(k, 0):
                d[k] = v
        self.fifo[i].clear()
        self.head[i] = self.sent[i]
        self.done[i].clear()
