"""A self-contained SVG flame graph from py-spy's collapsed stacks (`py-spy record --format raw`).

py-spy writes one output format per recording; recording twice would double its overhead on the profiled
service, so the benchmark records collapsed stacks (for the text summary) and draws the flame graph from them.
Hover a box for its function, file and share of samples.
"""

from __future__ import annotations

import html
import zlib
from pathlib import Path


class _Node:
    __slots__ = ("children", "count")

    def __init__(self) -> None:
        self.count = 0
        self.children: dict[str, _Node] = {}


def write_flamegraph(raw: Path, svg: Path, title: str, width: int = 1600, row: int = 16, min_px: float = 0.4) -> None:
    root = _Node()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        node = root
        node.count += count
        for frame in stack.split(";"):
            node = node.children.setdefault(frame, _Node())
            node.count += count
    total = max(root.count, 1)
    boxes: list[str] = []
    depth_max = 0

    def walk(node: _Node, x: float, depth: int) -> None:
        nonlocal depth_max
        for frame, child in sorted(node.children.items()):
            w = child.count / total * width
            if w >= min_px:
                depth_max = max(depth_max, depth)
                name = frame.split(" (")[0]
                hue = zlib.crc32(frame.split(" (")[-1].encode()) % 60
                label = html.escape(name) if w > 40 else ""
                tip = html.escape(f"{frame}: {child.count} samples, {100 * child.count / total:.1f} %")
                boxes.append(
                    f'<g><title>{tip}</title><rect x="{x:.1f}" y="{{y{depth}}}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hue},80%,60%)"/><text x="{x + 2:.1f}" y="{{t{depth}}}">'
                    f"{label[: int(w / 7)]}</text></g>"
                )
                walk(child, x, depth + 1)
            x += w

    walk(root, 0.0, 0)
    height = (depth_max + 3) * row
    out = []
    for box in boxes:
        # icicle upside down: the root at the bottom, as flame graphs are usually drawn
        for depth in range(depth_max + 1):
            box = box.replace(f"{{y{depth}}}", str(height - (depth + 2) * row)).replace(
                f"{{t{depth}}}", str(height - (depth + 2) * row + row - 4)
            )
        out.append(box)
    svg.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
        f'font-size="11"><text x="4" y="14" font-size="13">{html.escape(title)}: {total} samples (py-spy, 50 Hz)'
        f"</text>{''.join(out)}</svg>"
    )
