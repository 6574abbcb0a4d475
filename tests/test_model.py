"""The validated model: frozen specs, changes that make new validated models, and the one
architecture graph that wiring, checks and analyses read."""

from __future__ import annotations

import pydantic
import pytest

import simarch
from simarch import Architecture, SpecError


def _design() -> Architecture:
    return (Architecture("m", workload={"rate": 10})
            .add("api", kind="service", instances=2, workers=4, service_time="2ms")
            .add("db", kind="datastore", shards=2, replicas=2, workers=2, service_time="1ms")
            .add("spare", kind="service", workers=2, service_time="1ms")
            .call("api", "db", timeout="50ms", fallback="spare")
            .call("api", "spare", probability=0.5, mode="async"))


def test_validated_specs_are_frozen():
    arch = _design()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        arch.spec.components["api"].workers = -5
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        arch.spec.workload.rate = 1e9
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        arch.spec.calls[0].timeout = 0.0
    assert arch.spec.components["api"].workers == 4


def test_with_changes_returns_a_new_validated_model():
    arch = _design()
    bigger = arch.with_changes({"api.workers": 8, "workload.rate": 20})
    assert bigger is not arch and bigger.spec is not arch.spec
    assert (bigger.spec.components["api"].workers, arch.spec.components["api"].workers) == (8, 4)
    assert bigger.spec.workload.rate == 20 and arch.spec.workload.rate == 10
    with pytest.raises(SpecError, match=r"components\.api\.workers: must be >= 1"):
        arch.with_changes({"api.workers": 0})


def test_the_graph_holds_calls_and_fallbacks():
    g = _design().graph
    assert set(g.nodes) == {"api", "db", "spare"}
    assert g.nodes["db"]["kind"] == "datastore"
    assert [c.to for c in g.edges["api", "db"]["calls"]] == ["db"]
    # api -> spare carries the async call and stands in for the failed api -> db call
    assert [c.mode for c in g.edges["api", "spare"]["calls"]] == ["async"]
    assert [c.to for c in g.edges["api", "spare"]["fallbacks"]] == ["db"]


def test_call_edges_keep_the_declared_order():
    arch = (Architecture("o", workload={"rate": 10})
            .add("a", kind="service", service_time="1ms")
            .add("b", kind="service", service_time="1ms")
            .add("c", kind="service", service_time="1ms")
            .call("a", "b").call("a", "c").call("a", "b", probability=0.5))
    assert [(u, v, c.probability) for u, v, c in arch.call_edges()] == [
        ("a", "b", 1.0), ("a", "c", 1.0), ("a", "b", 0.5)]


def test_reach_follows_the_graph():
    arch = simarch.load("architectures/async_writes.yaml")
    reach = arch.reach()
    assert reach["queue"] == {"write"}
    assert reach["writers"] == {"write"}
    assert reach["db"] == {"read", "write"}
