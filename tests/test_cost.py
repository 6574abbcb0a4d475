"""The cost of a design: prices per kind and unit, the catalogue of instance types (built in
and a user's file), bad prices, and the cost in the run report, the comparison and the HTML.

Every expected figure is worked out by hand in the test: a month is 730 hours, so an hourly
price p for n boxes is p x n x 730; a queue's messages in a month are its rate x 2,628,000.
"""

from __future__ import annotations

import json
import math
import pickle
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import simarch_cli
from test_cli_errors import assert_one_line_error

import simarch
from simarch.model.cost import CostBreakdown, design_cost, per_million, static_visit_rates
from simarch.model.pricing import BUILTIN, HOURS_PER_MONTH, SECONDS_PER_MONTH, builtin_catalogue


def spec(components: dict, calls: list | None = None, **top) -> dict:
    workload = top.pop("workload", {"rate": 100})
    return {"name": top.pop("name", "priced"), "workload": workload, "components": components,
            "calls": calls or [], **top}


def cost_of(components: dict, calls: list | None = None, rates=None, **top) -> CostBreakdown:
    return design_cost(simarch.load(spec(components, calls, **top)), rates)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- units per kind


def test_month_and_currency():
    assert HOURS_PER_MONTH == 730
    assert SECONDS_PER_MONTH == 730 * 3600 == 2_628_000


def test_service_plain_number_is_per_instance_hour():
    b = cost_of({"api": {"kind": "service", "instances": 3, "cost": 0.08}})
    line = b.line("api")
    assert (line.unit, line.unit_price, line.quantity, line.quantity_unit) == (
        "per_instance_hour", 0.08, 3, "instances")
    assert line.monthly_usd == pytest.approx(0.08 * 3 * 730)  # 175.20
    assert line.monthly_usd == pytest.approx(175.2)
    assert b.monthly_usd == pytest.approx(175.2)
    assert line.source == "explicit"


def test_load_balancer_per_instance_hour():
    b = cost_of({"lb": {"kind": "load_balancer", "instances": 2, "cost": {"per_instance_hour": 0.0225}},
                 "api": {"kind": "service"}}, [{"from": "lb", "to": "api"}])
    assert b.line("lb").monthly_usd == pytest.approx(32.85)  # 0.0225 x 2 x 730
    assert b.unpriced == ("api",)


def test_datastore_every_replica_of_every_shard_is_a_box():
    b = cost_of({"db": {"kind": "datastore", "shards": 2, "replicas": 3,
                        "cost": {"per_replica_hour": 0.25}}})
    line = b.line("db")
    assert (line.unit, line.quantity, line.quantity_unit) == ("per_replica_hour", 6, "replicas")
    assert line.monthly_usd == pytest.approx(1095.0)  # 0.25 x (2 x 3) x 730
    # a plain number is per replica-hour for a datastore
    assert cost_of({"db": {"kind": "datastore", "replicas": 2, "cost": 0.5}}).monthly_usd == pytest.approx(730.0)


def test_cache_per_gb_month_is_capacity_times_item_size():
    keys = {"workload": {"rate": 10, "requests": {"get": {"keys": {"uniform": 100}}}}}
    b = cost_of({"c": {"kind": "cache", "capacity": 1_000_000, "item_size": "1KB",
                       "cost": {"per_gb_month": 5.0}}}, **keys)
    line = b.line("c")
    assert (line.unit, line.quantity_unit) == ("per_gb_month", "GB")
    assert line.quantity == pytest.approx(1.0)  # 10^6 entries x 1,000 bytes = 10^9 bytes
    assert line.monthly_usd == pytest.approx(5.0)
    b = cost_of({"c": {"kind": "cache", "capacity": 250_000, "item_size": "4KiB",
                       "cost": {"per_gb_month": 5.0}}}, **keys)
    assert b.line("c").quantity == pytest.approx(1.024)  # 250,000 x 4,096 bytes
    assert b.monthly_usd == pytest.approx(5.12)


def test_cache_per_instance_hour():
    b = cost_of({"c": {"kind": "cache", "hit_ratio": 0.9, "instances": 2,
                       "cost": {"per_instance_hour": 0.2}}})
    assert b.line("c").monthly_usd == pytest.approx(292.0)  # 0.2 x 2 x 730


