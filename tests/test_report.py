"""The HTML report: one self-contained page per results folder (run, comparison, sweep).

Each kind of folder is made once with the Python API in a temporary folder; every page must
be a single HTML document with the expected tables and figures, embed its plots as base64
PNG images, load nothing from elsewhere, escape every text from the folder, and come out
byte for byte the same when written twice. Its figures are drawn by :mod:`simarch.plots`
from the saved tables. ``simarch report`` must write it with exit code 0 and turn a folder
that is not a results folder into one ``error:`` line and exit code 2. The notebook tables
(``_repr_html_``) of results and analyses are checked here too.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import simarch_cli

import simarch
from simarch import plots
from simarch.errors import SpecError
from simarch.model.architecture import Architecture
from simarch.present.html import results_kind, write_report
from simarch.study.sweep import read_dataset

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def ms(v: float) -> str:
    """Milliseconds as the report shows them: 3 significant digits."""
    return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"


# --------------------------------------------------------------------------- checks

VOID = {"meta", "img", "br", "hr", "input", "link", "col", "wbr", "source"}


class _Structure(HTMLParser):
    """Checks that every non-void element is closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.doctypes = 0
        self.roots = 0

    def handle_decl(self, decl: str) -> None:
        self.doctypes += decl.lower().startswith("doctype html")

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "html":
            self.roots += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def check_page(path: Path) -> str:
    """A single, well-nested, self-contained HTML document with at least one valid embedded
    PNG; returns its text."""
    assert path.is_file()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.rstrip().endswith("</html>")
    parser = _Structure()
    parser.feed(text)
    parser.close()
    assert parser.doctypes == 1 and parser.roots == 1
    assert parser.problems == [] and parser.stack == [], (parser.problems, parser.stack)
    assert text.count("<body") == 1 and text.count("<head>") == 1
    # nothing is fetched: no links, scripts, remote sources or CSS imports
    lowered = text.lower()
    for bad in ('src="http', "src='http", "<link", "<script", "@import", "url(", "<iframe"):
        assert bad not in lowered, bad
    assert re.findall(r'\bsrc="([^"]*)"', text) and all(
        s.startswith("data:image/png;base64,") for s in re.findall(r'\bsrc="([^"]*)"', text))
    images = IMAGE.findall(text)
    assert images, "no embedded image"
    for data in images:
        assert base64.b64decode(data, validate=True).startswith(PNG_MAGIC)
    return text


def headers(text: str) -> set[str]:
    return set(re.findall(r"<th(?: class=\"[^\"]*\")?>([^<]*)</th>", text))


def has_cell(text: str, value: str, cls: str | None = None) -> bool:
    """Whether a table cell holds exactly ``value`` (already escaped), with CSS class
    ``cls`` among its classes if given."""
    attrs = r'(?: class="[^"]*")?' if cls is None else rf' class="(?:[^"]* )?{cls}(?: [^"]*)?"'
    return re.search(rf"<td{attrs}>{re.escape(value)}</td>", text) is not None


# --------------------------------------------------------------------------- folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("results")
    run = simarch.simulate(ARCH / "single_server.yaml", duration="3s", warmup="1s", seed=3)
    run.save(base / "run")

    arch = simarch.load(ARCH / "spof_redundant.yaml")
    data = arch.to_dict()
    data["faults"] = [{"kind": "crash", "target": "api", "at": "2s", "duration": "1s"}]
    faulty = simarch.simulate(Architecture.from_dict(data, source=arch.source, base_dir=arch.base_dir),
                              duration="3s", warmup="1s")
    faulty.save(base / "fault")

    cmp = simarch.compare([ARCH / "spof_single.yaml", ARCH / "spof_redundant.yaml"], loads=[1, 3],
                          replications=2, duration="3s", warmup="1s", knee=False,
                          executor="serial", progress=False)
    cmp.save(base / "cmp")

    simarch.sweep(ARCH / "scaled_service.yaml", {"api.instances": [4, 0, 2]}, base / "sweep",
                  loads=[1], duration="2s", warmup="1s", executor="serial", progress=False)
    return {"base": base, "run": run, "fault": faulty, "cmp": cmp}


# --------------------------------------------------------------------------- runs


