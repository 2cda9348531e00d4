"""The package's layers (docs/architecture.md): what each may import."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import orchestrator
import orchestrator.language

LANGUAGE_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(orchestrator.language.__path__, "orchestrator.language.")
)


def test_the_language_imports_without_celery_or_redis() -> None:
    # A fresh interpreter: this test process has long imported both.
    code = (
        "import importlib, sys\n"
        f"for name in {LANGUAGE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in ('celery', 'kombu', 'redis') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_language_layer_has_the_interpreter() -> None:
    assert "orchestrator.language.interpreter" in LANGUAGE_MODULES
    assert "orchestrator.language.definition.validate" in LANGUAGE_MODULES


# -- one store owns Redis ---------------------------------------------------------------

PACKAGE = Path(orchestrator.__file__).parent

#: The only module that talks to the Redis client.
STORE_MODULE = "engine/store.py"

#: Modules allowed one named Redis use outside the store, and why.
REDIS_ALLOWED = {
    # Starts a private redis-server for tests and the demo and pings it until it
    # answers: the server's lifecycle, before any store (or key prefix) exists.
    "engine/embedded.py": {"redis.Redis("},
}


def _redis_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module reaches the Redis client instead of a store method: a store's
    ``.client``, a ``.pipeline()`` or ``.register_script()`` call, a new ``redis.Redis``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "client":
            base = node.value
            name = (
                base.id
                if isinstance(base, ast.Name)
                else base.attr
                if isinstance(base, ast.Attribute)
                else base.func.id
                if isinstance(base, ast.Call) and isinstance(base.func, ast.Name)
                else ""
            )
            if "store" in name.lower():
                found.append((node.lineno, f"{name}.client"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if func.attr in ("pipeline", "register_script", "evalsha", "execute_command"):
                found.append((node.lineno, f".{func.attr}("))
            if (
                func.attr in ("Redis", "StrictRedis", "from_url")
                and isinstance(func.value, ast.Name | ast.Attribute)
                and "redis" in ast.unparse(func.value).lower()
            ):
                found.append((node.lineno, f"{ast.unparse(func)}("))
    return found


def test_only_the_store_touches_the_redis_client() -> None:
    offenders = []
    allowed_seen = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == STORE_MODULE:
            continue
        for line, use in _redis_uses(ast.parse(path.read_text(), str(path))):
            if use in REDIS_ALLOWED.get(relative, set()):
                allowed_seen.add((relative, use))
                continue
            offenders.append(f"orchestrator/{relative}:{line}: {use}")
    assert not offenders, "Redis used outside RedisStore:\n" + "\n".join(offenders)
    # The allow-list stays short and true: each entry is still needed.
    assert allowed_seen == {(m, u) for m, uses in REDIS_ALLOWED.items() for u in uses}


def test_the_redis_scan_sees_what_it_forbids() -> None:
    sample = (
        "store.client.hget('k', 'f')\n"
        "get_store().client.ping()\n"
        "self.store.client.zadd('k', {})\n"
        "pipe = anything.pipeline(transaction=False)\n"
        "client.register_script('return 1')\n"
        "redis.Redis(unix_socket_path='/x')\n"
        "redis.Redis.from_url('redis://')\n"
        "request.client.host\n"
    )
    uses = [use for _, use in _redis_uses(ast.parse(sample))]
    assert uses.count("store.client") == 2 and "get_store.client" in uses
    assert ".pipeline(" in uses and ".register_script(" in uses
    assert "redis.Redis(" in uses and "redis.Redis.from_url(" in uses
    assert len(uses) == 7  # request.client (Starlette's peer address) is not Redis


# -- the key layout stays in the engine ------------------------------------------------

#: Layers above the engine: they ask the engine for reads and writes by name.
KEY_BLIND = ("client/", "ui/", "cli.py", "testing.py", "conformance.py")


def _layout_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module names the Redis layout: a store's ``keys``, or composes a ``Write``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "keys":
            base = ast.unparse(node.value)
            if "store" in base.lower():
                found.append((node.lineno, f"{base}.keys"))
        if isinstance(node, ast.Name) and node.id == "Write":
            found.append((node.lineno, "Write"))
    return found


def test_layers_above_the_engine_never_name_a_key_or_compose_a_write() -> None:
    offenders = [
        f"orchestrator/{relative}:{line}: {use}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if (relative := path.relative_to(PACKAGE).as_posix()).startswith(KEY_BLIND)
        for line, use in _layout_uses(ast.parse(path.read_text(), str(path)))
    ]
    assert not offenders, "the Redis layout named above the engine:\n" + "\n".join(offenders)


def test_the_layout_scan_sees_what_it_forbids() -> None:
    sample = "store.keys.execution('x')\nget_store().keys.steps('x')\nWrite().op('del', 'k')\n"
    uses = [use for _, use in _layout_uses(ast.parse(sample))]
    assert uses == ["store.keys", "get_store().keys", "Write"]


# -- the engine and the language import nothing above them -----------------------------

#: The layers above the engine (docs/architecture.md): the client and the surfaces.
ABOVE_THE_ENGINE = (
    "orchestrator.client",
    "orchestrator.cli",
    "orchestrator.ui",
    "orchestrator.testing",
    "orchestrator.conformance",
)

#: Function-local imports of the package's own modules in the engine and the language,
#: with why each cannot be at the top of its module. A local import hides a cycle or a
#: layer crossed; a cycle is broken by moving code or handing a function down instead.
LOCAL_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {}


def _imported_modules(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The modules an import statement in ``module`` loads: ``from P import X`` means
    ``P.X`` when that is a module of the package, else ``P``; ``from orchestrator import X``
    means the module that ``orchestrator/__init__`` loads X from."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        parts = module.split(".")[: -node.level]
        base = ".".join([*parts, base] if base else parts)
    exports = {name: home for home, names in orchestrator._EXPORTS.items() for name in names}
    found = []
    for alias in node.names:
        submodule = PACKAGE.parent.joinpath(*base.split("."), alias.name)
        if submodule.with_suffix(".py").is_file() or submodule.is_dir():
            found.append(f"{base}.{alias.name}")
        elif base == "orchestrator" and alias.name in exports:
            found.append(exports[alias.name])
        else:
            found.append(base)
    return found


def _imports(tree: ast.AST, module: str) -> list[tuple[int, str, bool]]:
    """Every import of ``tree`` (function bodies too): (line, module, inside a function)."""
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend((node.lineno, m, in_function) for m in _imported_modules(node, module))
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def _lower_layer_modules() -> list[tuple[str, str, ast.AST]]:
    """(path relative to the package, dotted name, syntax tree) of the engine's and the
    language's modules."""
    modules = []
    for layer in ("engine", "language"):
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            relative = path.relative_to(PACKAGE).as_posix()
            dotted = "orchestrator." + relative.removesuffix(".py").replace("/", ".")
            dotted = dotted.removesuffix(".__init__")
            modules.append((relative, dotted, ast.parse(path.read_text(), str(path))))
    return modules


