"""Datastore archetypes (``model:``): the presets apply, the user's fields win, every preset
validates and reads back from ``resolved()``, an unknown model is a SpecError naming the path
and the allowed names, and every default has a source.

The presets also set fields of the replication model (``lag``, ``quorum``,
``scatter_gather``, and the choices ``majority`` and ``semi_sync``).
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from cli_helpers import simarch_cli

import simarch
from simarch import SpecError
from simarch.model.archetypes import (
    DATASTORE_MODELS,
    MODEL_NAMES,
    Archetype,
    Source,
    apply_archetype,
    archetypes,
    preset_for,
)
from simarch.model.components import DatastoreSpec
from simarch.model.spec import component_to_spec, parse_component

ROOT = Path(__file__).resolve().parents[1]


def _db(**fields) -> DatastoreSpec:
    return parse_component("db", {"kind": "datastore", **fields})


def test_the_model_field_offers_exactly_the_archetypes():
    allowed = typing.get_args(typing.get_args(DatastoreSpec.model_fields["model"].annotation)[0])
    assert tuple(allowed) == MODEL_NAMES == ("primary_replica", "leaderless_quorum", "document",
                                              "in_memory_kv", "scatter_gather")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_preset_validates_and_applies(name):
    """The archetype gives the same datastore as writing its preset's fields (those the
    datastore has) out by hand."""
    db = _db(model=name)
    assert db.model == name
    applied = preset_for(name, DatastoreSpec.model_fields)
    assert applied, name
    assert db.model_copy(update={"model": None}) == _db(**applied), name


def test_the_presets_set_what_the_archetypes_describe():
    pr, doc, kv, sg = (_db(model=n) for n in ("primary_replica", "document", "in_memory_kv", "scatter_gather"))
    assert (pr.replicas, pr.replication, pr.read_from, pr.failover) == (3, "async", "any", 30.0)
    assert pr.service_time.lookup("x", "read").mean == pytest.approx(1e-3)
    assert pr.service_time.lookup("x", "write").mean == pytest.approx(2.5e-3)
    assert _db(model="leaderless_quorum").failover is None
    assert (doc.replicas, doc.read_from, doc.failover) == (3, "primary", 12.0)
    assert (kv.workers, kv.replicas, kv.read_from, kv.failover) == (1, 1, "primary", 30.0)
    assert kv.service_time.lookup("x", "read").mean == pytest.approx(1e-5)
    assert (sg.shards, sg.replicas, sg.replication) == (5, 2, "sync")


def test_user_fields_win_over_the_preset():
    db = _db(model="primary_replica", replicas=5, failover=None, service_time="3ms", read_from="primary")
    assert (db.replicas, db.failover, db.read_from) == (5, None, "primary")
    # a given field replaces the preset's value whole: one distribution for every operation
    assert db.service_time.lookup("x", "read").mean == db.service_time.lookup("x", "write").mean == 0.003
    assert db.replication == "async"  # not given: still the preset's
    # an explicit value equal to the plain default still wins over the preset
    assert _db(model="document", failover="10s").failover == 10.0
    # with an instance type, the single-threaded archetype keeps its one worker...
    assert _db(model="in_memory_kv", instance_type="m6i.xlarge").workers == 1
    # ...and one that presets no workers gets one per core, as without a model
    assert _db(model="primary_replica", instance_type="m6i.xlarge").workers == 4


def test_apply_archetype_fills_only_what_is_missing():
    data = {"kind": "datastore", "model": "in_memory_kv", "replicas": 2}
    out = apply_archetype(data)
    assert out["replicas"] == 2 and out["workers"] == 1 and out["failover"] == "30s"
    assert data == {"kind": "datastore", "model": "in_memory_kv", "replicas": 2}  # not changed
    for unchanged in ({"kind": "datastore"}, {"kind": "datastore", "model": None},
                      {"kind": "datastore", "model": "postgres"}, {"kind": "datastore", "model": 3}):
        assert apply_archetype(unchanged) is unchanged
    assert apply_archetype("not a mapping") == "not a mapping"  # type: ignore[arg-type]
    # limited to the fields (and the choices) a model has
    only = apply_archetype({"model": "document"}, {"replicas": None, "failover": None})
    assert only == {"model": "document", "replicas": 3, "failover": "12s"}
    # the preset's values are copies: changing what came back leaves the table alone
    apply_archetype({"model": "primary_replica"})["service_time"]["read"] = "9ms"
    assert DATASTORE_MODELS["primary_replica"].fields["service_time"]["read"] != "9ms"


def test_no_model_changes_nothing():
    assert _db() == parse_component("db", {"kind": "datastore", "model": None})
    assert _db().model is None
    assert component_to_spec(_db(replicas=2)) == {"kind": "datastore", "replicas": 2}


@pytest.mark.parametrize("bad, hint", [("primary_replicas", "did you mean 'primary_replica'?"),
                                       ("postgres", ""), (3, ""), (True, "")])
def test_an_unknown_model_names_the_path_and_the_allowed_ones(bad, hint):
    spec = {"workload": {"rate": 10},
            "components": {"db": {"kind": "datastore", "model": bad, "replicas": 2}}}
    with pytest.raises(SpecError) as e:
        simarch.load(spec)
    assert e.value.path == ("components", "db", "model")
    text = str(e.value)
    assert text.startswith("components.db.model: ") and hint in text
    for name in MODEL_NAMES:
        assert f"'{name}'" in text


def test_an_unknown_model_on_the_command_line_is_one_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("workload: {rate: 10}\ncomponents:\n  db: {kind: datastore, model: mongo}\n")
    proc = simarch_cli("validate", spec)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {spec}: components.db.model: 'mongo' is not allowed (allowed: 'primary_replica', "
        "'leaderless_quorum', 'document', 'in_memory_kv' or 'scatter_gather')"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_default_has_a_source(name):
    a = DATASTORE_MODELS[name]
    assert isinstance(a, Archetype) and a.name == name and a.models and a.mechanism
    assert set(a.sources) == set(a.fields), f"{name}: fields without a source or sources without a field"
    for key, src in a.sources.items():
        assert isinstance(src, Source)
        assert src.basis and src.title, (name, key)
        assert src.url.startswith("https://"), (name, key, src.url)
        assert src.as_of[:2] == "20" and len(src.as_of) >= 7, (name, key, src.as_of)
    text = a.describe()
    for key in a.fields:
        assert f"  {key}: " in text
    assert all(src.url in text.replace("\n", "").replace(" ", "") for src in a.sources.values())


def test_the_typical_figures_say_so():
    """The service times and lags are orders of magnitude, and their sources say so."""
    for a in DATASTORE_MODELS.values():
        for key in ("service_time", "lag"):
            if key in a.sources:
                assert "order of magnitude" in a.sources[key].basis, (a.name, key)


def test_the_table_prints_and_is_public():
    assert simarch.archetypes() is simarch.DATASTORE_MODELS is archetypes() is DATASTORE_MODELS
    text = str(simarch.archetypes())
    assert "not benchmarks" in text
    for name, a in DATASTORE_MODELS.items():
        assert name in text and a.models in text and ", ".join(a.fields) in text
    assert len(DATASTORE_MODELS) == 5 and list(DATASTORE_MODELS) == list(MODEL_NAMES)
    assert repr(DATASTORE_MODELS).startswith("Archetypes(primary_replica, ")


def test_the_archetypes_command():
    listing = simarch_cli("archetypes")
    assert listing.returncode == 0, listing.stderr
    assert all(name in listing.stdout for name in MODEL_NAMES)
    one = simarch_cli("archetypes", "document")
    assert one.returncode == 0 and "electionTimeoutMillis" in one.stdout and "https://" in one.stdout
    bad = simarch_cli("archetypes", "documents")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == ("error: unknown datastore model 'documents' (did you mean 'document'? "
                                  "allowed: primary_replica, leaderless_quorum, document, in_memory_kv, "
                                  "scatter_gather)")


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("extra", [{}, {"replicas": 1}, {"failover": "10s", "replication": "async"},
                                   {"service_time": "3ms", "workers": 4}, {"instance_type": "m6i.xlarge"},
                                   {"failover": None, "read_from": "any"}])
def test_resolved_reads_back_the_same(name, extra):
    """Writing a design out keeps ``model`` and the fields that differ from the archetype's
    defaults, so it loads back to the same components (a value equal to the plain default but
    not to the preset's is written out)."""
    arch = simarch.load({"workload": {"rate": 10},
                         "components": {"db": {"kind": "datastore", "model": name, **extra}}})
    resolved = arch.resolved()
    assert resolved["components"]["db"]["model"] == name
    again = simarch.load(yaml.safe_load(yaml.safe_dump(resolved)))
    assert again.spec.components["db"] == arch.spec.components["db"]


def test_a_change_can_switch_the_model():
    arch = simarch.load(ROOT / "architectures" / "store_primary_replica.yaml")
    other = arch.with_changes({"db.model": "in_memory_kv"})
    assert other.spec.components["db"].model == "in_memory_kv"
    assert other.spec.components["db"].workers == 8  # the design's own field still wins
    assert other.spec.components["db"].replicas == 1


@pytest.mark.parametrize("stem", ["store_primary_replica", "store_leaderless_quorum"])
def test_the_example_stores_share_one_workload(stem):
    arch = simarch.load(ROOT / "architectures" / f"{stem}.yaml")
    other = simarch.load(ROOT / "architectures" / "store_primary_replica.yaml")
    assert arch.spec.workload == other.spec.workload
    assert arch.spec.components["db"].model == stem.removeprefix("store_")
    assert arch.spec.components["db"].replicas == 3


# --------------------------------------------------------------------------- with the replication fields

def test_nothing_is_left_out_once_the_datastore_has_every_field():
    for name, a in DATASTORE_MODELS.items():
        assert preset_for(name, DatastoreSpec.model_fields) == dict(a.fields), name


def test_the_replication_presets_apply():
    lq = _db(model="leaderless_quorum")
    assert (lq.quorum.r, lq.quorum.w) == ("quorum", "quorum")
    assert _db(model="scatter_gather").scatter_gather is True
    assert _db(model="document").replication == "majority"
    assert _db(model="primary_replica").lag.network.mean == pytest.approx(5e-4)
    # a quorum given replaces the preset's whole
    one = _db(model="leaderless_quorum", quorum={"r": "one", "w": "all"})
    assert (one.quorum.r, one.quorum.w) == ("one", "all")
