"""Every header name the servers use by name comes from shared/headers.py, never a string literal."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Final

from plugin_streams.shared import headers

ROOT: Final = Path(__file__).resolve().parents[2]
PRODUCT: Final = ("origin", "edge", "shared")
#: Lists of standard names a module filters by (hop-by-hop, conditional), not headers it reads or
#: writes; and edge/region/, whose owner moves it to these constants separately.
EXEMPT: Final = (Path("shared/headers.py"), Path("edge/upstream.py"), Path("edge/coalesce.py"), Path("edge/region"))
_HEADER_NAME: Final = re.compile(r"\A[A-Z][A-Za-z]*(-[A-Za-z]+)*\Z")


def header_names() -> set[str]:
    values = (getattr(headers, name) for name in dir(headers) if name.isupper())
    return {value for value in values if isinstance(value, str) and _HEADER_NAME.match(value)}


def names_a_header(text: str, names: set[str]) -> bool:
    # Any case for names with a dash ("if-none-match"); one-word names only as spelled, so
    # that a word such as "accept" (a producer outcome) is not taken for the header.
    return text in names or ("-" in text and text.lower() in {name.lower() for name in names})


def literals_naming_headers(path: Path, names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and names_a_header(node.value, names)
    ]


def test_the_vocabulary_has_the_names_the_servers_use() -> None:
    names = header_names()
    assert {"Stream-Next-Offset", "Authorization", "Vary", "X-Accel-Buffering", "Last-Event-ID"} <= names


def test_no_product_module_spells_a_header_name_itself() -> None:
    names = header_names()
    found = [
        hit
        for folder in PRODUCT
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not any(path.relative_to(ROOT).is_relative_to(exempt) for exempt in EXEMPT)
        for hit in literals_naming_headers(path, names)
    ]
    assert found == [], "use the constants of shared/headers.py:\n" + "\n".join(found)