def test_queue_per_million_messages_at_a_given_rate():
    comps = {"api": {"kind": "service"}, "q": {"kind": "queue", "cost": 0.40}, "w": {"kind": "service"}}
    calls = [{"from": "api", "to": "q", "mode": "async"}, {"from": "q", "to": "w"}]
    b = cost_of(comps, calls, rates={"q": 100.0})
    line = b.line("q")
    assert (line.unit, line.quantity_unit) == ("per_million_messages", "messages")
    assert line.quantity == pytest.approx(262_800_000)  # 100/s x 2,628,000 s
    assert line.monthly_usd == pytest.approx(105.12)  # 262.8 million x $0.40
    assert "message rate: given" in line.note


def test_queue_rate_from_the_workload_without_a_run():
    """200 rps, 1 in 4 requests a put (weights 3:1): 50 puts/s go to the queue; half of the
    gets reach a second queue through a cache that hits 75 % of the time (on: miss)."""
    wl = {"rate": 200, "requests": {"get": {"weight": 3}, "put": {"weight": 1}}}
    comps = {"api": {"kind": "service"},
             "q": {"kind": "queue", "cost": {"per_million_messages": 0.40}},
             "cache": {"kind": "cache", "hit_ratio": 0.75},
             "q2": {"kind": "queue", "cost": 1.0},
             "w": {"kind": "service"}}
    calls = [{"from": "api", "to": "q", "requests": ["put"], "mode": "async"},
             {"from": "api", "to": "cache", "requests": ["get"], "probability": 0.5},
             {"from": "cache", "to": "q2", "on": "miss", "mode": "async"},
             {"from": "q", "to": "w"}, {"from": "q2", "to": "w"}]
    arch = simarch.load(spec(comps, calls, workload=wl))
    rates = static_visit_rates(arch.spec)
    assert rates["q"] == pytest.approx(50.0)
    assert rates["cache"] == pytest.approx(75.0)  # 150 gets/s x 0.5
    assert rates["q2"] == pytest.approx(18.75)  # 75 x (1 - 0.75)
    b = design_cost(arch)
    assert b.line("q").monthly_usd == pytest.approx(52.56)  # 50 x 2.628 million x $0.40
    assert b.line("q2").monthly_usd == pytest.approx(49.275)  # 18.75 x 2.628 x $1
    assert "static estimate" in b.line("q").note
    # at twice the load, twice the messages
    assert design_cost(arch, load=2.0).line("q").monthly_usd == pytest.approx(105.12)


def test_per_million_successful_requests():
    # $1,095 a month at 100 successful rps: 262.8 million requests a month
    assert per_million(1095.0, 100.0) == pytest.approx(1095.0 / 262.8)
    assert per_million(1095.0, 0.0) == math.inf
    assert math.isnan(per_million(1095.0, None))


def test_breakdown_is_plain_data():
    b = cost_of({"api": {"kind": "service", "instances": 2, "cost": 0.1}, "x": {"kind": "service"}},
                [{"from": "api", "to": "x"}])
    assert pickle.loads(pickle.dumps(b)) == b
    d = b.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["currency"] == "USD" and d["hours_per_month"] == 730
    assert d["components"]["api"]["monthly_usd"] == pytest.approx(146.0)
    assert d["unpriced"] == ["x"]


def test_design_cost_is_fast_enough_for_a_planner():
    arch = simarch.load("architectures/cached_sharded.yaml")
    priced = arch.with_changes({"api.instance_type": "m7g.large", "db.cost": 0.24,
                                "lb.cost": 0.0225, "cache.instance_type": "cache.r7g.large"})
    design_cost(priced.spec)
    t = time.perf_counter()
    for _ in range(200):
        b = design_cost(priced.spec)
    assert (time.perf_counter() - t) / 200 < 0.005
    # lb 2 x 0.0225, api 6 x 0.0816, cache 1 x 0.219, db 4 x 2 x 0.24 per hour
    assert b.monthly_usd == pytest.approx((2 * 0.0225 + 6 * 0.0816 + 0.219 + 8 * 0.24) * 730)


