"""The layers hold at the import level: `jaklapor_app` (command, runner, local stores) → `services.<name>` →
`jaklapor` (the shared kernel). The kernel imports no service and nothing of the application; a service imports no
other service (services talk through events, whose contracts are in the kernel)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "jaklapor"
SERVICES = ROOT / "services"
#: cross-service imports that are known and scheduled for removal, with the reason; nothing else may join
CROSS_SERVICE_EXCEPTIONS: dict[str, str] = {}


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module a file imports, at any depth (lazy imports inside functions count too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def top_package(module: str) -> str:
    return module.split(".")[0]


def python_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def test_the_kernel_imports_neither_services_nor_the_application() -> None:
    upward = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files(KERNEL)
        for module in imported_modules(path)
        if top_package(module) in ("services", "jaklapor_app")
    ]
    assert not upward, upward


def test_no_service_imports_another_service() -> None:
    services = [folder.name for folder in SERVICES.iterdir() if (folder / "__init__.py").exists()]
    assert {"intake", "routing", "notify", "stats"} <= set(services)
    crossing = []
    for service in services:
        for path in python_files(SERVICES / service):
            name = str(path.relative_to(ROOT))
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] != service:
                    crossing.append(f"{name}: {module}")
                if parts[0] == "jaklapor_app":
                    crossing.append(f"{name}: {module} (the application layer sits above the services)")
    assert sorted(c for c in crossing if c.split(":")[0] not in CROSS_SERVICE_EXCEPTIONS) == []


def test_the_scanner_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from services.routing.cli import route_command\n    import jaklapor_app.cli\n")
    assert list(imported_modules(module)) == ["services.routing.cli", "jaklapor_app.cli"]
