"""Datastore archetypes: documented presets of the datastore's mechanisms.

A datastore's ``model:`` names a *behaviour archetype*, not a product's benchmark. Each
archetype is a table of field defaults (in spec syntax) with a public source for every one;
:func:`apply_archetype` fills the fields a spec did not give, so the user's values always
win. The presets are typical starting points, round figures of the right order of
magnitude, never measurements of your system: replace them with your own (``simarch fit``).

=================== ======================================================================
``primary_replica`` relational, as PostgreSQL and MySQL run with streaming replicas: one
                    primary takes the writes, asynchronous replicas lag and serve reads, a
                    replica is promoted when the primary dies
``leaderless_quorum`` as Cassandra and Dynamo-style stores: every write and read goes to the
                    N copies of its key and waits for W or R of them (ONE, QUORUM, ALL)
``document``        as MongoDB replica sets: reads from the primary (read preference),
                    writes acknowledged by a majority (write concern), an election on failure
``in_memory_kv``    as Redis: one worker per shard (commands run on one thread), service
                    times of microseconds, optional replicas, Sentinel-style failover
``scatter_gather``  as Elasticsearch: a query fans out to every shard and waits for the
                    slowest, so the tail grows with the shard count
=================== ======================================================================

The sources and the date each was consulted are in :data:`DATASTORE_MODELS` (print it, or
run ``simarch archetypes``) and in docs/background/datastore-archetypes.md.
"""

from __future__ import annotations

import copy
import functools
import textwrap
import typing
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

#: When the sources below were consulted.
CONSULTED = "2026-12"


@dataclass(frozen=True)
class Source:
    """Where a preset's figure comes from: what the figure stands for (``basis``), the
    document (``title``, ``url``), and when it was consulted (``as_of``)."""

    basis: str
    title: str
    url: str
    as_of: str = CONSULTED

    def __str__(self) -> str:
        return f"{self.basis} ({self.title}, {self.url}, as of {self.as_of})"


@dataclass(frozen=True)
class Archetype:
    """One datastore archetype: its ``name`` (the value of ``model:``), what it ``models``,
    the mechanism it presets (``mechanism``), the field defaults in spec syntax
    (``fields``) and a :class:`Source` for each of them (``sources``, same keys)."""

    name: str
    models: str
    mechanism: str
    fields: Mapping[str, Any]
    sources: Mapping[str, Source] = field(repr=False)

    def __post_init__(self) -> None:  # read-only views: the table is shared
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    def describe(self, width: int = 100) -> str:
        """What it models, the mechanism, and each field it sets with its value and source,
        wrapped at ``width`` columns."""
        lines = [f"{self.name}: {self.models}",
                 textwrap.fill(self.mechanism, width, initial_indent="  ", subsequent_indent="  "),
                 "Presets (typical starting points, not benchmarks; every field a spec gives wins):"]
        for key, value in self.fields.items():
            lines.append(f"  {key}: {_flow(value)}")
            lines.append(textwrap.fill(f"source: {self.sources[key]}", width,
                                       initial_indent="      ", subsequent_indent="        "))
        return "\n".join(lines)