# --------------------------------------------------------------------------- the catalogue


def test_builtin_catalogue_cites_every_figure():
    cat = builtin_catalogue()
    assert 10 <= len(cat) <= 20
    for name, t in cat.types.items():
        assert t.per_hour > 0 and t.cores >= 1, name
        assert t.provider in ("aws", "gcp", "azure"), name
        if t.source is not None:
            assert t.source.startswith("https://") and t.read, name
        else:
            assert t.note and t.note.startswith("not confirmed"), name
    for wanted in ("m7g.large", "m7i.large", "m6i.large", "c7g.large", "r7g.large",
                   "cache.r7g.large", "db.r6g.large", "n2-standard-2", "Standard_D2s_v5"):
        assert wanted in cat


def test_the_catalogue_ships_inside_the_package():
    assert BUILTIN.parent == Path(simarch.__file__).parent / "model"
    tool = __import__("tomllib").loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert tool["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["simarch"]


def test_instance_type_prices_by_the_hour_and_gives_one_worker_per_core():
    b = cost_of({"api": {"kind": "service", "instances": 4, "instance_type": "m7g.large"}})
    line = b.line("api")
    assert line.monthly_usd == pytest.approx(238.272)  # 0.0816 x 4 x 730
    assert (line.source, line.instance_type) == ("catalogue: m7g.large", "m7g.large")
    arch = simarch.load(spec({"api": {"kind": "service", "instance_type": "m7g.xlarge"},
                              "db": {"kind": "datastore", "replicas": 2, "instance_type": "db.r6g.large"},
                              "c": {"kind": "cache", "hit_ratio": 0.5, "instance_type": "cache.r7g.large"},
                              "lb": {"kind": "load_balancer", "instance_type": "m7g.large"}},
                             [{"from": "lb", "to": "api"}, {"from": "api", "to": "db"},
                              {"from": "api", "to": "c"}]))
    comps = arch.spec.components
    assert comps["api"].workers == 4
    assert comps["db"].workers == 2 and comps["c"].workers == 2
    assert comps["lb"].connections is None  # a load balancer has connections, not workers
    b = design_cost(arch)
    assert b.line("db").monthly_usd == pytest.approx(350.4)  # 0.24 x 2 replicas x 730
    assert b.line("c").monthly_usd == pytest.approx(0.219 * 730)


def test_given_workers_and_an_explicit_cost_win():
    arch = simarch.load(spec({"api": {"kind": "service", "instance_type": "m7g.large", "workers": 8,
                                      "cost": 0.1}}))
    assert arch.spec.components["api"].workers == 8
    line = design_cost(arch).line("api")
    assert line.monthly_usd == pytest.approx(73.0) and line.source == "explicit"


def test_the_priced_example_costs_what_its_prices_say():
    """cached_sharded prices every component; the other examples price nothing but
    autoscaled_diurnal (its static cost: lb 2 x 0.0225, api at its 2 initial instances x
    0.085, db 2 replicas x 0.26). 730 hours a month: lb 2 x 0.0225, api 6 x m7g.large 0.0816,
    cache 1 x 0.219, db 4 x 2 replicas x db.r6g.large 0.24."""
    for path in sorted(Path("architectures").glob("*.yaml")):
        arch = simarch.load(path)
        b = design_cost(arch)
        if path.stem == "autoscaled_diurnal":
            assert b.monthly_usd == pytest.approx(730 * (2 * 0.0225 + 2 * 0.085 + 2 * 0.26))
            continue
        if path.stem != "cached_sharded":
            assert not b.priced, path
            continue
        assert not b.unpriced
        assert b.monthly_usd == pytest.approx(730 * (2 * 0.0225 + 6 * 0.0816 + 0.219 + 8 * 0.24))


def test_a_catalogue_file_adds_and_replaces_types(tmp_path):
    write(tmp_path, "prices.yaml", """\
        types:
          big.box: {per_hour: 1.5, cores: 16, note: our negotiated rate}
          m7g.large: {per_hour: 0.05, cores: 2}
        """)
    path = write(tmp_path, "design.yaml", """\
        catalogue: prices.yaml
        workload: {rate: 10}
        components:
          api: {kind: service, instance_type: big.box, service_time: 1ms}
          db: {kind: datastore, instance_type: m7g.large, service_time: 1ms}
          c: {kind: cache, hit_ratio: 0.5, instance_type: c7g.large}
        calls: [{from: api, to: db}, {from: api, to: c}]
        """)
    arch = simarch.load(path)
    assert arch.spec.components["api"].workers == 16
    b = design_cost(arch)
    assert b.line("api").monthly_usd == pytest.approx(1095.0)  # 1.5 x 730
    assert b.line("db").monthly_usd == pytest.approx(36.5)  # 0.05 x 730: the file's price
    assert b.line("c").monthly_usd == pytest.approx(0.0725 * 730)  # still the built-in one
    # the resolved spec carries the types it uses, so it stands alone
    again = simarch.load(yaml.safe_load(arch.to_yaml()))
    assert design_cost(again).monthly_usd == pytest.approx(b.monthly_usd)
    assert set(yaml.safe_load(arch.to_yaml())["catalogue"]["types"]) == {"big.box", "m7g.large", "c7g.large"}


def test_an_inline_catalogue_and_the_python_builder():
    arch = (simarch.Architecture("built", workload={"rate": 10},
                                 catalogue={"types": {"tiny": {"per_hour": 0.01, "cores": 1}}})
            .add("api", kind="service", instances=2, instance_type="tiny", service_time="1ms"))
    assert design_cost(arch).monthly_usd == pytest.approx(14.6)  # 0.01 x 2 x 730
    changed = arch.with_changes({"api.instance_type": "m7g.large"})
    assert changed.spec.components["api"].workers == 2
    assert design_cost(changed).monthly_usd == pytest.approx(0.0816 * 2 * 730)


# --------------------------------------------------------------------------- bad input

BAD = {
    "unknown_instance_type": (
        {"api": {"kind": "service", "instance_type": "m7g.lage"}},
        ("components", "api", "instance_type"), ("unknown instance type 'm7g.lage'",
                                                 "did you mean 'm7g.large'", "allowed:", "n2-standard-2")),
    "wrong_unit_for_the_kind": (
        {"db": {"kind": "datastore", "cost": {"per_instance_hour": 0.2}}},
        ("components", "db", "cost"), ("a datastore is priced per_replica_hour", "not per_instance_hour")),
    "unknown_unit": (
        {"api": {"kind": "service", "cost": {"per_hour": 0.2}}},
        ("components", "api", "cost"), ("unknown unit of price 'per_hour'", "did you mean 'per_instance_hour'")),
    "negative_price": (
        {"api": {"kind": "service", "cost": {"per_instance_hour": -0.2}}},
        ("components", "api", "cost", "per_instance_hour"), (">= 0", "-0.2")),
    "negative_plain_price": (
        {"api": {"kind": "service", "cost": -1}},
        ("components", "api", "cost", "per_instance_hour"), (">= 0",)),
    "two_units": (
        {"c": {"kind": "cache", "hit_ratio": 0.5, "cost": {"per_instance_hour": 1, "per_gb_month": 2}}},
        ("components", "c", "cost"), ("one unit",)),
    "plain_number_for_a_cache": (
        {"c": {"kind": "cache", "hit_ratio": 0.5, "cost": 0.3}},
        ("components", "c", "cost"), ("per_instance_hour or per_gb_month", "say which")),
    "gb_month_without_item_size": (
        {"c": {"kind": "cache", "hit_ratio": 0.5, "cost": {"per_gb_month": 2}}},
        ("components", "c"), ("capacity x item_size", "item_size")),
    "bad_item_size": (
        {"c": {"kind": "cache", "hit_ratio": 0.5, "item_size": "1 parsec"}},
        ("components", "c", "item_size"), ("a size such as",)),
    "instance_type_on_a_queue": (
        {"api": {"kind": "service"}, "q": {"kind": "queue", "instance_type": "m7g.large"},
         "w": {"kind": "service"}},
        ("components", "q"), ("per_million_messages", "'instance_type' does not apply")),
    "price_as_text": (
        {"api": {"kind": "service", "cost": "cheap"}},
        ("components", "api", "cost"), ("a price is a number of USD",)),
    "catalogue_not_a_file_name": (
        {"api": {"kind": "service"}}, ("catalogue",), ("a catalogue is the name of a YAML file",)),
}


@pytest.mark.parametrize("case", BAD, ids=str)
def test_bad_prices_give_one_spec_error_with_the_field_path(case):
    comps, path, fragments = BAD[case]
    data = spec(comps, [{"from": "api", "to": "q"}, {"from": "q", "to": "w"}] if "q" in comps else None)
    if case == "catalogue_not_a_file_name":
        data["catalogue"] = 42
    with pytest.raises(simarch.SpecError) as info:
        simarch.load(data)
    assert info.value.path == path, str(info.value)
    for f in fragments:
        assert f in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_the_builder_fails_at_the_add_that_is_wrong():
    arch = simarch.Architecture("b", workload={"rate": 1})
    with pytest.raises(simarch.SpecError) as info:
        arch.add("api", kind="service", instance_type="m9.huge")
    assert info.value.path == ("components", "api", "instance_type")


BAD_CATALOGUES = {
    "negative_price": ("types:\n  box: {per_hour: -1, cores: 2}\n", "types.box.per_hour", "USD per hour >= 0"),
    "no_cores": ("types:\n  box: {per_hour: 1}\n", "types.box.cores", "required field is missing"),
    "zero_cores": ("types:\n  box: {per_hour: 1, cores: 0}\n", "types.box.cores", "whole number of cores"),
    "typo": ("types:\n  box: {per_hour: 1, cores: 2, prices: 3}\n", "types.box.prices", "unknown field 'prices'"),
    "no_types": ("instances: {}\n", "instances", "unknown field 'instances'"),
    "broken_yaml": ("types: {box: [\n", "", "broken YAML"),
    "not_a_mapping": ("- box\n", "", "a catalogue is a mapping"),
}


@pytest.mark.parametrize("case", BAD_CATALOGUES, ids=str)
def test_a_bad_catalogue_file_names_the_file_and_the_field(tmp_path, case):
    text, field, fragment = BAD_CATALOGUES[case]
    cat = write(tmp_path, "prices.yaml", text)
    path = write(tmp_path, "design.yaml", """\
        catalogue: prices.yaml
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 1ms}
        """)
    with pytest.raises(simarch.SpecError) as info:
        simarch.load(path)
    assert info.value.source == str(cat)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_a_missing_catalogue_file_is_the_specs_error(tmp_path):
    path = write(tmp_path, "design.yaml", """\
        catalogue: nowhere.yaml
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 1ms}
        """)
    with pytest.raises(simarch.SpecError) as info:
        simarch.load(path)
    assert info.value.source == str(path) and info.value.path == ("catalogue",)
    assert "does not exist" in str(info.value)


CLI_CASES = {
    "unknown_instance_type": ("api: {kind: service, instance_type: m7g.lage, service_time: 1ms}",
                              None, ("design.yaml", "components.api.instance_type", "did you mean 'm7g.large'")),
    "wrong_unit": ("db: {kind: datastore, cost: {per_gb_month: 1}, service_time: 1ms}",
                   None, ("design.yaml", "components.db.cost", "per_replica_hour")),
    "negative_price": ("api: {kind: service, cost: -0.5, service_time: 1ms}",
                       None, ("design.yaml", "components.api.cost.per_instance_hour", ">= 0")),
    "bad_catalogue_file": ("api: {kind: service, instance_type: box, service_time: 1ms}",
                           "types:\n  box: {per_hour: -2, cores: 2}\n",
                           ("prices.yaml", "types.box.per_hour", "USD per hour")),
}


@pytest.mark.parametrize("case", CLI_CASES, ids=str)
def test_bad_prices_on_the_command_line_exit_2_with_one_line(tmp_path, case):
    component, catalogue, fragments = CLI_CASES[case]
    top = ""
    if catalogue is not None:
        write(tmp_path, "prices.yaml", catalogue)
        top = "catalogue: prices.yaml\n"
    path = tmp_path / "design.yaml"
    path.write_text(f"{top}workload: {{rate: 10}}\ncomponents:\n  {component}\n", encoding="utf-8")
    for command in (["run", path, "--duration", "1s", "--warmup", "0s"], ["validate", path]):
        assert_one_line_error(simarch_cli(*command), *fragments)


# --------------------------------------------------------------------------- reports

PRICED = """\
    name: priced
    workload:
      rate: 200
      requests:
        get: {weight: 3}
        put: {weight: 1}
    components:
      api: {kind: service, instances: 2, instance_type: m7g.large, service_time: {exponential: 2ms}}
      db: {kind: datastore, replicas: 2, workers: 8, cost: {per_replica_hour: 0.25}, service_time: 1ms}
      events: {kind: queue, cost: {per_million_messages: 0.40}, service_time: 0.1ms}
      writer: {kind: service, workers: 4, service_time: 1ms}
    calls:
      - {from: api, to: db}
      - {from: api, to: events, requests: [put], mode: async}
      - {from: events, to: writer}
    """


@pytest.fixture(scope="module")
def priced(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("priced"), "priced.yaml", PRICED)


@pytest.fixture(scope="module")
def run(priced):
    return simarch.simulate(priced, duration="20s", warmup="2s", seed=3, progress=False)


def test_a_run_has_the_cost_at_the_simulated_message_rate(run):
    c = run.cost
    assert c is not None
    enqueued = run.component_stats["events"]["throughput_rps"]
    assert enqueued > 0
    fixed = 0.0816 * 2 * 730 + 0.25 * 2 * 730  # api 2 instances, db 2 replicas
    assert c.line("events").monthly_usd == pytest.approx(enqueued * 2.628 * 0.40)
    assert c.monthly_usd == pytest.approx(fixed + enqueued * 2.628 * 0.40)
    assert "simulated" in c.line("events").note
    assert c.unpriced == ("writer",)


def test_cost_per_million_successful_requests_on_a_simulated_run(run):
    ok = run.summary().loc["all", "ok"]
    successful_rps = ok / run.duration
    expected = run.cost.monthly_usd / (successful_rps * 730 * 3600 / 1e6)
    assert run.cost_per_million == pytest.approx(expected)
    report = simarch.cost(run)
    assert report.per_million() == pytest.approx(expected)
    assert report.monthly_usd == pytest.approx(run.cost.monthly_usd)
    d = run.to_dict()["cost"]
    assert d["monthly_usd"] == pytest.approx(run.cost.monthly_usd)
    assert d["per_million_successful_usd"] == pytest.approx(expected)
    assert d["components"]["api"]["source"] == "catalogue: m7g.large"
    json.dumps(run.to_dict())


def test_the_run_report_shows_the_cost(run):
    text = run.report()
    assert "Cost (USD, on-demand list prices; a month is 730 hours)" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("Cost: $"))
    assert "/month;" in line and "per million successful requests at the simulated load" in line
    assert "catalogue: m7g.large" in text and "not priced" in text
    assert "Cost" in run._repr_html_()


