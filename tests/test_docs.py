"""The documentation: every command the README and docs/ name exists and answers --help, the generated reference
pages are current, and the README stays a front page. (The site itself is built with --strict by ``make docs``,
which ``make test`` runs: broken links, anchors and API references fail there.)"""
from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import inspect
import io
import re
import sys
import tomllib
from pathlib import Path

import pytest

from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "results" not in p.parts)]
PROJECT = {"core", "video_swin", "swin_mlp", "swin_v2", "moby", "simmim", "cli", "bench"}
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
MODULE_RE = re.compile(r"python3? -m ([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)")
SCRIPT_RE = re.compile(r"(?<![\w#/.-])(swin-[a-z]+(?:-[a-z]+)*)(?![\w.-])")


def _named(pattern: re.Pattern) -> dict[str, str]:
    """name -> the first page naming it."""
    out: dict[str, str] = {}
    for page in PAGES:
        for name in pattern.findall(page.read_text()):
            out.setdefault(name, str(page.relative_to(ROOT)))
    return out


MODULES = _named(MODULE_RE)
CONSOLE = {k: v for k, v in _named(SCRIPT_RE).items() if k != "swin-suite"}  # the project's own name


def _entry(module: str):
    """The function ``python -m module`` runs: a shim's (``from cli.X import f`` in its __main__ block), a package's
    ``__main__`` (``from .x import main``), or the module's own ``main``."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, module
    if spec.submodule_search_locations:  # a package: its __main__
        module = f"{module}.__main__"
        spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.names and (node.module or "").startswith("cli.") or (
                isinstance(node, ast.ImportFrom) and node.level and module.endswith(".__main__")):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), module.rpartition(".")[0]) \
                if node.level else node.module
            return getattr(importlib.import_module(source), node.names[0].name)
    return importlib.import_module(module).main


def _help(fn, prog: str) -> tuple[object, str]:
    """Call a command's function with --help (argv, or sys.argv for one that takes none); (exit code, stdout)."""
    out, argv = io.StringIO(), sys.argv
    try:
        with contextlib.redirect_stdout(out):
            if inspect.signature(fn).parameters:
                fn(["--help"])
            else:
                sys.argv = [prog, "--help"]
                fn()
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    return code, out.getvalue()


def test_the_pages_name_commands():
    assert {"video_swin.train", "video_swin.test", "video_swin.predict", "simmim.pretrain", "simmim.finetune",
            "core.train", "core.predict", "moby.pretrain", "moby.linear"} <= set(MODULES)
    assert {"swin-train", "swin-pretrain", "swin-finetune"} <= set(CONSOLE)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_python_m_command_exists_and_answers_help(module):
    if module.split(".")[0] not in PROJECT:  # pytest, venv, mkdocs: installed is enough
        assert importlib.util.find_spec(module) is not None, f"{module} (named in {MODULES[module]}) is not installed"
        return
    assert importlib.util.find_spec(module) is not None, f"python -m {module} (named in {MODULES[module]}) does not exist"
    code, out = _help(_entry(module), f"python -m {module}")
    assert code in (0, None) and "usage" in out.lower(), f"python -m {module} --help (named in {MODULES[module]})"


@pytest.mark.parametrize("script", sorted(CONSOLE))
def test_every_console_script_exists_and_answers_help(script):
    assert script in SCRIPTS, f"{script} (named in {CONSOLE[script]}) is not a console script of pyproject.toml"
    module, _, fn = SCRIPTS[script].partition(":")
    code, out = _help(getattr(importlib.import_module(module), fn), script)
    assert code in (0, None) and "usage" in out.lower(), script


def test_the_generated_reference_pages_are_current():
    spec = importlib.util.spec_from_file_location("gen_ref", ROOT / "docs" / "gen_ref.py")
    gen_ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_ref)
    assert gen_ref.stale() == [], "stale: run python docs/gen_ref.py"
    commands = (ROOT / "docs" / "reference" / "commands.md").read_text()
    assert "## `swin-train`" in commands and "`python -m video_swin.train`" in commands and "--opt KEY=VALUE" in commands
    config = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert "| `label_fraction` | float | `1.0` | > 0, <= 1 |" in config
    assert "| `num_classes` | int | `1000` | >= 0 | 0 = take it from the dataset |" in config


def test_the_readme_is_a_front_page():
    """At most about 250 lines, its quick start first, and every page of the site it links to exists."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 260
    quick = re.search(r"^#+ .*quick ?start.*\n(?:.*\n)*?```\w*\n([\s\S]*?)```", text, re.M | re.I)
    assert quick and "make train" in quick.group(1) and "make test" in quick.group(1)
    for target in re.findall(r"\]\(((?:docs|results)/[^)#]+)", text):
        assert (ROOT / target).exists(), target


def test_the_site_lists_every_page():
    """mkdocs.yml's nav names pages that exist (the build checks the rest)."""
    import yaml
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(items):
        for item in items:
            value = item if isinstance(item, str) else next(iter(item.values()))
            yield from (pages(value) if isinstance(value, list) else [value])

    missing = [p for p in pages(nav) if not (ROOT / "docs" / p).is_file()]
    assert not missing, missing