def _is_within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_engine_and_the_language_import_nothing_above_them() -> None:
    offenders = [
        f"orchestrator/{relative}:{line}: imports {imported}"
        for relative, dotted, tree in _lower_layer_modules()
        for line, imported, _ in _imports(tree, dotted)
        if _is_within(imported, ABOVE_THE_ENGINE)
    ]
    assert not offenders, "a lower layer imports the client or a surface:\n" + "\n".join(offenders)


def test_the_engine_and_the_language_import_the_package_at_the_top() -> None:
    offenders = []
    allowed_seen = set()
    for relative, dotted, tree in _lower_layer_modules():
        for line, imported, in_function in _imports(tree, dotted):
            if not in_function or not _is_within(imported, ("orchestrator",)):
                continue
            if (relative, imported) in LOCAL_IMPORTS_ALLOWED:
                allowed_seen.add((relative, imported))
                continue
            offenders.append(f"orchestrator/{relative}:{line}: imports {imported}")
    assert not offenders, (
        "function-local imports of the package (move them to the top of the module, or "
        "break the cycle they hide):\n" + "\n".join(offenders)
    )
    # The allow-list stays short and true: each entry is still needed.
    assert allowed_seen == set(LOCAL_IMPORTS_ALLOWED)


def test_the_import_scan_sees_what_it_forbids() -> None:
    sample = (
        "import orchestrator.cli\n"
        "from orchestrator import start_workflow, config\n"
        "from orchestrator.client.control import stop_execution\n"
        "def f():\n"
        "    from orchestrator.ui import serve\n"
        "    class C:\n"
        "        def g(self):\n"
        "            from ..client import api\n"
        "            from orchestrator.language import intrinsics, jsontext as j\n"
        "async def h():\n"
        "    import orchestrator.engine.store\n"
    )
    found = _imports(ast.parse(sample), "orchestrator.engine.x")
    assert found == [
        (1, "orchestrator.cli", False),
        (2, "orchestrator.client.api", False),
        (2, "orchestrator.config", False),
        (3, "orchestrator.client.control", False),
        (5, "orchestrator.ui", True),
        (8, "orchestrator.client.api", True),
        (9, "orchestrator.language.intrinsics", True),
        (9, "orchestrator.language.jsontext", True),
        (11, "orchestrator.engine.store", True),
    ]
    above = [m for _, m, _ in found if _is_within(m, ABOVE_THE_ENGINE)]
    assert len(above) == 5  # neither orchestrator.config nor the engine's store
    assert not _is_within("orchestrator.clientele", ABOVE_THE_ENGINE)