def test_run_report(folders, tmp_path):
    run = folders["run"]
    out = write_report(folders["base"] / "run", tmp_path / "run.html")
    assert out == tmp_path / "run.html"
    text = check_page(out)
    assert results_kind(folders["base"] / "run") == "run"
    assert "single-server" in text and "SLO" in text
    assert '<div class="verdict met">SLO met</div>' in text or \
        '<div class="verdict missed">SLO missed</div>' in text
    assert {"class", "requests", "availability", "p50 ms", "p99 ms", "p99.9 ms"} <= headers(text)
    assert {"component", "kind", "utilisation", "mean latency ms"} <= headers(text)
    summary = run.summary()
    p99 = summary.loc["all", "p99_ms"]
    assert has_cell(text, ms(p99))
    for cls in ("browse", "checkout"):  # one row per request class
        assert has_cell(text, cls)
        assert has_cell(text, ms(summary.loc[cls, "p99_ms"]))
    for comp in ("app", "db"):
        assert has_cell(text, comp)
    assert "<h2>Little's law</h2>" in text and "λ·W" in text
    # latency CDF, timeline, utilisation, the design, and where the time of each band goes
    assert len(IMAGE.findall(text)) == 5
    assert "<h2>What makes the p99</h2>" in text and "share of the p99 band" in headers(text)
    assert "Time per visit by component and class" in text
    assert "<h2>Faults</h2>" not in text  # none in this run
    # the verdict of each target is highlighted
    assert has_cell(text, "met", "c-ok") or has_cell(text, "MISSED", "c-bad")
    # stability is a share of the arrivals, not a latency
    assert re.search(r"<td>[\d.]+% in flight at the end</td>", text)


def test_run_with_fault_report(folders, tmp_path):
    faulty = folders["fault"]
    text = check_page(write_report(folders["base"] / "fault", tmp_path / "fault.html"))
    assert "spof-redundant" in text
    assert "<h2>Faults</h2>" in text and has_cell(text, "crash:api")
    assert "<h2>Datastore shards</h2>" in text
    verdict = "met" if faulty.slo_met else "missed"
    assert f'<div class="verdict {verdict}">SLO {verdict}</div>' in text
    avail = faulty.summary().loc["all", "availability"]
    assert has_cell(text, f"{avail:.2%}")
    # targets that fail are marked
    if not faulty.slo_met:
        assert has_cell(text, "MISSED", "c-bad")
    assert len(IMAGE.findall(text)) == 5


HOSTILE = "<script>alert('x')</script> & co"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"