def _flow(value: Any) -> str:
    """A preset value in YAML flow style, as a spec would write it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


_PG_HA = "https://www.postgresql.org/docs/current/warm-standby.html"
_ZONE_LAG = Source(
    "order of magnitude: a replica in the same zone as its primary receives the change after "
    "a network hop of under a millisecond (zones of one region are within single-digit "
    "milliseconds of each other); the exponential shape is an assumption",
    "AWS Fault Isolation Boundaries, Availability Zones",
    "https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/availability-zones.html")
_SHAPE = "the lognormal shape with cv 1 is an assumption; calibrate with 'simarch fit'"

PRIMARY_REPLICA = Archetype(
    "primary_replica",
    "a relational database with streaming replicas (PostgreSQL, MySQL)",
    "one primary per shard takes every write; the other copies apply it asynchronously after "
    "a replication lag and serve reads, so a read can be stale; when the primary dies a "
    "replica is promoted after the failover time",
    {
        "replicas": 3,
        "replication": "async",
        "read_from": "any",
        "failover": "30s",
        "service_time": {"read": {"lognormal": {"mean": "1ms", "cv": 1.0}},
                         "write": {"lognormal": {"mean": "2.5ms", "cv": 1.0}}},
        "lag": {"network": {"exponential": "0.5ms"}},
    },
    {
        "replicas": Source(
            "a primary and two standbys, the common highly available layout (Amazon RDS's "
            "Multi-AZ DB cluster is one writer and two readable standbys)",
            "Amazon RDS User Guide, Multi-AZ DB cluster deployments",
            "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/multi-az-db-clusters-concepts.html"),
        "replication": Source(
            "streaming replication is asynchronous by default (synchronous_standby_names empty); "
            "MySQL's replication is asynchronous by default too",
            "PostgreSQL documentation, Log-Shipping Standby Servers", _PG_HA),
        "read_from": Source(
            "hot standbys answer read-only queries, so reads spread over every copy",
            "PostgreSQL documentation, Hot Standby",
            "https://www.postgresql.org/docs/current/hot-standby.html"),
        "failover": Source(
            "Patroni's leader lock ttl defaults to 30 s, the time before an automatic failover "
            "starts; Amazon RDS documents under 35 s for a Multi-AZ DB cluster (60-120 s for "
            "a Multi-AZ instance)",
            "Patroni documentation, Dynamic configuration settings (ttl)",
            "https://patroni.readthedocs.io/en/latest/dynamic_configuration.html"),
        "service_time": Source(
            "typical, order of magnitude: an indexed point read from memory takes well under a "
            "millisecond of server time, a small write transaction a few milliseconds with "
            f"its commit flush (pgbench's built-in select-only and TPC-B-like scripts); {_SHAPE}",
            "PostgreSQL documentation, pgbench",
            "https://www.postgresql.org/docs/current/pgbench.html"),
        "lag": _ZONE_LAG,
    },
)

LEADERLESS_QUORUM = Archetype(
    "leaderless_quorum",
    "a leaderless, Dynamo-style store (Cassandra, ScyllaDB, Riak)",
    "every copy takes writes: a write goes to the N copies of its key and waits for W of "
    "them, a read asks R copies and keeps the newest version; with R + W > N a read sees "
    "the last acknowledged write; no primary, so no failover: a dead copy only lowers the "
    "copies that can answer",
    {
        "replicas": 3,
        "quorum": {"r": "quorum", "w": "quorum"},
        "failover": None,
        "service_time": {"lognormal": {"mean": "1ms", "cv": 1.0}},
        "lag": {"network": {"exponential": "0.5ms"}},
    },
    {
        "replicas": Source(
            "a replication factor of 3, the usual production choice, with which QUORUM is 2",
            "Apache Cassandra documentation, Dynamo (replication, tunable consistency)",
            "https://cassandra.apache.org/doc/latest/cassandra/architecture/dynamo.html"),
        "quorum": Source(
            "QUORUM reads and writes (floor(RF/2) + 1 = 2 of 3), which overlap in a copy; the "
            "drivers' default consistency level is ONE, so set r: one for that",
            "Apache Cassandra documentation, Dynamo (tunable consistency)",
            "https://cassandra.apache.org/doc/latest/cassandra/architecture/dynamo.html"),
        "failover": Source(
            "no primary to promote: any copy coordinates and takes writes",
            "Apache Cassandra documentation, Dynamo",
            "https://cassandra.apache.org/doc/latest/cassandra/architecture/dynamo.html"),
        "service_time": Source(
            "typical, order of magnitude: a write appends to the commit log and a memtable, a "
            f"read of a cached partition is of the same order, about a millisecond; {_SHAPE}",
            "Apache Cassandra documentation, Storage engine",
            "https://cassandra.apache.org/doc/latest/cassandra/architecture/storage-engine.html"),
        "lag": _ZONE_LAG,
    },
)

DOCUMENT = Archetype(
    "document",
    "a document store's replica set (MongoDB)",
    "a primary per shard with secondaries: reads go to the primary (read preference "
    "primary), a write returns once a majority of the copies have it (write concern "
    "majority), and a new primary is elected when it dies",
    {
        "replicas": 3,
        "read_from": "primary",
        "replication": "majority",
        "failover": "12s",
        "service_time": {"read": {"lognormal": {"mean": "1ms", "cv": 1.0}},
                         "write": {"lognormal": {"mean": "2ms", "cv": 1.0}}},
        "lag": {"network": {"exponential": "0.5ms"}},
    },
    {
        "replicas": Source(
            "a three-member replica set, the recommended minimum",
            "MongoDB Manual, Replica Set Deployment Architectures",
            "https://www.mongodb.com/docs/manual/core/replica-set-architectures/"),
        "read_from": Source(
            "the default read preference is primary",
            "MongoDB Manual, Read Preference",
            "https://www.mongodb.com/docs/manual/core/read-preference/"),
        "replication": Source(
            "since MongoDB 5.0 the implicit default write concern is w: majority (w: 1 with "
            "arbiters and few data-bearing members)",
            "MongoDB Manual, Default MongoDB Read Concerns/Write Concerns",
            "https://www.mongodb.com/docs/manual/reference/mongodb-defaults/"),
        "failover": Source(
            "the median time to elect a new primary should not typically exceed 12 s with the "
            "default settings (electionTimeoutMillis 10 s)",
            "MongoDB Manual, Replica Set Elections",
            "https://www.mongodb.com/docs/manual/core/replica-set-elections/"),
        "service_time": Source(
            "typical, order of magnitude: a point read by _id from the cache under a "
            f"millisecond, a journaled single-document write a few; {_SHAPE}",
            "MongoDB Manual, WiredTiger Storage Engine",
            "https://www.mongodb.com/docs/manual/core/wiredtiger/"),
        "lag": _ZONE_LAG,
    },
)

IN_MEMORY_KV = Archetype(
    "in_memory_kv",
    "an in-memory key-value store (Redis, Valkey)",
    "each shard executes its commands one at a time on one thread, in microseconds, so a "
    "shard saturates at about 1 / service time; replicas are optional (asynchronous, reads "
    "stay on the primary) and promoted after the failure is detected",
    {
        "workers": 1,
        "service_time": {"exponential": "10us"},
        "replicas": 1,
        "replication": "async",
        "read_from": "primary",
        "failover": "30s",
    },
    {
        "workers": Source(
            "Redis executes commands on a single thread",
            "Redis documentation, Latency monitoring ('Redis is single threaded')",
            "https://redis.io/docs/latest/operate/oss_and_stack/management/optimization/latency-monitor/"),
        "service_time": Source(
            "typical, order of magnitude: redis-benchmark shows one instance serving about "
            "100,000 GET/SET a second (so about 10 us of server time each; the network round "
            "trip, a call's latency, comes on top); the exponential shape is an assumption",
            "Redis documentation, Redis benchmark",
            "https://redis.io/docs/latest/operate/oss_and_stack/management/optimization/benchmarks/"),
        "replicas": Source(
            "replication is optional: one copy by default; give replicas: 2 for a replica per "
            "shard",
            "Redis documentation, Replication",
            "https://redis.io/docs/latest/operate/oss_and_stack/management/replication/"),
        "replication": Source(
            "Redis uses asynchronous replication by default",
            "Redis documentation, Replication",
            "https://redis.io/docs/latest/operate/oss_and_stack/management/replication/"),
        "read_from": Source(
            "cluster replicas redirect reads to the primary unless a client sends READONLY",
            "Redis documentation, READONLY command",
            "https://redis.io/docs/latest/commands/readonly/"),
        "failover": Source(
            "Sentinel's down-after-milliseconds is 30,000 in the example sentinel.conf "
            "(30 s before the primary counts as down; the election adds a little)",
            "Redis documentation, High availability with Redis Sentinel",
            "https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/"),
    },
)

SCATTER_GATHER = Archetype(
    "scatter_gather",
    "a sharded search engine (Elasticsearch, OpenSearch, Solr)",
    "a query is broadcast to one copy of every shard and answered when the slowest shard "
    "has answered, so the tail latency grows with the shard count; a write goes to its "
    "shard's primary and waits for the in-sync replicas",
    {
        "shards": 5,
        "replicas": 2,
        "scatter_gather": True,
        "replication": "sync",
        "service_time": {"read": {"lognormal": {"mean": "5ms", "cv": 1.0}},
                         "write": {"lognormal": {"mean": "2ms", "cv": 1.0}}},
    },
    {
        "shards": Source(
            "index.number_of_shards defaulted to 5 before Elasticsearch 7.0 and is 1 since: "
            "the preset keeps 5 so that the fan-out shows; set shards: 1 for a 7.x default",
            "Elasticsearch Reference 7.0, Breaking changes in 7.0",
            "https://www.elastic.co/guide/en/elasticsearch/reference/7.0/breaking-changes-7.0.html"),
        "replicas": Source(
            "index.number_of_replicas defaults to 1, so each shard has two copies",
            "Elasticsearch Reference, Index modules (number_of_replicas)",
            "https://www.elastic.co/guide/en/elasticsearch/reference/current/index-modules.html"),
        "scatter_gather": Source(
            "the query phase is broadcast to a copy of every shard and the coordinating node "
            "merges their answers, so a search takes as long as its slowest shard",
            "Elasticsearch: The Definitive Guide, Query Phase",
            "https://www.elastic.co/guide/en/elasticsearch/guide/current/_query_phase.html"),
        "replication": Source(
            "the primary acknowledges a write once all in-sync replicas have performed it",
            "Elasticsearch Reference, Reading and writing documents",
            "https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-replication.html"),
        "service_time": Source(
            "typical, order of magnitude: a simple query on a shard of a few tens of GB takes "
            "milliseconds (the coordinating node's merge is small next to it); "
            f"{_SHAPE} (or the search profile API)",
            "Elasticsearch Reference, Size your shards",
            "https://www.elastic.co/guide/en/elasticsearch/reference/current/size-your-shards.html"),
    },
)


class Archetypes(Mapping[str, Archetype]):
    """The table of datastore archetypes by name; ``str()`` of it is a short listing (name,
    what it models, the fields it sets), and each entry's ``describe()`` adds the sources."""

    def __init__(self, *archetypes: Archetype) -> None:
        self._by_name = {a.name: a for a in archetypes}

    def __getitem__(self, name: str) -> Archetype:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"Archetypes({', '.join(self._by_name)})"

    def __str__(self) -> str:
        width = max(len(n) for n in self._by_name)
        lines = ["Datastore models (typical starting points, not benchmarks; "
                 "'simarch archetypes NAME' for the sources):"]
        for a in self._by_name.values():
            lines.append(f"  {a.name:<{width}}  {a.models}")
            lines.append(f"  {'':<{width}}  sets: {', '.join(a.fields)}")
        return "\n".join(lines)


