"""`mlsensors datasheet`: an ML-sensor datasheet measured on this machine at generation time.

`generate` measures (see measure.py), lays the sheet out as blocks (render.py) and
writes datasheet.md and a self-contained datasheet.html with inline SVG plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlsensors.errors import InputError


@dataclass(frozen=True, slots=True)
class Written:
    markdown: Path
    html: Path
    not_measured: tuple[str, ...]


def generate(out_dir: Path, data_dir: Path | None, audit_seconds: float = 3.0) -> Written:
    from mlsensors.privacy.datasheet.measure import measure
    from mlsensors.privacy.datasheet.render import blocks, to_html, to_markdown

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a folder")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise InputError(f"data folder {data_dir} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    m = measure(Path(data_dir) if data_dir is not None else None, audit_seconds)
    doc = blocks(m)
    md, html = out_dir / "datasheet.md", out_dir / "datasheet.html"
    md.write_text(to_markdown(doc), encoding="utf-8")
    html.write_text(to_html(doc), encoding="utf-8")
    return Written(md, html, m.not_measured)
