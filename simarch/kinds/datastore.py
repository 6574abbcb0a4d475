"""The datastore kind: shards on a consistent-hash ring, each shard a list of replica pools
(replica 0 the primary). Writes go to the primary and are copied to the other replicas
(synchronously or not); reads go to any live replica or to the primary only. A dead primary
is replaced by a live replica after the failover time."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.keys import shard_of_keys
from ..model.metrics import ratio
from ..model.status import FAILED, OK
from ..runtime.hops import ASYNC, COPY
from ..runtime.pickers import make_live_picker
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
            m if spec.read_from == "any" else [self.primary[s]] for s, m in enumerate(self.members)]
        self.read_pick = [make_live_picker(spec.policy, self.readable[s], sim.rng(name, "replica", s))
                          for s in range(spec.shards)]
        self.sync = spec.replication == "sync"
        self._no_calls: list = []
        self.failovers: list[tuple[float, int, str, str]] = []  # (time, shard, old, new primary)

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
            if self.spec.failover is not None and p.down == 1:
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
        if self.primary[s] is pool:
            live = [p for p in members if not p.down]
            if live:
                self.primary[s] = live[0]
                self.failovers.append((self.env.now, s, pool.name, live[0].name))
                if self.spec.read_from == "primary":
                    self.readable[s][:] = [live[0]]

    def recover(self, pools: list[Pool]) -> None:
        super().recover(pools)
        for p in pools:
            if p.down:
                continue
            s = self._shard(p)
            if p not in self.members[s]:
                self.members[s].append(p)  # rejoins as a replica
                if self.primary[s].down and self.primary[s] not in self.members[s]:
                    self.primary[s] = p  # the shard had no live primary: this copy takes over
                    self.failovers.append((self.env.now, s, "-", p.name))
                    if self.spec.read_from == "primary":
                        self.readable[s][:] = [p]

    # -- statistics
    def counters(self, t: float) -> dict[str, Any]:
        out = super().counters(t)
        out["shard_load"] = list(self.shard_load)
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
        # a synchronous write waits for the copies too (as long again, in parallel)
        return own if op == "write" and spec.replication == "sync" and spec.replicas > 1 else 0.0

    @classmethod
    def utilization(cls, spec, name, flows, busy, classes, workload):
        """Utilisation of the busiest replica, from per-shard rates and read/write service
        times (the hottest replica decides)."""
        shares = _shard_shares(spec, flows, classes)
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
        """Replicas of a shard fail independently. Reads go to a live replica at once (with
        ``read_from: any``); writes fail while the shard's primary is dead and not yet
        replaced (the ``failover`` time, or the repair when there is none), and with
        ``replication: sync`` while any copy is dead and still a member."""
        cycle = mtbf + mttr
        r = spec.replicas
        u = mttr / cycle
        none_left = u ** r
        stall = (mttr if spec.failover is None or r == 1 else min(spec.failover, mttr)) / cycle
        write_loss = min(1.0, none_left + stall * (r if spec.replication == "sync" else 1))
        read_loss = none_left if spec.read_from == "any" else write_loss
        avail = 1.0 - (1 - write_share) * read_loss - write_share * write_loss
        failover = "never" if spec.failover is None else f"{spec.failover:g}s"
        return avail, (f"{r} replica(s) per shard; reads need 1 live copy, writes stall "
                       f"{stall * cycle:.3g}s per primary failure (failover {failover})")

    @classmethod
    def crash_availability(cls, spec, lost, fault, detect, needed, write_share, duration):
        """A crash of a shard's copies: with none left its keys fail; with the primary
        among them, writes stall until the failover promotes a live replica."""
        shards = 1.0 / spec.shards if fault.shard is not None else 1.0
        if fault.zone is not None:
            primary = spec.zone_of(0) == fault.zone
        else:
            primary = getattr(fault, "replica", None) in (None, 0)
        if lost >= spec.replicas:
            return 1.0 - shards, f"every copy of {shards:.0%} of the keys down"
        stall = 1.0 if spec.failover is None else min(1.0, spec.failover / duration) if duration > 0 else 0.0
        loss = (write_share if spec.read_from == "any" else 1.0) * stall if primary else 0.0
        return 1.0 - shards * loss, (f"{lost} of {spec.replicas} replicas down"
                                     + (", writes stall until the failover" if primary else ""))
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
        sync = spec.replication == "sync" and r > 1
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
                if write:
                    out.append(Route(x, base, tuple(range(base + 1, base + r)), sync))
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