#: Every datastore archetype by name: what ``model:`` accepts.
DATASTORE_MODELS = Archetypes(PRIMARY_REPLICA, LEADERLESS_QUORUM, DOCUMENT, IN_MEMORY_KV, SCATTER_GATHER)

#: The names ``model:`` accepts, in the order of the table.
MODEL_NAMES: tuple[str, ...] = tuple(DATASTORE_MODELS)


def archetypes() -> Archetypes:
    """The table of datastore archetypes (:data:`DATASTORE_MODELS`): ``print()`` it for the
    list, ``archetypes()["primary_replica"].describe()`` for one with its sources."""
    return DATASTORE_MODELS


def _accepts(fields: Mapping[str, Any], key: str, value: Any) -> bool:
    """Whether a model with these fields has ``key`` and, for a choice among names, offers
    ``value`` among them (a preset may name a choice a field does not offer yet)."""
    if key not in fields:
        return False
    allowed = _literal_choices(getattr(fields[key], "annotation", None))
    return allowed is None or value in allowed


def _literal_choices(annotation: Any) -> set[Any] | None:
    """The values a ``Literal[...]`` annotation (or a ``Literal | None``) admits, else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    args = typing.get_args(annotation)
    if args and any(typing.get_origin(a) is typing.Literal for a in args):
        out: set[Any] = set()
        for a in args:
            if typing.get_origin(a) is typing.Literal:
                out |= set(typing.get_args(a))
            elif a is type(None):
                out.add(None)
            else:
                return None  # a Literal or anything else: not a plain choice
        return out
    return None


def preset_for(name: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The field defaults of archetype ``name`` (spec syntax), limited to what a model with
    ``fields`` (its ``model_fields``) accepts when they are given."""
    preset = DATASTORE_MODELS[name].fields
    return {k: copy.deepcopy(v) for k, v in preset.items() if fields is None or _accepts(fields, k, v)}