def test_no_price_no_cost_anywhere():
    r = simarch.simulate("architectures/single_server.yaml", duration="3s", warmup="0s", progress=False)
    assert r.cost is None and r.cost_per_million is None
    assert "cost" not in r.to_dict()
    assert "Cost" not in r.report()
    assert not simarch.cost("architectures/single_server.yaml").breakdown.priced


def test_simarch_cost_without_a_run_uses_the_static_capacity_model(priced):
    report = simarch.cost(priced, load="2x")
    assert report.message_rates_from == "static capacity model"
    # 200 rps x 2, a quarter of them puts: 100 messages a second
    assert report.breakdown.line("events").quantity == pytest.approx(100 * 2_628_000)
    table = report.table
    assert list(table.index) == ["api", "db", "events"]
    assert table.loc["db", "monthly_usd"] == pytest.approx(365.0)
    assert report.monthly_usd == pytest.approx(table["monthly_usd"].sum())
    assert report.per_million(100.0) == pytest.approx(report.monthly_usd / 262.8)
    with pytest.raises(simarch.SimarchError):
        report.per_million()  # no run: the throughput must be given
    assert "Cost: $" in str(report)


def test_the_command_line_run_prints_the_cost_and_json_has_it(priced, tmp_path):
    proc = simarch_cli("run", priced, "--duration", "5s", "--warmup", "1s")
    assert proc.returncode == 0, proc.stderr
    assert "per million successful requests at the simulated load" in proc.stdout
    proc = simarch_cli("run", priced, "--duration", "5s", "--warmup", "1s", "--json", "--out", tmp_path / "r")
    doc = json.loads(proc.stdout)
    assert doc["cost"]["monthly_usd"] > 0
    assert simarch_cli("report", tmp_path / "r", "--html", tmp_path / "r.html").returncode == 0
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Cost</h2>" in page and "per million successful requests" in page
    assert "catalogue: m7g.large" in page


