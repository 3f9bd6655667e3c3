"""Import layering, read from the source with ast (imports inside functions count too): the engine imports nothing
from core.video, and the weight converters in core/convert import one another without a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of every module ``path`` imports (``from a import b`` gives a and a.b), anywhere in the file."""
    name = _module(path, root).split(".")
    package = name if path.name == "__init__.py" else name[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def import_cycle(folder: Path, root: Path = ROOT) -> list[str] | None:
    """A cycle among the modules of the package ``folder`` (its __init__ left out: a module may import the
    package's names), or None."""
    files = {_module(f, root): f for f in sorted(folder.glob("*.py")) if f.name != "__init__.py"}
    graph = {m: sorted(n for n in imports(f, root) if n in files and n != m) for m, f in files.items()}

    def visit(m: str, path: list[str]) -> list[str] | None:
        if m in path:
            return path[path.index(m):] + [m]
        return next((c for n in graph[m] if (c := visit(n, path + [m]))), None)

    return next((c for m in graph if (c := visit(m, []))), None)


def test_the_engine_imports_nothing_from_core_video():
    files = sorted((ROOT / "core" / "engine").glob("*.py"))
    assert len(files) > 10
    upward = sorted(f"{f.relative_to(ROOT)}: {m}" for f in files for m in imports(f) if m.startswith("core.video"))
    assert not upward, upward


def test_core_convert_has_no_import_cycle():
    cycle = import_cycle(ROOT / "core" / "convert")
    assert cycle is None, " -> ".join(cycle)
    # the bias-table geometry both needed lives with the position code
    assert "core.nn.position.infer_table_window" in imports(ROOT / "core" / "convert" / "inflate.py")
    assert "core.convert.inflate" in imports(ROOT / "core" / "convert" / "load.py")


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    pkg = tmp_path / "pkg" / "conv"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .load import load\n")
    (pkg / "inflate.py").write_text("from .load import infer\n")
    (pkg / "load.py").write_text("def infer():\n    pass\n\n\ndef load():\n    from .inflate import x\n")
    (pkg / "formats.py").write_text("import os\n")
    assert import_cycle(pkg, tmp_path) == ["pkg.conv.inflate", "pkg.conv.load", "pkg.conv.inflate"]
    assert "pkg.conv.load" in imports(pkg / "__init__.py", tmp_path)