def apply_archetype(data: dict, fields: Collection[str] | Mapping[str, Any] | None = None) -> dict:
    """Fill a datastore mapping's fields from the archetype its ``model`` names.

    A field the mapping gives is kept as given, whole (a ``quorum`` or ``service_time`` given
    replaces the preset's entirely); every other field the archetype sets is added. ``fields``,
    when given, are the fields of the model being validated (its ``model_fields``): preset
    fields it lacks, or choices it does not offer, are left out. A mapping without ``model``,
    with ``model: null``, or naming no archetype comes back unchanged (the ``model`` field
    itself then reports a name it does not know, with the allowed ones).
    """
    if not isinstance(data, dict):
        return data
    name = data.get("model")
    if not isinstance(name, str) or name not in DATASTORE_MODELS:
        return data
    known = fields if fields is None or isinstance(fields, Mapping) else {k: None for k in fields}
    preset = preset_for(name, known)
    missing = {k: v for k, v in preset.items() if k not in data}
    return {**data, **missing} if missing else data


def baseline(model: BaseModel) -> BaseModel | None:
    """For a validated model whose ``model`` names an archetype, the same kind of model with
    nothing but the archetype's defaults (what each field is when the spec does not give
    it); else ``None``. Writing a spec back out omits the fields equal to it."""
    name = getattr(model, "model", None)
    if not isinstance(name, str) or name not in DATASTORE_MODELS:
        return None
    return _baseline(type(model), name)


@functools.cache
def _baseline(cls: type[BaseModel], name: str) -> BaseModel:
    kind = cls.model_fields["kind"].annotation.__args__[0]  # Literal["datastore"] -> "datastore"
    return cls.model_validate({"kind": kind, "model": name})
