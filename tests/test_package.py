"""Tests for the mammo_utils package as a whole: no import cycle (deferred imports included), every module imports,
public API documented and typed, every module has a mirrored test file.

The import graph and the API checks read the source with :mod:`ast` (nothing is imported for them); one fresh
interpreter then imports every module, so an import that only works thanks to an earlier import is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mammo_utils"
TESTS = Path(__file__).resolve().parent
MAX_MODULE_LINES = 450  # the house rule says "< ~400"; this is the hard stop

# Public API gaps in modules this file's author does not own, recorded when the check was added. The test fails
# when a gap is fixed (remove it here then) as well as when a new one appears.
KNOWN_API_GAPS: frozenset[str] = frozenset()


def _modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_modules(name: str, path: Path, modules: dict[str, Path], *, deferred: bool = True) -> set[str]:
    """The package modules that ``name`` imports, plus the packages above each of them that ``name`` is not
    itself inside. Imports under ``if TYPE_CHECKING:`` never count. With ``deferred`` (the default) imports
    inside functions count too: a cycle closed by a deferred import still ties the two modules together and
    breaks as soon as the import moves up. Without it, only what importing ``name`` runs at once counts.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not deferred:
                continue  # run later, when called: not part of importing this module
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
                targets.update(submodules)
                if len(submodules) < len(node.names):  # names defined in the module (or package) itself
                    targets.add(base)
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    visit(children)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    edges = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            ancestor = ".".join(parts[:i])
            if ancestor in modules and ancestor != name and not name.startswith(ancestor + "."):
                edges.add(ancestor)
    return edges


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None if it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_cycles_and_only_cycles() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"b", "c"}}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"a"}}) == ["a", "a"]


def test_import_graph_reads_the_kinds_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "a.py": (
            "from pkg import b\nfrom pkg.sub import thing\nimport pkg.c\n"
            "if TYPE_CHECKING:\n    from pkg import d\n"
            "def later():\n    try:\n        from pkg import e\n    except ImportError:\n        pass\n"
            "class Thing:\n    from pkg import f\n"
        ),
        "b.py": "",
        "c.py": "",
        "d.py": "",
        "e.py": "",
        "f.py": "",
        "sub/__init__.py": "from pkg.sub.x import thing\n",
        "sub/x.py": "from pkg.sub import y\nfrom . import z\n",
        "sub/y.py": "",
        "sub/z.py": "",
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    modules = {"pkg": package / "__init__.py", "pkg.sub": package / "sub" / "__init__.py"}
    modules |= {f"pkg.{n[:-3]}".replace("/", "."): package / n for n in sources if not n.endswith("__init__.py")}
    module_level = {"pkg.b", "pkg.sub", "pkg.c", "pkg.f"}  # a class body runs on import, a function body later
    assert _imported_modules("pkg.a", modules["pkg.a"], modules, deferred=False) == module_level
    assert _imported_modules("pkg.a", modules["pkg.a"], modules) == module_level | {"pkg.e"}
    assert _imported_modules("pkg.sub.x", modules["pkg.sub.x"], modules) == {"pkg.sub.y", "pkg.sub.z"}
    assert _imported_modules("pkg.sub", modules["pkg.sub"], modules) == {"pkg.sub.x"}


