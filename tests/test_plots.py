"""The plotting functions: each returns what it drew into, draws something labelled, uses
the Axes it is given without opening a figure, never calls ``plt.show``, copes with faults
and with every example design, and draws the same from the saved DataFrames of a run as from
the live Result."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

import simarch  # noqa: E402
from simarch import Architecture, plots  # noqa: E402
from simarch.kinds import kind  # noqa: E402
from simarch.study.compare import Comparison  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "architectures").glob("*.yaml"))

FAULTY = {
    "name": "faulty",
    "workload": {"rate": 300, "requests": {"read": {"weight": 0.8, "keys": {"uniform": 2000}},
                                           "write": {"weight": 0.2, "keys": {"uniform": 2000}}}},
    "components": {
        "api": {"kind": "service", "instances": 2, "workers": 8, "service_time": {"exponential": "2ms"}},
        "cache": {"kind": "cache", "capacity": 500, "service_time": "0.2ms"},
        "db": {"kind": "datastore", "workers": 4, "service_time": {"exponential": "3ms"}},
        "audit": {"kind": "service", "workers": 2, "service_time": "1ms"},
    },
    "calls": [
        {"from": "api", "to": "cache", "requests": ["read"], "timeout": "100ms"},
        {"from": "cache", "to": "db", "on": "miss"},
        {"from": "api", "to": "db", "requests": ["write"], "timeout": "100ms"},
        {"from": "api", "to": "audit", "mode": "async"},
    ],
    "faults": [
        {"kind": "crash", "target": "db", "at": "4s", "duration": "1.5s"},
        {"kind": "cache_flush", "target": "cache", "at": "6s"},
    ],
    "slo": {"p99": "50ms", "availability": 0.999},
}


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def show(*args, **kwargs):
        raise AssertionError("plt.show() must not be called")

    monkeypatch.setattr(plt, "show", show)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def faulty_arch() -> Architecture:
    return Architecture.from_dict(FAULTY)


@pytest.fixture(scope="module")
def faulty(faulty_arch):
    return simarch.simulate(faulty_arch, duration="8s", warmup="2s", seed=1)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """The tidy comparison table: 2 designs x 3 loads x 2 seeds, mean and a t interval."""
    t_975_1dof = 12.706  # two seeds: one degree of freedom
    rows = []
    for name in ("single_server", "scaled_service"):
        arch = simarch.load(ROOT / "architectures" / f"{name}.yaml")
        for load in (1, 2, 4):
            summaries = [simarch.simulate(arch, load=load, duration="3s", warmup="1s", seed=s)
                         .summary().loc["all"] for s in (1, 2)]
            for metric in ("p50_ms", "p99_ms", "p999_ms", "throughput_rps", "availability"):
                v = np.array([s[metric] for s in summaries], dtype=float)
                half = t_975_1dof * v.std(ddof=1) / math.sqrt(len(v))
                rows.append({"design": arch.name, "load": load, "metric": metric,
                             "mean": v.mean(), "ci_low": v.mean() - half, "ci_high": v.mean() + half})
    return pd.DataFrame(rows)


def drew_something(ax: Axes) -> bool:
    return bool(ax.lines or ax.patches or ax.collections)


def assert_labelled(ax: Axes, *, x: bool = True, y: bool = True) -> None:
    assert ax.get_title()
    if x:
        assert ax.get_xlabel()
    if y:
        assert ax.get_ylabel()


def render(ax_or_axes) -> None:
    """Draw the figure: errors of artists that compute their geometry at draw time show."""
    fig = (np.ravel(ax_or_axes)[0] if isinstance(ax_or_axes, np.ndarray) else ax_or_axes).figure
    fig.canvas.draw()


def in_given_ax(draw, **subplots):
    """Call ``draw(ax)`` on a fresh Axes and check no figure was opened."""
    _, ax = plt.subplots(**subplots)
    before = plt.get_fignums()
    out = draw(ax)
    assert plt.get_fignums() == before
    return ax, out


# ------------------------------------------------------------------ latency_cdf


def test_latency_cdf_one_result(faulty):
    ax = plots.latency_cdf(faulty)
    assert isinstance(ax, Axes)
    assert drew_something(ax)
    assert_labelled(ax)
    assert "ms" in ax.get_xlabel()
    assert ax.get_xscale() == "log"
    assert ax.get_legend() is not None
    # the curve ends at 100% and starts at 0
    y = ax.lines[0].get_ydata()
    assert y[0] == 0 and y[-1] == pytest.approx(1.0)
    # the three percentiles are written out
    texts = [t.get_text() for t in ax.texts]
    assert any("p99.9" in t for t in texts) and any("p50" in t for t in texts)
    render(ax)


def test_latency_cdf_curves_and_labels(faulty, faulty_arch):
    other = simarch.simulate(faulty_arch, load=2, duration="3s", warmup="1s", seed=1)
    ax = plots.latency_cdf([faulty, other], log=False, marks=None)
    assert ax.get_xscale() == "linear"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 2 and "1x" in labels[0] and "2x" in labels[1]
    assert not ax.texts  # no marks
    ax = plots.latency_cdf({"before": faulty, "after": other})
    assert [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()] == ["before", "after"]


def test_latency_cdf_by_class(faulty):
    ax = plots.latency_cdf(faulty, by_class=True)
    labels = [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()]
    assert labels == ["read", "write", "all classes"]
    with pytest.raises(ValueError, match="single Result"):
        plots.latency_cdf([faulty, faulty], by_class=True)


def test_latency_cdf_subsamples_large_runs_keeping_the_tail(faulty):
    ms = np.random.default_rng(1).exponential(5.0, 100_000)
    x, y = plots._ecdf(ms)
    assert len(x) < 5000
    assert x[-1] == ms.max() and y[-1] == 1.0
    # the tail is kept in detail: the 100 slowest requests each have their step, and no
    # step above the 99th percentile is larger than 0.01 percentage points
    assert np.sum(y > 1 - 100 / len(ms)) == 100
    tail = y[y >= 0.99]
    assert np.diff(tail).max() <= 1e-4
    # a small sample is drawn in full
    x, y = plots._ecdf(ms[:1000])
    assert len(x) == 1001


def test_latency_cdf_draws_into_given_ax(faulty):
    ax, out = in_given_ax(lambda ax: plots.latency_cdf(faulty, ax))
    assert out is ax and drew_something(ax)


def test_latency_cdf_rejects_other_things():
    with pytest.raises(TypeError):
        plots.latency_cdf([1, 2])
    with pytest.raises(ValueError):
        plots.latency_cdf([])


# ------------------------------------------------------------------ metric vs load


def test_percentiles_vs_load(table):
    ax = plots.percentiles_vs_load(table, slo=100)
    assert isinstance(ax, Axes)
    assert_labelled(ax)
    assert "ms" in ax.get_ylabel()
    assert ax.get_yscale() == "log"
    # a line per design with a point per load, a band each, and the SLO line at 100 ms
    design_lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 3]
    assert len(design_lines) == 2
    assert len(ax.collections) == 2
    assert any(np.allclose(ln.get_ydata(), 100) for ln in ax.lines)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"single-server", "scaled-service"} <= set(legend)
    assert any("SLO" in t for t in legend)
    render(ax)


def test_percentiles_vs_load_several_metrics(table):
    ax = plots.percentiles_vs_load(table, metric=["p50_ms", "p99_ms", "p999_ms"])
    styles = {ln.get_linestyle() for ln in ax.lines if len(ln.get_xdata()) == 3}
    assert len(styles) == 3  # one line style per metric
    assert len([ln for ln in ax.lines if len(ln.get_xdata()) == 3]) == 6
    ax = plots.percentiles_vs_load(table, metric="throughput_rps")
    assert ax.get_yscale() == "linear" and "req/s" in ax.get_ylabel()


def test_percentiles_vs_load_synthetic_table_without_ci():
    t = pd.DataFrame({"design": ["a"] * 3, "load": ["1x", "2x", "4x"], "metric": ["p99_ms"] * 3,
                      "mean": [10.0, 12.0, 80.0]})
    ax = plots.percentiles_vs_load(t)
    assert list(ax.lines[0].get_xdata()) == [1, 2, 4]
    assert not ax.collections
    with pytest.raises(ValueError, match="p50_ms"):
        plots.percentiles_vs_load(t, metric="p50_ms")
    with pytest.raises(ValueError, match="column"):
        plots.percentiles_vs_load(t.drop(columns="mean"))


def test_availability_vs_load(table):
    ax = plots.availability_vs_load(table, slo=0.999)
    assert_labelled(ax)
    assert "%" in ax.get_ylabel()
    lo, hi = ax.get_ylim()
    assert 1.0 < hi < 1.0 + 1e-3
    assert all(t <= 1.0 for t in ax.get_yticks() if lo <= t <= hi)  # no tick above 100%
    assert lo < min(table.loc[table.metric == "availability", "ci_low"].min(), 0.999)
    assert any(np.allclose(ln.get_ydata(), 0.999) for ln in ax.lines)
    render(ax)
    assert ax.yaxis.get_major_formatter()(1.0, 0).startswith("100")
    ax = plots.availability_vs_load(table, slo=99.9)  # a percentage is understood
    assert any(np.allclose(ln.get_ydata(), 0.999) for ln in ax.lines)


def test_metric_vs_load_draw_into_given_ax(table):
    ax, out = in_given_ax(lambda ax: plots.percentiles_vs_load(table, ax, metric="p99_ms"))
    assert out is ax and drew_something(ax)
    ax, out = in_given_ax(lambda ax: plots.availability_vs_load(table, ax))
    assert out is ax and drew_something(ax)


# ------------------------------------------------------------------ timeline


def test_timeline_shades_faults(faulty):
    axes = plots.timeline(faulty, window="0.5s")
    assert isinstance(axes, np.ndarray) and axes.shape == (3,)
    assert all(isinstance(a, Axes) for a in axes)
    assert axes[-1].get_xlabel() == "simulated time (s)"
    assert all(a.get_ylabel() for a in axes)
    assert axes[0].get_title()
    assert axes[0].get_xlim() == pytest.approx((2.0, 10.0))
    for a in axes:
        # the crash window is shaded and the flush is a vertical line at 6 s
        spans = [p for p in a.patches if p.get_x() == pytest.approx(4.0)]
        assert spans and spans[0].get_width() == pytest.approx(1.5)
        assert any(np.allclose(ln.get_xdata(), 6.0) for ln in a.lines)
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert sum("crash:db" in t for t in legend) == 1
    assert sum("cache_flush:cache" in t for t in legend) == 1
    assert "SLO" in legend
    render(axes)


def test_timeline_random_faults_are_one_legend_entry():
    arch = simarch.load(ROOT / "architectures" / "spof_redundant.yaml").with_changes({"faults": [
        {"kind": "random", "target": "api", "mtbf": {"exponential": "3s"}, "mttr": "1s"}]})
    r = simarch.simulate(arch, duration="6s", warmup="1s", seed=2)
    assert r.faults()["fault"].nunique() > 1  # one name per instance
    axes = plots.timeline(r, window="1s", metrics=["availability"])
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert len([t for t in legend if t.startswith("random:api")]) == 1


def test_timeline_into_given_axes(faulty):
    fig, axs = plt.subplots(2, 1)
    before = plt.get_fignums()
    out = plots.timeline(faulty, "1s", axs, metrics=["p50_ms", "timeout"])
    assert plt.get_fignums() == before
    assert list(out) == list(axs)
    assert all(drew_something(a) for a in axs)
    with pytest.raises(ValueError, match="one panel per metric"):
        plots.timeline(faulty, "1s", axs, metrics=["p99_ms"])
    with pytest.raises(ValueError, match="unknown"):
        plots.timeline(faulty, "1s", metrics=["nope"])
    # a single Axes for a single metric
    ax = plt.subplots()[1]
    assert plots.timeline(faulty, 1.0, ax, metrics="throughput_rps")[0] is ax


# ------------------------------------------------------------------ utilization


def test_utilization(faulty):
    ax = plots.utilization(faulty)
    assert isinstance(ax, Axes)
    assert_labelled(ax)
    assert "%" in ax.get_xlabel()
    comps = faulty.components()
    limited = comps["utilization"].notna()
    assert len(ax.patches) == int(limited.sum())
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == pytest.approx(sorted(100 * comps.loc[limited, "utilization"]))
    assert any(np.allclose(ln.get_xdata(), 100) for ln in ax.lines)
    assert sum(t.get_text() == "no limit" for t in ax.texts) == int((~limited).sum())
    assert [t.get_text().split(" ")[0] for t in ax.get_yticklabels()] == list(comps.index)
    render(ax)


def test_utilization_by_instance(faulty):
    ax = plots.utilization(faulty, by_instance=True)
    inst = faulty.instances()
    assert len(ax.get_yticks()) == len(inst)
    assert len(ax.patches) == int(inst["utilization"].notna().sum())


def test_utilization_into_given_ax(faulty):
    ax, out = in_given_ax(lambda ax: plots.utilization(faulty, ax, by_instance=True))
    assert out is ax and drew_something(ax)


# ------------------------------------------------------------------ architecture


def node_texts(ax: Axes) -> dict[str, str]:
    return {t.get_gid()[5:]: t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("node:")}


def test_architecture_with_result_and_spofs(faulty_arch, faulty):
    ax = plots.architecture(faulty_arch, result=faulty, spof=["db"])
    assert isinstance(ax, Axes)
    assert ax.get_title().startswith("faulty")
    nodes = node_texts(ax)
    assert set(nodes) == set(faulty_arch.graph.nodes)
    assert nodes["api"].startswith("api\nservice")
    assert "hit" in nodes["cache"]  # no worker limit: the hit ratio instead
    # one arrow per call pair; the async one dashed
    arrows = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == faulty_arch.graph.number_of_edges()
    assert sum(p.get_linestyle() != "-" for p in arrows) == 1
    labels = {t.get_text() for t in ax.texts}
    assert {"read", "write", "miss", "SPOF"} <= labels
    # the SPOF has the thick red outline, the others not
    boxes = {t.get_gid()[5:]: t.get_bbox_patch() for t in ax.texts if (t.get_gid() or "").startswith("node:")}
    assert boxes["db"].get_linewidth() > boxes["api"].get_linewidth()
    # a colour bar 0-100% was added next to the graph
    assert len(ax.figure.axes) == 2
    assert ax.figure.axes[1].get_ylim() == pytest.approx((0, 100))
    render(ax)


def test_architecture_from_capacity_and_spof_report(faulty_arch):
    report = simarch.spof(faulty_arch, dynamic=False)
    ax = plots.architecture(faulty_arch, capacity=simarch.capacity_report(faulty_arch), spof=report)
    assert "estimated" in ax.get_title()
    assert sum(t.get_text() == "SPOF" for t in ax.texts) == len(report.spofs)
    assert "% busy" in node_texts(ax)["db"]
    render(ax)


def test_architecture_neutral_and_layouts(faulty_arch):
    ax = plots.architecture(faulty_arch)
    assert len(ax.figure.axes) == 1  # nothing to colour by: no colour bar
    assert all("%" not in t for t in node_texts(ax).values())
    # layered: the entry is leftmost, the callees to its right
    x = {n: t.get_position()[0] for n, t in
         ((t.get_gid()[5:], t) for t in ax.texts if (t.get_gid() or "").startswith("node:"))}
    assert x["api"] < x["cache"] < x["db"]
    for layout in ("spring", "circular", {"api": (0, 0), "cache": (1, 1), "db": (2, 0), "audit": (1, -1)}):
        render(plots.architecture(faulty_arch, layout=layout))
    with pytest.raises(ValueError, match="layout"):
        plots.architecture(faulty_arch, layout="nope")


def test_architecture_into_given_ax(faulty_arch, faulty):
    ax, out = in_given_ax(lambda ax: plots.architecture(faulty_arch, ax, result=faulty, spof=True))
    assert out is ax and drew_something(ax)
    render(ax)


# ------------------------------------------------------------------ the example designs


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_plot_on_the_example_designs(path):
    arch = simarch.load(path)
    r = simarch.simulate(arch, duration="5s", warmup="2s", seed=1)
    fig, axs = plt.subplots(3, 3, figsize=(16, 11))
    before = plt.get_fignums()
    drawn = [
        plots.latency_cdf(r, axs[0, 0]),
        plots.latency_cdf(r, axs[0, 1], by_class=True),
        plots.utilization(r, axs[0, 2]),
        plots.utilization(r, axs[1, 0], by_instance=True),
        plots.architecture(arch, axs[1, 1], result=r, spof=True),
        plots.architecture(arch, axs[1, 2], capacity=True),
    ]
    axes = plots.timeline(r, "1s", axs[2, :])
    assert plt.get_fignums() == before
    for ax in drawn + list(axes):
        assert isinstance(ax, Axes) and drew_something(ax) and ax.figure is fig
    fig.canvas.draw()


def test_architecture_fallback_edges_are_dotted():
    arch = (Architecture("fb", workload={"rate": 50, "entry": "api"})
            .add("api", kind="service", workers=4, service_time="1ms")
            .add("db", kind="datastore", workers=4, service_time="1ms")
            .add("stale", kind="cache", service_time="0.1ms", hit_ratio=1.0)
            .call("api", "db", timeout="50ms", fallback="stale", probability=0.5))
    ax = plots.architecture(arch, spof=True)
    arrows = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == 2
    assert {t.get_text() for t in ax.texts} >= {"50%", "fallback"}
    assert "fallback" in [t.get_text() for t in ax.get_legend().get_texts()]
    render(ax)


def test_plots_leave_global_settings_alone(faulty, faulty_arch, table):
    before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    plots.latency_cdf(faulty)
    plots.percentiles_vs_load(table)
    plots.availability_vs_load(table)
    plots.timeline(faulty)
    plots.utilization(faulty)
    plots.architecture(faulty_arch, result=faulty)
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.get_backend() == backend


# ------------------------------------------------------------------ saved frames


def test_latency_cdf_from_the_requests_frame(faulty, tmp_path):
    live = plots.latency_cdf(faulty, by_class=True)
    faulty.requests.to_parquet(tmp_path / "requests.parquet")
    saved = plots.latency_cdf({"faulty": pd.read_parquet(tmp_path / "requests.parquet")}, by_class=True)
    assert [t.get_text() for t in saved.get_legend().get_texts()] == \
        [t.get_text() for t in live.get_legend().get_texts()]
    for a, b in zip(live.lines, saved.lines, strict=True):
        assert np.allclose(a.get_xdata(), b.get_xdata()) and np.allclose(a.get_ydata(), b.get_ydata())
    # status as codes works too; failed requests are left out
    coded = faulty.requests.assign(status=faulty.status)
    ax = plots.latency_cdf(coded, marks=None)
    assert len(ax.lines[0].get_xdata()) == int((faulty.status == 0).sum()) + 1
    with pytest.raises(ValueError, match="latency_ms"):
        plots.latency_cdf(pd.DataFrame({"x": [1]}))


def test_latency_cdf_draws_the_slo(faulty):
    ax = plots.latency_cdf(faulty, slo=True)
    assert any(np.allclose(ln.get_xdata(), 50.0) and len(ln.get_xdata()) == 2 for ln in ax.lines)
    assert "SLO p99 50 ms" in [t.get_text() for t in ax.get_legend().get_texts()]
    ax = plots.latency_cdf(faulty.requests, slo={"p999": 0.2})
    assert "SLO p99.9 200 ms" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_timeline_from_saved_frames_matches_the_result(faulty):
    live = plots.timeline(faulty, window="0.5s")
    from_requests = plots.timeline(faulty.requests, "0.5s", faults=faulty.faults(),
                                   slo=faulty.slo_spec, span=(2.0, 10.0))
    from_series = plots.timeline(faulty.timeseries("0.5s"), faults=faulty.faults(),
                                 slo=faulty.slo_spec)
    for axes in (from_requests, from_series):
        for a, b in zip(live, axes, strict=True):
            assert a.get_xlim() == pytest.approx(b.get_xlim())
            assert np.allclose(a.lines[0].get_ydata(), b.lines[0].get_ydata(), equal_nan=True)
            assert len(a.patches) == len(b.patches)  # the fault windows
        assert [t.get_text() for t in axes[0].get_legend().get_texts()] == \
            [t.get_text() for t in live[0].get_legend().get_texts()]
    # no window given: a round width of at most 60 windows (binning.nice_width)
    axes = plots.timeline(faulty.requests, None, span=(2.0, 10.0))
    assert "per 0.2 s window" in axes[0].get_title().lower()
    render(axes)


def test_utilization_and_architecture_from_the_components_frame(faulty, faulty_arch):
    saved = faulty.components().reset_index()  # as components.parquet holds it
    live_ax, saved_ax = plots.utilization(faulty), plots.utilization(saved)
    assert [p.get_width() for p in saved_ax.patches] == [p.get_width() for p in live_ax.patches]
    assert [t.get_text() for t in saved_ax.get_yticklabels()] == \
        [t.get_text() for t in live_ax.get_yticklabels()]
    assert saved_ax.get_yticklabels()[0].get_text() == f"api ({kind('service').label})"
    a = plots.architecture(faulty_arch, result=faulty)
    b = plots.architecture(faulty_arch, result=saved)
    assert node_texts(a) == node_texts(b)
    assert b.get_title() == "faulty: utilisation simulated"


# ------------------------------------------------------------------ the design on each node


def test_architecture_shows_copies_and_zones():
    single = node_texts(plots.architecture(simarch.load(ROOT / "architectures" / "spof_single.yaml")))
    redundant = node_texts(plots.architecture(simarch.load(ROOT / "architectures" / "spof_redundant.yaml")))
    assert single["lb"] == "lb\nload balancer\nzone a"
    assert single["api"] == "api\nservice x3\nzone a"
    assert single["db"] == "db\ndatastore\nzone a"
    assert redundant["lb"] == "lb\nload balancer x2\nzones a, b"
    assert redundant["api"] == "api\nservice x4\nzones a, b"
    assert redundant["db"] == "db\ndatastore\n2 replicas\nzones a, b"
    sharded = node_texts(plots.architecture(simarch.load(ROOT / "architectures" / "cached_sharded.yaml")))
    assert "4 shards, 2 replicas" in sharded["db"].split("\n")


def test_architecture_fills_nodes_with_their_kind_colour(faulty_arch, faulty):
    import matplotlib.colors as mcolors

    def fills(ax):
        return {t.get_gid()[5:]: t.get_bbox_patch().get_facecolor() for t in ax.texts
                if (t.get_gid() or "").startswith("node:")}

    neutral = fills(plots.architecture(faulty_arch))
    for name, comp in faulty_arch.spec.components.items():
        assert neutral[name] == pytest.approx(mcolors.to_rgba(kind(comp.kind).colour))
    measured = fills(plots.architecture(faulty_arch, result=faulty))
    # the cache has no worker limit: its kind's colour; the others the utilisation colour map
    assert measured["cache"] == pytest.approx(mcolors.to_rgba(kind("cache").colour))
    assert measured["api"] != pytest.approx(mcolors.to_rgba(kind("service").colour))


def test_architecture_size_is_the_size_of_its_own_figure(faulty_arch, faulty):
    ax = plots.architecture(faulty_arch, result=faulty)
    assert tuple(ax.figure.get_size_inches()) == pytest.approx(
        plots.architecture_size(faulty_arch, colorbar=True))


# ------------------------------------------------------------------ the knee


@pytest.fixture(scope="module")
def knee() -> pd.DataFrame:
    return pd.DataFrame([
        {"design": "single-server", "knee": 3.2, "ci_low": 2.9, "ci_high": 3.5, "censored": False},
        {"design": "scaled-service", "knee": 4.0, "ci_low": 4.0, "ci_high": 4.0, "censored": True},
        {"design": "not drawn", "knee": 1.5, "ci_low": 1.0, "ci_high": 2.0, "censored": False},
    ])


def knee_lines(ax):
    return {ln.get_gid()[5:]: ln for ln in ax.lines if (ln.get_gid() or "").startswith("knee:")}


def test_percentiles_vs_load_marks_the_knee(table, knee):
    ax = plots.percentiles_vs_load(table, knee=knee)
    lines = knee_lines(ax)
    assert set(lines) == {"single-server", "scaled-service"}  # designs of the table only
    assert list(lines["single-server"].get_xdata()) == [3.2, 3.2]
    assert list(lines["scaled-service"].get_xdata()) == [4.0, 4.0]
    # each in its design's colour
    colors = {ln.get_label(): ln.get_color() for ln in ax.lines if len(ln.get_xdata()) == 3}
    assert lines["single-server"].get_color() == colors["single-server"]
    # the interval is shaded where it is known, a censored knee is a lower bound
    spans = {p.get_gid()[8:]: p for p in ax.patches if (p.get_gid() or "").startswith("knee-ci:")}
    assert set(spans) == {"single-server"}
    band = spans["single-server"]
    assert (band.get_x(), band.get_x() + band.get_width()) == pytest.approx((2.9, 3.5))
    texts = [t.get_text() for t in ax.texts]
    assert "knee 3.2x" in texts and "knee ≥ 4x" in texts
    assert any("knee" in t.get_text() for t in ax.get_legend().get_texts())
    render(ax)
    # without a knee, or with an empty one (not searched for), nothing is marked
    for k in (None, knee.iloc[:0]):
        ax = plots.percentiles_vs_load(table, knee=k)
        assert not knee_lines(ax)
        assert not any("knee" in t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(ValueError, match="knee"):
        plots.percentiles_vs_load(table, knee=pd.DataFrame({"x": [1]}))


def test_comparison_plots_pass_the_knee(table, knee):
    empty = pd.DataFrame()
    cmp = Comparison(["single-server", "scaled-service"], [1, 2, 4], 2, 1, 0.95, empty, table,
                     empty, empty, knee, slos={"single-server": {"p99": 0.2}, "scaled-service": {"p99": 0.2}})
    ax = cmp.plot_latency()
    assert set(knee_lines(ax)) == {"single-server", "scaled-service"}
    assert any(np.allclose(ln.get_ydata(), 200) for ln in ax.lines)  # the shared SLO
    assert set(knee_lines(cmp.plot_availability())) == {"single-server", "scaled-service"}


# ------------------------------------------------------------------ sweeps


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    rows = []
    for inst in (1, 2, 4):
        for policy in ("round_robin", "least_loaded"):
            for load in (1.0, 2.0):
                for rep in (0, 1):
                    rows.append({"param.api.instances": inst, "param.api.policy": policy,
                                 "load": load, "replication": rep,
                                 "p99_ms": 10.0 * load / inst + rep, "availability": 1 - 0.01 * rep,
                                 "error": None})
    rows.append({"param.api.instances": 0, "param.api.policy": "round_robin", "load": 1.0,
                 "replication": 0, "p99_ms": None, "availability": None, "error": "must be >= 1"})
    return pd.DataFrame(rows)


def test_sweep_results_against_load(dataset):
    axes = plots.sweep_results(dataset)
    assert axes.shape == (2,)
    assert axes[0].get_yscale() == "log" and "%" in axes[1].get_ylabel()
    assert "load" in axes[-1].get_xlabel() and not axes[0].get_xlabel()
    # a line per combination of the parameters (the failed point is left out), mean of the
    # replications at each load
    lines = [ln for ln in axes[0].lines if len(ln.get_xdata()) == 2]
    assert len(lines) == 6
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels[0] == "api.instances=1, api.policy=least_loaded"
    assert np.allclose(lines[0].get_ydata(), [10.5, 20.5])
    render(axes)


def test_sweep_results_against_a_parameter(dataset):
    one_load = dataset[dataset["load"] == 2.0]
    axes = plots.sweep_results(one_load, metrics="p99_ms")
    assert axes[0].get_xlabel() == "api.instances" and "at 2x" in axes[0].get_title()
    assert sorted({float(x) for ln in axes[0].lines for x in ln.get_xdata()}) == [1, 2, 4]
    # a parameter that is not a number is placed by name
    fig, axs = plt.subplots(2, 1)
    out = plots.sweep_results(one_load, axs, x="api.policy")
    assert list(out) == list(axs)
    assert [t.get_text() for t in axs[1].get_xticklabels()] == ["least_loaded", "round_robin"]
    with pytest.raises(ValueError, match="nope"):
        plots.sweep_results(dataset, x="nope")
    with pytest.raises(ValueError, match="no successful point"):
        plots.sweep_results(dataset[dataset["error"].notna()])
