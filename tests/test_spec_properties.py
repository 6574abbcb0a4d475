"""Property tests of spec validation: random designs, randomly broken.

A strategy builds mostly-valid designs (components of every kind, calls between them, a
workload with classes, keys and a profile), then applies random mutations (missing and
unknown fields, wrong types, unit typos, unknown names, graph errors, non-mapping specs).

Whatever the input, ``simarch.load`` returns an Architecture or raises ``SpecError`` with a
one-line message and a field path; what loads round-trips through ``resolved()`` and YAML,
and small valid designs simulate.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import networkx as nx
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import simarch
from simarch.model.dists import DISTRIBUTION_NAMES

TOP_LEVEL_FIELDS = ("name", "description", "workload", "components", "calls", "slo", "simulation")
KINDS = ("service", "load_balancer", "cache", "datastore", "queue")

# Stable in CI: the same examples every run, no example database.
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SIM = settings(max_examples=60, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
YAML_RT = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- valid pieces

COMPONENT_NAMES = ("api", "web", "lb", "edge", "cache", "db", "store", "q", "worker", "auth", "search")
CLASS_NAMES = ("read", "write", "browse", "checkout", "search", "get", "put", "update_cart")

# small durations (service times, latencies), as seconds or strings with units
small_durations = st.one_of(
    st.floats(min_value=1e-4, max_value=0.02, allow_nan=False, allow_infinity=False),
    st.sampled_from(["4ms", "0.5ms", "1.5ms", "200us", "0.002s", "3 ms", "750µs", "0.001"]),
)
positive_small = st.floats(min_value=1e-4, max_value=0.02)


@st.composite
def distributions(draw: st.DrawFn, depth: int = 0) -> Any:
    """A valid distribution spec of a small duration."""
    choices = ["scalar", "constant", "exponential", "exponential_mean", "uniform", "uniform_map",
               "lognormal", "lognormal_cv", "gamma", "erlang", "weibull", "pareto", "normal",
               "empirical"]
    if depth == 0:
        choices.append("mixture")
    kind = draw(st.sampled_from(choices))
    m = draw(positive_small)
    if kind == "scalar":
        return draw(small_durations)
    if kind == "constant":
        return {"constant": draw(small_durations)}
    if kind == "exponential":
        return {"exponential": draw(small_durations.filter(lambda v: v not in ("0", 0)))}
    if kind == "exponential_mean":
        return {"exponential": {"mean": m}}
    if kind == "uniform":
        return {"uniform": [m / 2, m]}
    if kind == "uniform_map":
        return {"uniform": {"low": "0.1ms", "high": m}}
    if kind == "lognormal":
        return {"lognormal": {"median": m, "p99": m * draw(st.floats(1.0, 8.0))}}
    if kind == "lognormal_cv":
        return {"lognormal": {"mean": m, "cv": draw(st.floats(0.0, 2.0))}}
    if kind == "gamma":
        return {"gamma": {"mean": m, "cv": draw(st.floats(0.1, 2.0))}}
    if kind == "erlang":
        return {"erlang": {"k": draw(st.integers(1, 5)), "mean": m}}
    if kind == "weibull":
        return {"weibull": {"shape": draw(st.floats(0.5, 3.0)), "scale": m}}
    if kind == "pareto":
        return {"pareto": {"shape": draw(st.floats(2.5, 5.0)), "scale": m}}
    if kind == "normal":
        return {"normal": {"mean": m, "sd": m / 4}}
    if kind == "empirical":
        return {"empirical": draw(st.lists(small_durations, min_size=1, max_size=5))}
    return {"mixture": [
        {"weight": draw(st.floats(0.1, 1.0)), "dist": draw(distributions(depth=1))}
        for _ in range(draw(st.integers(1, 3)))
    ]}


@st.composite
def service_times(draw: st.DrawFn, classes: list[str]) -> Any:
    """One distribution, or a per-class / per-operation mapping that covers every class."""
    if draw(st.booleans()):
        return draw(distributions())
    names = draw(st.lists(st.sampled_from([*classes, "read", "write"]), unique=True, max_size=3))
    out = {n: draw(distributions()) for n in names}
    out["default"] = draw(distributions())
    return out


def _queue_bound(draw: st.DrawFn) -> int | None:
    return draw(st.one_of(st.none(), st.integers(0, 50)))


@st.composite
def components(draw: st.DrawFn, kind: str, classes: list[str], lru_ok: bool) -> dict:
    comp: dict[str, Any] = {"kind": kind}
    if draw(st.booleans()):
        comp["service_time"] = draw(service_times(classes))
    if draw(st.integers(0, 4)) == 0:
        comp["description"] = draw(st.text(max_size=20))
    if draw(st.integers(0, 4)) == 0:
        comp["zone"] = draw(st.sampled_from(["a", "b", "us-east-1a"]))
    if kind != "datastore" and kind != "queue" and draw(st.booleans()):
        comp["instances"] = draw(st.integers(1, 3))
    if draw(st.integers(0, 3)) == 0:
        comp["policy"] = draw(st.sampled_from(
            ["round_robin", "random", "least_connections", "power_of_two_choices"]))
    if draw(st.integers(0, 3)) == 0:
        comp["fanout"] = draw(st.sampled_from(["sequential", "parallel"]))
    if kind == "service":
        if draw(st.booleans()):
            comp["workers"] = draw(st.integers(1, 8))
        if draw(st.booleans()):
            comp["queue"] = _queue_bound(draw)
    elif kind == "load_balancer":
        if draw(st.booleans()):
            comp["connections"] = draw(st.integers(1, 100))
            if draw(st.booleans()):  # a wait-queue bound goes with a connection limit
                comp["queue"] = _queue_bound(draw)
    elif kind == "cache":
        if lru_ok and draw(st.booleans()):
            comp["capacity"] = draw(st.integers(1, 500))
            if draw(st.booleans()):
                comp["ttl"] = draw(st.sampled_from(["1s", "500ms", 2, "1m"]))
        else:
            comp["hit_ratio"] = draw(st.one_of(st.floats(0.0, 1.0), st.sampled_from(["80%", "99.5%", 0, 1])))
        if draw(st.booleans()):
            comp["workers"] = draw(st.integers(1, 8))
            if draw(st.booleans()):  # a wait-queue bound goes with a worker limit
                comp["queue"] = _queue_bound(draw)
    elif kind == "datastore":
        for field, lo, hi in (("shards", 1, 4), ("replicas", 1, 3), ("workers", 1, 8), ("vnodes", 1, 50)):
            if draw(st.booleans()):
                comp[field] = draw(st.integers(lo, hi))
        if draw(st.booleans()):
            comp["queue"] = _queue_bound(draw)
        if draw(st.booleans()):
            comp["replication"] = draw(st.sampled_from(["async", "sync"]))
        if draw(st.booleans()):
            comp["read_from"] = draw(st.sampled_from(["any", "primary"]))
    elif kind == "queue":
        if draw(st.booleans()):
            comp["capacity"] = draw(st.integers(1, 100))
    return comp


@st.composite
def keys_specs(draw: st.DrawFn) -> dict:
    if draw(st.booleans()):
        return {"zipf": draw(st.floats(0.0, 1.5)), "n": draw(st.integers(1, 2000))}
    return {"uniform": draw(st.integers(1, 2000))}


@st.composite
def profiles(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["none", "constant", "bare", "ramp", "step", "spike", "diurnal"]))
    if kind == "none":
        return None
    if kind == "bare":
        return "constant"
    if kind == "constant":
        return {"constant": True}
    if kind == "ramp":
        return {"ramp": {"from": draw(st.floats(0, 1)), "to": draw(st.floats(0, 2)),
                         "over": draw(st.sampled_from(["1s", "500ms", 3])),
                         "at": draw(st.sampled_from([0, "0.5s", "1s"]))}}
    if kind in ("step", "spike"):
        at = draw(st.floats(0, 1.5))
        body: dict[str, Any] = {"at": at, "to": draw(st.floats(0, 2))}
        if draw(st.booleans()):
            body["until"] = at + draw(st.floats(0.1, 1.0))
        return {kind: body}
    return {"diurnal": {"period": draw(st.sampled_from(["2s", "1m", 10])),
                        "amplitude": draw(st.floats(0, 1)),
                        "peak": draw(st.sampled_from([0, "1s"]))}}


@st.composite
def workloads(draw: st.DrawFn, classes: list[str], with_keys: bool) -> dict:
    wl: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        wl["users"] = draw(st.integers(1, 5))
        wl["think_time"] = draw(st.sampled_from(
            ["100ms", "0.2s", 0.5, {"exponential": "200ms"}, {"uniform": ["100ms", "300ms"]}]))
    else:
        wl["rate"] = draw(st.one_of(
            st.floats(1.0, 50.0),
            st.integers(1, 50),
            st.sampled_from(["20/s", "30 rps", "600/m", "10", "36000/h"]),
        ))
        prof = draw(profiles())
        if prof is not None:
            wl["profile"] = prof
    if classes != ["default"] or with_keys or draw(st.booleans()):
        reqs = {}
        for c in classes:
            rc: dict[str, Any] = {}
            if draw(st.booleans()):
                rc["weight"] = draw(st.floats(0.1, 5.0))
            if with_keys:
                rc["keys"] = draw(keys_specs())
            if draw(st.integers(0, 3)) == 0:
                rc["op"] = draw(st.sampled_from(["read", "write"]))
            reqs[c] = rc
        wl["requests"] = reqs
    return wl


@st.composite
def designs(draw: st.DrawFn) -> dict:
    """A valid design: 1-5 components, calls that form a DAG from the first (entry) component."""
    n = draw(st.integers(1, 5))
    names = draw(st.lists(st.sampled_from(COMPONENT_NAMES), min_size=n, max_size=n, unique=True))
    kinds = [draw(st.sampled_from(KINDS)) for _ in names]
    if draw(st.booleans()):
        classes = draw(st.lists(st.sampled_from(CLASS_NAMES), min_size=1, max_size=3, unique=True))
    else:
        classes = ["default"]
    with_keys = draw(st.booleans())
    comps = {nm: draw(components(k, classes, with_keys)) for nm, k in zip(names, kinds, strict=True)}

    calls: list[dict] = []
    for j in range(1, n):
        # every later component gets a caller among the earlier ones (so it is reachable),
        # sometimes a second one: i < j keeps the graph acyclic
        sources = draw(st.lists(st.integers(0, j - 1), min_size=1, max_size=2, unique=True))
        for i in sources:
            src, dst = names[i], names[j]
            sk, dk = kinds[i], kinds[j]
            if sk == "queue" and dk != "service":
                continue
            call: dict[str, Any] = {"from": src, "to": dst}
            if sk == "cache" and draw(st.booleans()):
                call["on"] = "miss"
            if draw(st.integers(0, 3)) == 0 and len(classes) > 1:
                call["requests"] = draw(st.lists(st.sampled_from(classes), min_size=1, unique=True))
            if draw(st.integers(0, 3)) == 0:
                call["probability"] = draw(st.one_of(st.floats(0.0, 1.0), st.just("50%")))
            if draw(st.integers(0, 3)) == 0:
                call["latency"] = draw(distributions())
            if draw(st.integers(0, 3)) == 0:
                call["timeout"] = draw(st.sampled_from(["1s", "50ms", 2]))
            if sk != "queue" and draw(st.integers(0, 3)) == 0:
                forward_ok = dk != "queue" and call.get("on") != "miss"
                modes = ["call", "forward", "async"] if forward_ok else ["call", "async"]
                call["mode"] = draw(st.sampled_from(modes))
            calls.append(call)
    for nm, k in zip(names, kinds, strict=True):  # a queue needs a consumer (else it is an error)
        if k == "queue" and not any(c["from"] == nm for c in calls):
            comps[f"{nm}-consumer"] = draw(components("service", classes, with_keys))
            calls.append({"from": nm, "to": f"{nm}-consumer"})

    wl = draw(workloads(classes, with_keys))
    if n > 1 or draw(st.booleans()):
        wl["entry"] = names[0]
    spec: dict[str, Any] = {"workload": wl, "components": comps}
    if draw(st.booleans()):
        spec["name"] = draw(st.sampled_from(["design", "two-tier", "cached sharded"]))
    if draw(st.integers(0, 3)) == 0:
        spec["description"] = "a random design"
    if calls or draw(st.booleans()):
        spec["calls"] = calls
    if draw(st.booleans()):
        slo: dict[str, Any] = {}
        for t in draw(st.lists(st.sampled_from(["mean", "p50", "p90", "p95", "p99", "p999"]),
                               max_size=3, unique=True)):
            slo[t] = draw(st.sampled_from(["50ms", "1s", 0.2]))
        if draw(st.booleans()):
            slo["availability"] = draw(st.sampled_from(["99.9%", 0.99, 1]))
        spec["slo"] = slo
    if draw(st.booleans()):
        spec["simulation"] = {"duration": "10s", "warmup": "1s", "seed": draw(st.integers(0, 100))}
    return spec


# --------------------------------------------------------------------------- mutations

BAD_VALUES = st.sampled_from([
    "abc", "", -1, 0, -3.5, 10**30, 2**63, 1e308, float("inf"), float("-inf"), float("nan"),
    None, [], [1, "x"], {"x": {"y": 1}}, {}, True, False, "4 msec", "ms4", "-3ms", "4mss",
    "1e10", "120%", "-5%", {"expo": "4ms"}, {"exponentail": {"mean": "2ms"}}, ["4ms"], 2.5,
])
UNKNOWN_FIELDS = st.one_of(
    st.sampled_from(["wrokers", "instance", "servicetime", "service-time", "ratee", "kinds",
                     "capcity", "replica", "foo", "Workers", "on_miss", "timeout_ms", "latency "]),
    st.text(alphabet=st.characters(categories=["L", "N"], include_characters="_-. "),
            min_size=1, max_size=12),
)
DURATION_TYPOS = st.sampled_from(["4 msec", "ms4", "-3ms", "4mss", "4 m s", "4,5ms", "1e", "4sec",
                                  "4 milliseconds", "--4ms", "4ms4", "four ms", "4mS"])
UNKNOWN_KINDS = st.sampled_from(["servise", "lb", "database", "", "Service", "loadbalancer",
                                 "broker", "cdn"])
NON_MAPPINGS = st.sampled_from([[], [1, 2], [{"workload": {"rate": 1}}], "no-such-spec.yaml",
                                "", 0, 5, -1, 3.5, None, True])


def _slots(node: Any, path: tuple = ()) -> list[tuple]:
    """Every (path to container, key) pair in a nested spec."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append((path, k))
        out.extend(_slots(v, (*path, k)))
    return out