def test_a_cycle_closed_by_a_deferred_import_is_found(tmp_path: Path) -> None:
    # the shape io <-> io_dicom once had: io imports io_dicom inside a function, io_dicom imports io at the top
    package = tmp_path / "pkg"
    package.mkdir()
    sources = {
        "__init__.py": "",
        "reader.py": (
            "def read(data):\n    if data:\n        from pkg import decoder\n        return decoder.decode(data)\n"
        ),
        "decoder.py": "from pkg.reader import read\n",
        "shared.py": "",
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    modules = {"pkg" if n == "__init__.py" else f"pkg.{n[:-3]}": package / n for n in sources}
    module_level = {n: _imported_modules(n, p, modules, deferred=False) for n, p in modules.items()}
    assert _find_cycle(module_level) is None  # invisible to a scan of module-level imports only
    graph = {n: _imported_modules(n, p, modules) for n, p in modules.items()}
    assert _find_cycle(graph) == ["pkg.decoder", "pkg.reader", "pkg.decoder"]
    (package / "decoder.py").write_text("from pkg.shared import read\n")  # the fix: both import a shared module
    graph = {n: _imported_modules(n, p, modules) for n, p in modules.items()}
    assert _find_cycle(graph) is None


def test_no_circular_import() -> None:
    modules = _modules()
    graph = {name: _imported_modules(name, path, modules) for name, path in modules.items()}
    assert graph["mammo_utils.training.pipeline"] >= {
        "mammo_utils.training.cache",
        "mammo_utils.training.augment",
    }  # the scan sees imports
    assert "mammo_utils.imaging.dicom" in graph["mammo_utils.imaging.io"]  # ... including deferred ones
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    names = sorted(_modules())
    code = "import importlib\nfor name in %r:\n    importlib.import_module(name)\nprint('ok')" % (names,)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def _api_gaps(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """Public functions, classes and methods defined in ``path`` without a docstring or complete type hints."""
    where = path.relative_to(root).as_posix()
    gaps = []

    def check(node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, method: bool) -> None:
        if ast.get_docstring(node) is None:
            gaps.append(f"{where}: {qualname} has no docstring")
        positional = node.args.posonlyargs + node.args.args
        if method and positional and positional[0].arg in ("self", "cls"):
            positional = positional[1:]
        params = positional + node.args.kwonlyargs + [a for a in (node.args.vararg, node.args.kwarg) if a]
        untyped = [a.arg for a in params if a.annotation is None]
        if untyped:
            gaps.append(f"{where}: {qualname} has parameters without type hints: {', '.join(untyped)}")
        if node.returns is None:
            gaps.append(f"{where}: {qualname} has no return type hint")

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if _is_public(node) and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            check(node, node.name, method=False)
        elif _is_public(node) and isinstance(node, ast.ClassDef):
            if ast.get_docstring(node) is None:
                gaps.append(f"{where}: {node.name} has no docstring")
            for member in node.body:
                if _is_public(member) and isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    check(member, f"{node.name}.{member.name}", method=True)
    return gaps


def _is_public(node: ast.AST) -> bool:
    """True for a def or class whose name does not start with an underscore."""
    return not getattr(node, "name", "_").startswith("_")


def test_api_gaps_are_found(tmp_path: Path) -> None:
    path = tmp_path / "mammo_utils" / "example.py"
    path.parent.mkdir()
    path.write_text(
        'def documented(x: int, *, y: str = "") -> int:\n    """Doc."""\n    return x\n'
        "def bare(x, *args, **kwargs):\n    return x\n"
        "def _private(x):\n    return x\n"
        'class Thing:\n    """Doc."""\n    def method(self, x: int):\n        """Doc."""\n'
        "    def _hidden(self, x):\n        pass\n"
        "class Bare:\n    pass\n"
    )
    where = "mammo_utils/example.py"
    assert _api_gaps(path, root=tmp_path) == [
        f"{where}: bare has no docstring",
        f"{where}: bare has parameters without type hints: x, args, kwargs",
        f"{where}: bare has no return type hint",
        f"{where}: Thing.method has no return type hint",
        f"{where}: Bare has no docstring",
    ]


def test_public_api_is_documented_and_typed() -> None:
    gaps = {gap for path in _modules().values() for gap in _api_gaps(path)}
    new = sorted(gaps - KNOWN_API_GAPS)
    fixed = sorted(KNOWN_API_GAPS - gaps)
    assert not new, "public functions/classes need a docstring and type hints:\n" + "\n".join(new)
    assert not fixed, "these gaps are fixed; remove them from KNOWN_API_GAPS:\n" + "\n".join(fixed)


def test_no_module_is_much_over_the_house_limit() -> None:
    too_long = {
        name: n
        for name, path in _modules().items()
        if (n := path.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES
    }
    assert not too_long, f"split these modules by job (house rule: < ~400 lines): {too_long}"


def _imports_in(path: Path) -> set[str]:
    """Dotted names a test file imports: ``from a.b import c`` gives ``a.b`` and ``a.b.c``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _untested_modules(package: Path = PACKAGE, tests: Path = TESTS) -> list[str]:
    """Modules without a mirrored test file. ``pkg/x.py`` needs ``tests/test_x.py``; a module of a subpackage,
    ``pkg/sub/y.py``, needs ``tests/test_sub_y.py`` or a ``tests/test_sub_*.py`` that imports it (one test file may
    cover several loaders). ``__init__.py`` and ``__main__.py`` hold no logic of their own and are exempt.
    """
    missing = []
    for path in sorted(package.rglob("*.py")):
        if path.stem in ("__init__", "__main__"):
            continue
        parts = path.relative_to(package).with_suffix("").parts
        if (tests / f"test_{'_'.join(parts)}.py").is_file():
            continue
        dotted = ".".join((package.name, *parts))
        prefix = "_".join(parts[:-1])
        if prefix and any(dotted in _imports_in(test) for test in tests.glob(f"test_{prefix}_*.py")):
            continue
        missing.append(path.relative_to(package.parent).as_posix())
    return missing


def test_untested_modules_are_found(tmp_path: Path) -> None:
    package, tests = tmp_path / "pkg", tmp_path / "tests"
    (package / "sub").mkdir(parents=True)
    tests.mkdir()
    for name in ("__init__.py", "__main__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py", "sub/d.py", "sub/e.py"):
        (package / name).write_text("")
    (tests / "test_a.py").write_text("")
    (tests / "test_sub_c.py").write_text("")
    (tests / "test_sub_loaders.py").write_text("from pkg.sub.d import load\nfrom pkg import b\n")
    assert _untested_modules(package, tests) == ["pkg/b.py", "pkg/sub/e.py"]  # b is imported, not mirrored
    (tests / "test_sub_loaders.py").write_text("from pkg.sub import d, e\n")
    assert _untested_modules(package, tests) == ["pkg/b.py"]


def test_every_module_has_a_mirrored_test_file() -> None:
    missing = _untested_modules()
    assert not missing, "write a test file for each of these modules (tests/test_<module>.py):\n" + "\n".join(missing)
