"""The documentation runs: every runnable example in ``docs/`` and ``README.md`` is executed,
and every relative link points to a file (and a heading) that exists.

A fenced code block is runnable when its info string has the word ``runnable`` after the
language; ``key=value`` words give details::

    ```yaml runnable file=two_tier.yaml   a complete spec, written to two_tier.yaml
    ```sh runnable                        shell commands, one a line ($ prefix optional)
    ```python runnable file=crash.py      a script, written to crash.py and run
    ```csv runnable file=rates.csv        any other language: only written to the file
    ```text output                        what the runnable block before it prints

* ``yaml``: written to ``file=`` (or to a name of its own), loaded with ``simarch.load``
  and simulated for 5 s after a 1 s warm-up. With ``exit=2`` it is a bad spec:
  ``simarch.load`` must reject it with a ``SpecError``, and the line the command line prints
  for it (``error: `` and the error) is what an output block after it must show.
* ``sh``: each non-empty line that is not a comment is one command, run through the shell
  with the directory of this Python first on ``PATH`` (so ``simarch`` and ``python`` are the
  ones of this environment). Every command must exit with ``exit=N`` (default 0).
* ``python``: written to ``file=`` (or to a name of its own) and run in this process, as
  ``__main__``, in the page's folder; it must not raise, and a ``sys.exit`` must give
  ``exit=N`` (default 0).
* ``text output``: every line, with runs of spaces counted as one, must appear among the
  lines the runnable block before it printed (standard output and error together), in the
  same order; lines left out of the excerpt are allowed, and a line ``...`` marks the cut.

Each page with runnable blocks is one test whose id is the page's path. Its blocks run in
order in a fresh temporary directory that holds a copy of ``architectures/``, so a command
can use ``architectures/x.yaml`` and every file the page wrote before it. Pages that teach
a task (the tutorial, every how-to page, the command-line, Python API, spec and error
references) must have runnable blocks, so they cannot silently stop being tested.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import simarch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]

# pages that must carry runnable examples (every how-to page, whoever writes it)
MUST_RUN = {"docs/tutorial.md", "docs/reference/cli.md", "docs/reference/errors.md",
            "docs/reference/spec.md", "docs/reference/python-api.md"}
# pages linked from the docs before they exist; once a page exists its links are checked
PLANNED: set[str] = set()

TIMEOUT = 120  # seconds per command or script
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def must_run(page: str) -> bool:
    return page in MUST_RUN or (page.startswith("docs/how-to/") and not page.endswith("/index.md"))


# --------------------------------------------------------------------------- parsing


@dataclass
class Block:
    lang: str
    flags: set[str]
    options: dict[str, str]
    text: str
    line: int  # line of the opening fence, 1-based

    @property
    def runnable(self) -> bool:
        return "runnable" in self.flags

    @property
    def output(self) -> bool:
        return "output" in self.flags

    @property
    def exit(self) -> int:
        return int(self.options.get("exit", 0))

    def where(self, page: str) -> str:
        return f"{page}:{self.line}"


def closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened with ``fence`` (the same character, as long)."""
    s = line.strip()
    return len(s) >= len(fence) and set(s) == {fence[0]}


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, with their info strings parsed."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, words, start = m["fence"], m["info"].split(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not closes(lines[i], fence):
            body.append(lines[i])
            i += 1
        i += 1
        lang = words[0] if words else ""
        flags = {w for w in words[1:] if "=" not in w}
        options = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        out.append(Block(lang, flags, options, "\n".join(body) + "\n", start + 1))
    return out


def outside_blocks(text: str) -> list[str]:
    """The lines of a markdown text that are not in a fenced block."""
    keep: list[str] = []
    fence = None
    for line in text.splitlines():
        if fence is None:
            m = FENCE.match(line)
            if m:
                fence = m["fence"]
            else:
                keep.append(line)
        elif closes(line, fence):
            fence = None
    return keep


def commands(block: Block) -> list[str]:
    out = []
    for line in block.text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line[2:] if line.startswith("$ ") else line)
    return out


# --------------------------------------------------------------------------- running


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="200", MPLBACKEND="Agg")
    return env


