"""The commands: one home (cli/), thin shims under their documented python -m names, console scripts in
pyproject.toml, and ``--help`` of every one."""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib

import pytest

import cli
from helpers import ROOT

COMMANDS = sorted(m.name for m in pkgutil.iter_modules(cli.__path__) if m.name not in ("recipes", "kit"))
SHIMS = {  # documented python -m name -> (cli module, its function)
    "video_swin.train": ("cli.train", "main_video"), "video_swin.test": ("cli.test", "main"),
    "video_swin.predict": ("cli.predict", "main"), "video_swin.extract_features": ("cli.extract", "main"),
    "video_swin.prepare": ("cli.prepare", "main"), "core.train": ("cli.train", "main_image"),
    "core.predict": ("cli.predict_image", "main"), "core.extract_features": ("cli.extract_image", "main"),
    "core.export": ("cli.export", "main"), "core.tools.summary": ("cli.summary", "main"),
    "core.tools.plot": ("cli.plot", "main"), "core.tools.visualize_mask": ("cli.visualize_mask", "main"),
    "core.engine.torchrun_wrapper": ("cli.torchrun", "main"), "swin_mlp.train": ("cli.train", "main_image"),
    "moby.pretrain": ("cli.pretrain", "main_moby"), "moby.linear": ("cli.linear", "main"),
    "simmim.pretrain": ("cli.pretrain", "main_simmim"), "simmim.finetune": ("cli.finetune", "main"),
    "simmim.visualize": ("cli.visualize", "main"), "moby.finetune": ("cli.finetune", "main_moby"),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_answers_help(name, capsys):
    main = importlib.import_module(f"cli.{name}").main
    try:
        code = main(["--help"])
    except SystemExit as e:  # argparse
        code = e.code
    assert code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("name", sorted(SHIMS))
def test_documented_names_are_shims_over_the_commands(name):
    """The old module holds no command code: its __main__ block calls the cli function (which exists)."""
    spec = importlib.util.find_spec(name)
    source = open(spec.origin).read()
    module, fn = SHIMS[name]
    assert f"from {module} import {fn}" in source and "argparse" not in source
    assert callable(getattr(importlib.import_module(module), fn))


def test_console_scripts_point_at_commands():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("swin-train", "swin-test", "swin-predict", "swin-extract", "swin-explain", "swin-export",
                 "swin-prepare", "swin-pretrain"):
        module, fn = scripts[name].split(":")
        assert callable(getattr(importlib.import_module(module), fn)), name


def test_libraries_never_import_a_command():
    """No module outside cli/ (and the shims' __main__ blocks) imports cli."""
    import ast
    bad = []
    for path in ROOT.glob("*/**/*.py"):
        top = path.relative_to(ROOT).parts[0]
        if top in ("cli", "tests", "bench", "docs", ".venv", "results", "outputs", "build"):
            continue
        tree = ast.parse(path.read_text())
        main_blocks = {id(n) for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
                       for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in main_blocks:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n == "cli" or n.startswith("cli.") for n in names):
                    bad.append(str(path.relative_to(ROOT)))
    assert not bad, bad


def test_the_documented_main_entry_point_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "video_swin.train", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "--config" in r.stdout