def _containers(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every mapping in a nested spec (the root included)."""
    out = [path] if isinstance(node, dict) else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.extend(_containers(v, (*path, k)))
    return out


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _mutate(draw: st.DrawFn, spec: dict) -> Any:
    d = copy.deepcopy(spec)
    comps = d.get("components") if isinstance(d.get("components"), dict) else None
    names = list(comps) if comps else ["api"]
    op = draw(st.sampled_from([
        "delete", "delete", "bad_value", "bad_value", "bad_value", "unknown_field",
        "unknown_field", "duration_typo", "unknown_distribution", "missing_target", "cycle",
        "self_call", "unknown_kind", "zipf_zero", "rate_and_users", "miss_from_non_cache",
        "lru_without_keys", "non_mapping", "delete_required", "huge_number", "huge_number",
    ]))
    slots = _slots(d)
    if op == "delete" and slots:
        path, key = draw(st.sampled_from(slots))
        del _get(d, path)[key]
    elif op == "delete_required":
        where = draw(st.sampled_from(["workload", "components", "kind", "from", "to"]))
        if where in ("workload", "components"):
            d.pop(where, None)
        elif where == "kind" and comps:
            comp = comps[draw(st.sampled_from(names))]
            if isinstance(comp, dict):
                comp.pop("kind", None)
        elif isinstance(d.get("calls"), list) and d["calls"] and isinstance(d["calls"][0], dict):
            d["calls"][0].pop(where, None)
    elif op == "bad_value" and slots:
        path, key = draw(st.sampled_from(slots))
        _get(d, path)[key] = draw(BAD_VALUES)
    elif op == "unknown_field":
        path = draw(st.sampled_from(_containers(d)))
        _get(d, path)[draw(UNKNOWN_FIELDS)] = draw(st.one_of(st.integers(), st.text(max_size=5)))
    elif op == "duration_typo":
        target = draw(st.sampled_from(["service_time", "latency", "timeout", "think_time", "slo",
                                       "simulation", "ttl"]))
        typo = draw(DURATION_TYPOS)
        if target in ("service_time", "ttl") and comps:
            comp = comps[draw(st.sampled_from(names))]
            if isinstance(comp, dict):
                comp[target] = typo
        elif target in ("latency", "timeout") and isinstance(d.get("calls", []), list):
            d.setdefault("calls", []).append({"from": names[0], "to": names[-1], target: typo})
        elif target == "think_time" and isinstance(d.get("workload"), dict):
            d["workload"]["think_time"] = typo
        elif target == "slo":
            d["slo"] = {"p99": typo}
        else:
            d["simulation"] = {draw(st.sampled_from(["duration", "warmup"])): typo}
    elif op == "unknown_distribution":
        bad = draw(st.sampled_from([{"expo": "4ms"}, {"exponentail": {"mean": "2ms"}},
                                    {"lognorm": {"median": "4ms", "p99": "25ms"}},
                                    {"poisson": 3}, {"Exponential": "1ms"}]))
        if draw(st.booleans()) and comps and isinstance(comps[names[0]], dict):
            comps[names[0]]["service_time"] = bad
        elif isinstance(d.get("calls", []), list):
            d.setdefault("calls", []).append({"from": names[0], "to": names[-1], "latency": bad})
    elif op in ("missing_target", "cycle", "self_call", "miss_from_non_cache"):
        if not isinstance(d.get("calls", []), list):
            d["calls"] = []
        calls = d.setdefault("calls", [])
        a, b = names[0], names[-1]
        if op == "missing_target":
            missing = draw(st.sampled_from(["nowhere", "dbb", "API", ""]))
            calls.append(draw(st.sampled_from([{"from": a, "to": missing}, {"from": missing, "to": a}])))
        elif op == "cycle":
            calls.extend([{"from": a, "to": b}, {"from": b, "to": a}])
        elif op == "self_call":
            calls.append({"from": a, "to": a})
        else:
            calls.append({"from": a, "to": b, "on": "miss"})
    elif op == "unknown_kind" and comps:
        comps[draw(st.sampled_from(names))] = {"kind": draw(UNKNOWN_KINDS), "service_time": "1ms"}
    elif op == "zipf_zero" and isinstance(d.get("workload"), dict):
        n = draw(st.sampled_from([0, -1, 10**30, 2**63]))
        d["workload"]["requests"] = {"get": {"keys": {"zipf": 1.0, "n": n}}}
    elif op == "rate_and_users" and isinstance(d.get("workload"), dict):
        d["workload"]["rate"] = 10
        d["workload"]["users"] = 3
    elif op == "lru_without_keys" and comps is not None:
        comps["lru"] = {"kind": "cache", "capacity": 10, "service_time": "1ms"}
        if isinstance(d.get("calls", []), list):
            d.setdefault("calls", []).append({"from": names[0], "to": "lru"})
        wl = d.get("workload")
        if isinstance(wl, dict) and isinstance(wl.get("requests"), dict):
            for rc in wl["requests"].values():
                if isinstance(rc, dict):
                    rc.pop("keys", None)
    elif op == "huge_number":
        huge = draw(st.sampled_from([10**30, 2**63, 10**18, 1e308]))
        wl = d.get("workload")
        comp = comps[draw(st.sampled_from(names))] if comps else None
        if draw(st.booleans()) and isinstance(comp, dict):
            field = draw(st.sampled_from(["instances", "workers", "queue", "shards", "replicas",
                                          "vnodes", "capacity", "connections"]))
            comp[field] = huge
        elif isinstance(wl, dict) and isinstance(wl.get("requests"), dict) and wl["requests"]:
            rc = wl["requests"][draw(st.sampled_from(sorted(wl["requests"])))]
            if isinstance(rc, dict):
                rc["keys"] = draw(st.sampled_from([{"uniform": huge}, {"zipf": 1.0, "n": huge}]))
    elif op == "non_mapping":
        return draw(NON_MAPPINGS)
    return d


@st.composite
def mutated_designs(draw: st.DrawFn) -> Any:
    spec: Any = draw(designs())
    for _ in range(draw(st.integers(0, 3))):
        spec = _mutate(draw, spec)
        if not isinstance(spec, dict):
            break
    return spec


# --------------------------------------------------------------------------- helpers


def _load(spec: Any) -> simarch.Architecture | simarch.SpecError:
    """``simarch.load(spec)``: the architecture, or the SpecError it raised; anything else fails."""
    try:
        return simarch.load(spec)
    except simarch.SpecError as err:
        return err
    except Exception as exc:  # noqa: BLE001 - the property under test
        raise AssertionError(
            f"simarch.load raised {type(exc).__name__}: {exc}\nspec: {spec!r}") from exc


def _same_mean(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a.mean, b.mean, rel_tol=1e-9, abs_tol=1e-15) or a.mean == b.mean


def _assert_same_component(a: Any, b: Any, where: str) -> None:
    """Two validated components agree: equal fields, service times with equal means."""
    assert type(a) is type(b), where
    for name in type(a).model_fields:
        va, vb = getattr(a, name), getattr(b, name)
        if name == "service_time":
            assert _same_mean(va.default, vb.default), (where, va, vb)
            assert sorted(va.by_name) == sorted(vb.by_name), (where, va, vb)
            for k in va.by_name:
                assert _same_mean(va.by_name[k], vb.by_name[k]), (where, k, va, vb)
        else:
            assert va == vb, (where, name, va, vb)


def _load_checked_elsewhere(spec: Any) -> simarch.Architecture | simarch.SpecError:
    """Like :func:`_load`, but an exception of another type (property 1's concern, reported by
    its own test) discards the example so that the other properties report their own failures."""
    try:
        return simarch.load(spec)
    except simarch.SpecError as err:
        return err
    except Exception:  # noqa: BLE001
        assume(False)
        raise


# --------------------------------------------------------------------------- properties


def _one_component(**comp: Any) -> dict:
    return {"workload": {"rate": 10}, "components": {"c": {"service_time": "1ms", **comp}}}


def _one_class(keys: dict) -> dict:
    return {"workload": {"rate": 10, "requests": {"get": {"keys": keys}}},
            "components": {"api": {"kind": "service", "service_time": "1ms"}}}


# Absurd sizes that a YAML file can hold: checked on every run, whatever the strategy draws.
HUGE_SIZES = [
    _one_component(kind="datastore", shards=10**30),
    _one_component(kind="datastore", replicas=10**18),
    _one_component(kind="datastore", shards=2**63, replicas=2),
    _one_component(kind="service", instances=10**30, workers=10**30),
    _one_component(kind="cache", capacity=10**30),
    _one_class({"zipf": 1.0, "n": 10**30}),
    _one_class({"uniform": 2**63}),
    _one_component(kind="service", service_time={"lognormal": {"mu": 0, "sigma": 1e10}}),
    _one_component(kind="service", service_time={"exponential": 1e308}),
]
NON_MAPPING_SPECS = [[], [1, 2], 0, 5, None, 3.5, True, b"workload: {}"]


def _with_examples(specs: list) -> Any:
    def deco(fn: Any) -> Any:
        for spec in reversed(specs):
            fn = example(spec)(fn)
        return fn
    return deco




@FAST
@_with_examples(NON_MAPPING_SPECS + HUGE_SIZES)
@given(mutated_designs())
def test_load_returns_architecture_or_raises_spec_error(spec: Any) -> None:
    """Property 1: whatever the input, no exception other than SpecError escapes ``load``."""
    out = _load(spec)
    assert isinstance(out, simarch.Architecture | simarch.SpecError)


@FAST
@_with_examples(NON_MAPPING_SPECS + HUGE_SIZES)
@given(mutated_designs())
def test_spec_errors_are_one_line_with_a_field_path(spec: Any) -> None:
    """Property 2: a SpecError reads as one non-empty line and its path starts at a top-level field."""
    out = _load_checked_elsewhere(spec)
    if not isinstance(out, simarch.SpecError):
        return
    text = str(out)
    assert text.strip(), f"empty error message for spec {spec!r}"
    assert "\n" not in text and "\r" not in text, f"multi-line error {text!r} for spec {spec!r}"
    assert out.message and "\n" not in out.message
    assert isinstance(out.path, tuple)
    if out.path:
        first = out.path[0]
        unknown_top_level = (isinstance(spec, dict) and first in spec
                             and "unknown field" in out.message)
        assert first in TOP_LEVEL_FIELDS or unknown_top_level, (
            f"path {out.path!r} does not start at a top-level field; error {text!r}; spec {spec!r}")
        assert out.field in text, f"the error {text!r} does not name its field {out.field!r}"


@FAST
@given(mutated_designs())
def test_loaded_designs_have_a_graph_and_round_trip(spec: Any) -> None:
    """Property 3: a loaded design has one graph node per component and reloads from resolved()."""
    arch = _load_checked_elsewhere(spec)
    if isinstance(arch, simarch.SpecError):
        return
    g = arch.graph
    assert isinstance(g, nx.DiGraph)
    names = list(arch.spec.components)
    assert sorted(g.nodes) == sorted(names)
    assert g.number_of_nodes() == len(names)
    for src, dst in g.edges:
        assert src in names and dst in names and src != dst
    assert nx.is_directed_acyclic_graph(g)

    resolved = arch.resolved()
    again = _load(resolved)
    assert isinstance(again, simarch.Architecture), (
        f"resolved() does not load back: {again}\nresolved: {resolved!r}\nspec: {spec!r}")
    assert list(again.spec.components) == names
    assert again.entry == arch.entry
    assert len(again.spec.calls) == len(arch.spec.calls)
    for name in names:
        _assert_same_component(again.spec.components[name], arch.spec.components[name], name)
    assert again.resolved()["components"].keys() == resolved["components"].keys()


@FAST
@given(designs())
def test_generated_designs_are_valid(spec: dict) -> None:
    """The unmutated designs load (the strategy itself is right), so the mutations are what fail."""
    arch = _load(spec)
    assert isinstance(arch, simarch.Architecture), f"{arch}\nspec: {spec!r}"


@FAST
@_with_examples(HUGE_SIZES)
@given(mutated_designs())
def test_capacity_analysis_of_loaded_designs_never_crashes(spec: Any) -> None:
    """What ``simarch validate`` does after loading: it works or raises SpecError, nothing else."""
    arch = _load_checked_elsewhere(spec)
    if isinstance(arch, simarch.SpecError):
        return
    try:
        rep = simarch.capacity_report(arch)
        str(rep)
    except simarch.SpecError:
        pass
    except Exception as exc:  # noqa: BLE001 - the property under test
        raise AssertionError(
            f"capacity_report raised {type(exc).__name__}: {exc}\nspec: {spec!r}") from exc


@SIM
@given(designs())
def test_small_valid_designs_simulate(spec: dict) -> None:
    """Property 4: a valid design simulates; availability is in [0, 1] or NaN."""
    arch = simarch.load(spec)
    try:
        result = simarch.simulate(arch, duration="2s", warmup="0s", seed=1)
    except Exception as exc:  # noqa: BLE001 - the property under test
        raise AssertionError(f"simulate raised {type(exc).__name__}: {exc}\nspec: {spec!r}") from exc
    row = result.summary().loc["all"]
    availability = float(row["availability"])
    assert math.isnan(availability) or 0.0 <= availability <= 1.0, availability
    assert row["throughput_rps"] >= 0
    assert row["requests"] >= row["completed"] >= 0
    doc = result.to_dict()
    avail = doc["summary"]["availability"]
    assert avail is None or (isinstance(avail, float) and (math.isnan(avail) or 0.0 <= avail <= 1.0))


@YAML_RT
@given(designs())
def test_yaml_text_round_trip(tmp_path_factory: Any, spec: dict) -> None:
    """A valid design dumped with yaml.safe_dump loads from the file, the same as from the dict."""
    path = tmp_path_factory.mktemp("spec") / "design.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    from_file = _load(path)
    assert isinstance(from_file, simarch.Architecture), (
        f"{from_file}\nYAML:\n{path.read_text(encoding='utf-8')}")
    from_dict = simarch.load(spec)
    assert list(from_file.spec.components) == list(from_dict.spec.components)
    assert from_file.entry == from_dict.entry
    for name in from_dict.spec.components:
        _assert_same_component(from_file.spec.components[name], from_dict.spec.components[name], name)

    # and the resolved spec, dumped as YAML text, loads again
    resolved_path = path.with_name("resolved.yaml")
    resolved_path.write_text(from_file.to_yaml(), encoding="utf-8")
    assert isinstance(_load(resolved_path), simarch.Architecture)


def test_distribution_names_are_the_known_ones() -> None:
    """The mutation strategy's unknown distribution names really are unknown."""
    for name in ("expo", "exponentail", "lognorm", "poisson", "Exponential"):
        assert name not in DISTRIBUTION_NAMES


def test_capacity_of_an_lru_cache_when_one_class_is_too_rare_to_count():
    """A class whose rate underflows (probability 5e-324) with a larger key space than the
    others: the cache's hit ratio model treats its unseen keys as never cached (found by
    the property above)."""
    spec = {"workload": {"users": 1, "think_time": "100ms", "entry": "api", "requests": {
        "read": {"keys": {"uniform": 2}, "op": "read"}, "write": {"keys": {"uniform": 10}}}},
        "components": {"api": {"kind": "service"}, "web": {"kind": "cache", "capacity": 1}},
        "calls": [{"from": "api", "to": "web", "probability": 5e-324, "timeout": "1s"}]}
    rep = simarch.capacity_report(simarch.load(spec))
    assert "web" in str(rep)
