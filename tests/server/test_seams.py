"""The driver seam: the shell talks to ``ImageService`` use cases, never to its ports."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from image_core.service import ImageService
from tests.dashboard.support import make_service

SHELL = Path(__file__).parents[2] / "packages" / "image_server" / "src" / "image_server"
PORT_NAMES = frozenset(
    {"policy", "catalog", "clock", "images", "metadata", "backend", "prefs", "codec", "ids"}
)


def _service_port_reads(tree: ast.AST) -> list[str]:
    """``<...service>.<port>`` reads, e.g. ``service.policy`` or ``self.service.catalog``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr.lstrip("_") not in PORT_NAMES:
            continue
        owner = node.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        if name.lstrip("_").endswith("service"):
            found.append(f"{name}.{node.attr} (line {node.lineno})")
    return found


def test_no_module_of_the_shell_reads_the_services_ports() -> None:
    """Drivers and the composition root ask use cases; none reaches through to a port."""
    offenders = {
        str(path.relative_to(SHELL)): reads
        for path in sorted(SHELL.rglob("*.py"))
        if (reads := _service_port_reads(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}


def test_the_port_check_sees_the_spellings_drivers_would_use() -> None:
    """The walker is not vacuous: it flags the reads the seam forbids."""
    code = "service.policy\nself.service.catalog\nself._service._images\nservice.generate"
    assert _service_port_reads(ast.parse(code)) == [
        "service.policy (line 1)",
        "service.catalog (line 2)",
        "_service._images (line 3)",
    ]


@pytest.mark.parametrize("port", sorted(PORT_NAMES))
def test_the_service_keeps_its_ports_private(port: str) -> None:
    """No public attribute hands a driver a port (the constructor still takes them)."""
    assert not hasattr(make_service().service, port)


def test_every_use_case_that_touches_a_port_is_a_coroutine() -> None:
    """A new driver cannot forget to move blocking work off the loop."""
    use_cases = [
        "generate",
        "usage_for",
        "daily_spend_for",
        "visible_users",
        "gallery",
        "thumbnail",
        "set_default_model",
        "default_model_for",
        "choose_model",
        "open_public_image",
    ]
    assert all(inspect.iscoroutinefunction(getattr(ImageService, n)) for n in use_cases)