@dataclass
class Run:
    """What the blocks of one page printed so far, for the output blocks that follow them."""

    page: str
    cwd: Path
    env: dict[str, str]
    printed: list[str] = field(default_factory=list)
    block: Block | None = None
    count: int = 0

    def check(self, what: str, proc: subprocess.CompletedProcess[str], expected: int) -> None:
        text = f"{proc.stdout}\n{proc.stderr}"
        self.printed += re.split(r"[\r\n]+", text)
        assert proc.returncode == expected, (
            f"{what}: exit code {proc.returncode}, expected {expected}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")

    def shell(self, block: Block) -> None:
        for cmd in commands(block):
            proc = subprocess.run(cmd, shell=True, cwd=self.cwd, env=self.env, text=True,
                                  capture_output=True, timeout=TIMEOUT)
            self.check(f"{block.where(self.page)}: $ {cmd}", proc, block.exit)

    def python(self, block: Block) -> None:
        """Run a script in this process, as ``__main__``, in the page's folder (a fresh
        interpreter per script would cost more than most of the scripts themselves)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = self.write(block, "py")
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile(block.text, path.name, "exec"), {"__name__": "__main__"})
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except Exception:
            pytest.fail(f"{block.where(self.page)}: python {path.name} raised\n"
                        f"{traceback.format_exc()}\n--- stdout ---\n{out.getvalue()}")
        finally:
            plt.close("all")
        proc = subprocess.CompletedProcess([path.name], code, out.getvalue(), err.getvalue())
        self.check(f"{block.where(self.page)}: python {path.name}", proc, block.exit)

    def spec(self, block: Block) -> None:
        name = self.write(block, "yaml").name  # loaded by its relative name, as the CLI would
        if block.exit:
            with pytest.raises(simarch.SpecError) as err:
                simarch.load(name)
            self.printed = [f"error: {err.value}"]  # the line the CLI prints for this file
            return
        try:
            arch = simarch.load(name)
            simarch.simulate(arch, duration="5s", warmup="1s")
        except simarch.SpecError as e:
            pytest.fail(f"{block.where(self.page)}: {e}")

    def write(self, block: Block, ext: str) -> Path:
        self.count += 1
        path = self.cwd / block.options.get("file", f"block-{self.count}.{ext}")
        path.write_text(block.text, encoding="utf-8")
        return path

    def expect(self, block: Block) -> None:
        assert self.block is not None, f"{block.where(self.page)}: output block with nothing before it"
        squash = [" ".join(line.split()) for line in self.printed]
        pos = 0
        for want in block.text.splitlines():
            want = " ".join(want.split())
            if not want or want == "...":
                continue
            try:
                pos = squash.index(want, pos) + 1
            except ValueError:
                shown = "\n".join(self.printed)
                pytest.fail(f"{block.where(self.page)}: this line was not printed by the block at "
                            f"line {self.block.line} (or not in this order):\n{want}\n"
                            f"--- what it printed ---\n{shown}")

    def run(self, block: Block) -> None:
        if block.output:
            self.expect(block)
            return
        if not block.runnable:
            return
        self.printed = []
        self.block = block
        if block.lang in ("sh", "shell", "bash", "console"):
            self.shell(block)
        elif block.lang == "python":
            self.python(block)
        elif block.lang in ("yaml", "yml"):
            self.spec(block)
        else:
            self.write(block, block.lang or "txt")


def page_blocks(page: Path) -> list[Block]:
    return blocks(page.read_text(encoding="utf-8"))


RUNNABLE = [p for p in PAGES if any(b.runnable for b in page_blocks(p))]


# every page's examples run in ``make test``; ``make test-fast`` (the edit-run loop) leaves them
# out, as together they take three minutes of CPU
@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=rel)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "architectures", tmp_path / "architectures")
    monkeypatch.chdir(tmp_path)
    run = Run(rel(page), tmp_path, environment())
    for block in page_blocks(page):
        run.run(block)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_page_is_tested_where_it_should_be(page: Path) -> None:
    found = page_blocks(page)
    if must_run(rel(page)):
        assert any(b.runnable for b in found), f"{rel(page)} has no runnable example"
    for b in found:
        if b.runnable and b.lang in ("sh", "shell", "bash", "console"):
            assert commands(b), f"{b.where(rel(page))}: a runnable shell block without commands"
            for cmd in commands(b):
                shlex.split(cmd)  # well-formed quoting
        if b.output:
            assert b.text.strip(), f"{b.where(rel(page))}: an empty output block"


def test_every_page_that_must_run_exists() -> None:
    for page in MUST_RUN:
        assert (ROOT / page).exists(), page
    assert list((DOCS / "how-to").glob("*.md")), "no how-to pages"


# --------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page: one per heading (``### `retries` `` is ``#retries``; a repeated
    heading gets ``-1``, ``-2``), and explicit ``<a id="...">``."""
    text = page.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in outside_blocks(text):
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not h:
            continue
        base = slug(h[1])
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out | set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))


def links(page: Path) -> list[str]:
    """Link targets in the prose of a page (links shown in code are not links)."""
    lines = outside_blocks(page.read_text(encoding="utf-8"))
    return LINK.findall("\n".join(re.sub(r"`[^`]*`", "", line) for line in lines))


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            if dest.is_relative_to(ROOT) and rel(dest) in PLANNED:
                continue
            broken.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {rel(dest)}")
    assert not broken, f"{rel(page)}: broken links:\n" + "\n".join(broken)
