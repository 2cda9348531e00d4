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