@pytest.fixture(scope="module")
def comparison(priced):
    bigger = simarch.load(priced).with_changes({"api.instances": 4})
    return simarch.compare([priced, bigger], loads=[1], replications=2, duration="5s", warmup="1s",
                           knee=False, executor="serial", progress=False)


def test_compare_shows_each_designs_cost_and_the_difference(comparison):
    cost = comparison.cost
    assert list(cost["design"]) == ["priced", "priced#2"]
    a, b = cost["monthly_usd"]
    assert b - a == pytest.approx(0.0816 * 2 * 730, rel=0.02)  # two more m7g.large; queues vary a little
    assert cost["diff_usd"].iloc[1] == pytest.approx(b - a)
    assert cost["diff_pct"].iloc[1] == pytest.approx(100 * (b - a) / a)
    thr = comparison.table[(comparison.table.metric == "throughput_rps")].set_index("design")["mean"]
    assert cost["per_million_usd"].iloc[0] == pytest.approx(a / (thr["priced"] * 2.628))
    text = str(comparison)
    assert "Cost (USD a month" in text and "vs priced" in text
    assert "Cost" in comparison._repr_html_()


def test_compare_cost_survives_save_load_and_the_html(comparison, tmp_path):
    comparison.save(tmp_path / "cmp")
    again = simarch.Comparison.load(tmp_path / "cmp")
    assert again.cost["monthly_usd"].tolist() == pytest.approx(comparison.cost["monthly_usd"].tolist())
    meta = json.loads((tmp_path / "cmp" / "simarch.json").read_text())
    assert [c["design"] for c in meta["cost"]] == ["priced", "priced#2"]
    assert simarch_cli("report", tmp_path / "cmp", "--html", tmp_path / "cmp.html").returncode == 0
    page = (tmp_path / "cmp.html").read_text()
    assert "<h2>Cost</h2>" in page and "vs priced" in page


