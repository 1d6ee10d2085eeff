"""What the reference files share: where they are, slugs, codes, reading YAML, and the error that lists every
problem found."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

REFERENCE_DIR: Final = Path(__file__).resolve().parent
#: OPD and category codes: lowercase ASCII slugs like 'bina-marga'
CODE_RE: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class ReferenceDataError(ValueError):
    """Reference data that cannot be used; `problems` lists every problem found."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{listing}")


def slugify(text: str) -> str:
    """Lowercase ASCII slug: accents dropped, every run of other characters becomes one `-`.

    >>> slugify("Kebayoran Baru"), slugify("Jembatan/JPO/Halte"), slugify("  PDAM/PAM, Air Bersih ")
    ('kebayoran-baru', 'jembatan-jpo-halte', 'pdam-pam-air-bersih')
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def read_yaml(data: Mapping[str, Any] | str | Path, source: str, error: type[ReferenceDataError]) -> Any:
    """`data` is a mapping, YAML text, or a Path to a YAML file."""
    if isinstance(data, Path):
        data = data.read_text(encoding="utf-8")
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise error(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, Mapping):
        raise error(source, [f"top level must be a mapping, got {type(data).__name__}"])
    return data