def test_text_from_files_is_escaped(folders, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(folders["base"] / "run", folder)
    meta = json.loads((folder / "simarch.json").read_text())
    meta["design"] = HOSTILE
    (folder / "simarch.json").write_text(json.dumps(meta))
    comps = pd.read_parquet(folder / "components.parquet")
    comps.loc[0, "component"] = '<img src="x" onerror="alert(1)">'
    comps.to_parquet(folder / "components.parquet", index=False)
    text = check_page(write_report(folder, tmp_path / "x.html"))  # no foreign src, no script
    assert f"<title>simarch run: {ESCAPED}</title>" in text
    assert f'<h1><span class="kind">run</span>{ESCAPED}</h1>' in text
    assert has_cell(text, "&lt;img src=&#34;x&#34; onerror=&#34;alert(1)&#34;&gt;")
    assert "<script" not in text and "<img src=\"x\"" not in text


def test_same_folder_gives_the_same_page(folders, tmp_path):
    a = write_report(folders["base"] / "run", tmp_path / "a.html").read_bytes()
    b = write_report(folders["base"] / "run", tmp_path / "a.html").read_bytes()  # overwrite
    assert a == b
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html"]  # no temporary left


# --------------------------------------------------------------------------- comparisons


def test_comparison_report(folders, tmp_path):
    cmp = folders["cmp"]
    text = check_page(write_report(folders["base"] / "cmp", tmp_path / "cmp.html"))
    assert results_kind(folders["base"] / "cmp") == "comparison"
    for name in ("spof-single", "spof-redundant"):
        assert name in text
    for h2 in ("SLO verdict", "Knee", "Metrics by load", "Differences", "Plots"):
        assert f"<h2>{h2}</h2>" in text
    assert "2 replications per point" in text and "95% t-intervals" in text
    assert {"load", "spof-single", "spof-redundant"} <= headers(text)
    row = cmp.table[(cmp.table.design == "spof-redundant") & (cmp.table.load == 3)
                    & (cmp.table.metric == "p99_ms")].iloc[0]
    assert has_cell(text, f"{ms(row['mean'])} [{ms(row['ci_low'])}, {ms(row['ci_high'])}]")
    assert has_cell(text, "3x")
    assert "met (" in text or "MISSED (" in text
    assert len(IMAGE.findall(text)) == 2
    assert re.search(r'<td class="t c-(ok|bad)">(met|MISSED) \(\d+% of replications\)</td>', text)


# --------------------------------------------------------------------------- sweeps


def test_sweep_report(folders, tmp_path):
    folder = folders["base"] / "sweep"
    text = check_page(write_report(folder, tmp_path / "sweep.html"))
    assert results_kind(folder) == "sweep"
    assert "scaled-service" in text
    assert "<h2>Parameters</h2>" in text and has_cell(text, "api.instances")
    assert has_cell(text, "4, 0, 2")  # values as given
    assert {"api.instances", "load", "p99 ms", "availability", "error"} <= headers(text)
    # sorted by parameter; the invalid point is highlighted with its (escaped) error
    body = text[text.index("<h2>Results</h2>"):]
    rows = re.findall(r"<tr( class=\"err\")?>\s*<td(?: class=\"[^\"]*\")?>(\d+)</td>", body)
    assert [(bool(cls), v) for cls, v in rows] == [(True, "0"), (False, "2"), (False, "4")]
    assert "must be &gt;= 1" in body
    assert "1 point(s) failed" in text
    df = read_dataset(folder)
    p99 = df.loc[df["param.api.instances"] == 2, "p99_ms"].iloc[0]
    assert has_cell(body, ms(p99))
    assert len(IMAGE.findall(text)) == 1


def test_unfinished_sweep_without_manifest(folders, tmp_path):
    folder = tmp_path / "partial"
    shutil.copytree(folders["base"] / "sweep", folder)
    (folder / "_simarch.json").unlink()  # a sweep's manifest
    text = check_page(write_report(folder, tmp_path / "partial.html"))
    assert "did not finish" in text


# --------------------------------------------------------------------------- errors


def test_not_a_results_folder(tmp_path):
    with pytest.raises(SpecError, match="no such folder"):
        write_report(tmp_path / "missing", tmp_path / "x.html")
    with pytest.raises(SpecError, match="not a simarch results folder"):
        write_report(tmp_path, tmp_path / "x.html")
    (tmp_path / "simarch.json").write_text('{"type": "other"}')
    with pytest.raises(SpecError, match="unknown results type"):
        write_report(tmp_path, tmp_path / "x.html")
    (tmp_path / "simarch.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        write_report(tmp_path, tmp_path / "x.html")
    (tmp_path / "simarch.json").write_text('{"type": "run"}')
    with pytest.raises(SpecError, match="summary.parquet is missing") as err:
        write_report(tmp_path, tmp_path / "x.html")
    assert err.value.source == str(tmp_path)
    assert not (tmp_path / "x.html").exists()


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def cli_runs(folders, tmp_path_factory) -> dict[str, tuple[Path, Path, subprocess.CompletedProcess[str]]]:
    """``simarch report`` on a run, a sweep and a folder that is not a results folder, run
    concurrently (each call starts its own interpreter; the other kinds and errors are
    covered in-process above)."""
    base = folders["base"]
    out = tmp_path_factory.mktemp("html")
    empty = tmp_path_factory.mktemp("not-results")
    (empty / "notes.txt").write_text("hello")
    cases = {"run": base / "run", "sweep": base / "sweep", "other": empty}
    targets = {k: out / "sub" / f"{k}.html" for k in cases}
    with ThreadPoolExecutor(len(cases)) as pool:
        procs = dict(zip(cases, pool.map(lambda k: simarch_cli("report", cases[k], "--html",
                                                                targets[k]), cases), strict=True))
    return {k: (cases[k], targets[k], procs[k]) for k in cases}


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_cli_report(cli_runs, kind):
    _, out, proc = cli_runs[kind]
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    check_page(out)


def test_cli_report_rejects_other_folders(cli_runs):
    folder, out, proc = cli_runs["other"]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert str(folder) in lines[0] and "not a simarch results folder" in lines[0]
    assert not out.exists()


# --------------------------------------------------------------------------- figures


@pytest.fixture
def spy(monkeypatch):
    """Record every call of the simarch.plots functions (and still draw)."""
    calls: dict[str, list[tuple[tuple, dict]]] = {}
    for name in plots.__all__:
        original = getattr(plots, name)

        def wrapper(*args, _name=name, _original=original, **kwargs):
            calls.setdefault(_name, []).append((args, kwargs))
            return _original(*args, **kwargs)

        monkeypatch.setattr(plots, name, wrapper)
    return calls


def test_run_figures_are_drawn_by_plots_from_the_saved_tables(folders, spy, tmp_path):
    text = check_page(write_report(folders["base"] / "fault", tmp_path / "f.html"))
    assert {"latency_cdf", "timeline", "utilization", "architecture", "attribution"} <= set(spy)
    (args, _), = spy["attribution"]
    assert isinstance(args[0], pd.DataFrame) and {"band", "component", "phase", "share"} <= set(args[0])
    (args, kwargs), = spy["timeline"]
    requests, faults = args[0], kwargs["faults"]
    # the saved frames, not a live Result
    assert isinstance(requests, pd.DataFrame) and "latency_ms" in requests
    assert isinstance(faults, pd.DataFrame) and list(faults["fault"]) == ["crash:api"]
    assert kwargs["span"] == (1.0, 4.0) and kwargs["slo"]["p99"] == pytest.approx(0.05)
    (args, kwargs), = spy["architecture"]
    assert isinstance(kwargs["result"], pd.DataFrame) and kwargs["spof"] is True
    assert len(IMAGE.findall(text)) == 5


def test_comparison_figures_mark_the_knee(folders, spy, tmp_path):
    folder = tmp_path / "cmp"
    shutil.copytree(folders["base"] / "cmp", folder)
    knee = pd.DataFrame([
        {"design": "spof-single", "knee": 2.5, "ci_low": 2.2, "ci_high": 2.8, "resolution": 0.06,
         "bracket_low": 1.0, "bracket_high": 3.0, "censored": False, "note": ""},
        {"design": "spof-redundant", "knee": 3.5, "ci_low": 3.5, "ci_high": 3.5,
         "resolution": 0.2, "bracket_low": 3.0, "bracket_high": 6.0, "censored": True,
         "note": "meets its SLO up to the search limit 6x: the knee is at least this"}])
    knee.to_parquet(folder / "knee.parquet", index=False)
    text = check_page(write_report(folder, tmp_path / "cmp.html"))
    body = text[text.index("<h2>Knee</h2>"):]
    assert has_cell(body, "2.50x") and has_cell(body, "[2.20x, 2.80x]") and has_cell(body, "≥ 3.50x")
    assert has_cell(body, "1x – 3x")
    (_, kwargs), = spy["percentiles_vs_load"]
    assert list(kwargs["knee"]["knee"]) == [2.5, 3.5]
    assert spy["availability_vs_load"]
    assert "knees marked" in text


def test_sweep_figure_is_drawn_by_plots(folders, spy, tmp_path):
    check_page(write_report(folders["base"] / "sweep", tmp_path / "s.html"))
    (args, kwargs), = spy["sweep_results"]
    assert isinstance(args[0], pd.DataFrame) and len(args[0]) == 3
    assert kwargs["metrics"] == ["p99_ms", "availability"]


def test_templates_are_package_data():
    from simarch.present import html as report

    names = {p.name for p in report.TEMPLATES.iterdir()}
    assert {"page.html.j2", "run.html.j2", "comparison.html.j2", "sweep.html.j2",
            "table.html.j2", "macros.html.j2", "report.css"} <= names
    assert report.TEMPLATES.parent == Path(report.__file__).parent


# --------------------------------------------------------------------------- notebook tables


def tables_in(markup: str) -> int:
    return markup.count("<table")


def test_result_repr_html(folders):
    run = folders["run"]
    out = run._repr_html_()
    assert tables_in(out) == 2 and "single-server" in out
    assert "SLO met" in out or "SLO missed" in out
    assert ms(run.summary().loc["all", "p99_ms"]) in out
    hostile = simarch.simulate(simarch.load(ARCH / "single_server.yaml").with_changes(
        {"name": HOSTILE}), duration="1s", warmup="0.5s")
    out = hostile._repr_html_()
    assert "&lt;script&gt;alert(" in out and "&amp; co" in out and "<script>" not in out


def test_comparison_repr_html(folders):
    cmp = folders["cmp"]
    out = cmp._repr_html_()
    assert tables_in(out) == 1  # knee=False: no knee table
    assert "spof-single" in out and "2 replications per point" in out
    assert out.count("<tr>") >= 1 + 2 * 2  # header and a row per design and load


def test_analysis_repr_html():
    arch = simarch.load(ARCH / "spof_single.yaml")
    cap = simarch.capacity_report(arch)._repr_html_()
    assert tables_in(cap) == 1 and "Bottleneck: db" in cap and ">api</th>" in cap
    rep = simarch.spof(arch, dynamic=False)._repr_html_()
    assert tables_in(rep) == 2  # components and zones
    assert "Single points of failure: lb, db, zone a" in rep