def test_compare_without_prices_has_no_cost(tmp_path):
    cmp = simarch.compare(["architectures/single_server.yaml"], loads=[1], replications=1,
                          duration="2s", warmup="0s", knee=False, executor="serial", progress=False)
    assert len(cmp.cost) == 0 and "cost" not in cmp.to_dict() and "Cost" not in str(cmp)
    cmp.save(tmp_path / "c")
    assert not (tmp_path / "c" / "cost.parquet").exists()


def test_a_sweep_of_a_priced_design_has_its_cost(priced, tmp_path):
    df = simarch.sweep(priced, {"api.instances": [2, 3]}, tmp_path / "sweep", duration="3s",
                       warmup="1s", executor="serial", progress=False)
    by = df.set_index("param.api.instances")["cost_usd_month"]
    assert by[3] - by[2] == pytest.approx(0.0816 * 730, rel=0.02)  # one more m7g.large
    assert simarch_cli("report", tmp_path / "sweep", "--html", tmp_path / "s.html").returncode == 0
    assert "cost USD a month" in (tmp_path / "s.html").read_text()


def test_the_builder_refuses_a_catalogue_of_the_wrong_type():
    with pytest.raises(simarch.SpecError) as info:
        simarch.Architecture("b", workload={"rate": 1}, catalogue=5)
    assert info.value.path == ("catalogue",)
