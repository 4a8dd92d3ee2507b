"""The expiry timeline: live certificates expiring per week, as an inline SVG bar chart
built on the server (pure; no script, no external resource).

Every text that reaches the SVG (dates, counts and certificate NAMEs in the bars'
``<title>`` tooltips) is escaped with :func:`markupsafe.escape`: a NAME is whatever the
issuer accepted and is never markup.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 260
_LEFT, _BOTTOM, _TOP = 48, 36, 16


@dataclasses.dataclass(frozen=True)
class Bucket:
    start: dt.date
    count: int
    names: tuple[str, ...] = ()   # the soonest NAMEs expiring in it (tooltip)


def weekly(days: Sequence[tuple[dt.date, int]], first: dt.date, weeks: int) -> list[Bucket]:
    """Per-day counts summed into ``weeks`` weeks starting on ``first``."""
    counts = [0] * weeks
    for day, count in days:
        index = (day - first).days // 7
        if 0 <= index < weeks:
            counts[index] += count
    return [Bucket(first + dt.timedelta(weeks=i), c) for i, c in enumerate(counts)]


def svg(buckets: Sequence[Bucket], title: str = "Certificates expiring per week") -> Markup:
    """An accessible SVG bar chart of ``buckets`` (one bar per week)."""
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _TOP - _BOTTOM
    top = max([b.count for b in buckets] + [1])
    step = plot_w / max(len(buckets), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" role="img" aria-labelledby="chart-title" class="timeline">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - 8}" y2="{_TOP + plot_h}" class="axis"/>',
             f'<text x="{_LEFT - 6}" y="{_TOP + 10}" text-anchor="end" class="label">{top}</text>',
             f'<text x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end" class="label">0</text>']
    for i, bucket in enumerate(buckets):
        height = plot_h * bucket.count / top
        x, y = _LEFT + i * step + 1, _TOP + plot_h - height
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" height="{height:.1f}" '
                     f'class="bar"><title>{escape(_tooltip(bucket))}</title></rect>')
        if i % 4 == 0 and x < WIDTH - 70:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - _BOTTOM + 16}" class="label">'
                         f'{escape(bucket.start.isoformat())}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _tooltip(bucket: Bucket) -> str:
    text = f"week of {bucket.start.isoformat()}: {bucket.count} certificate{'s' if bucket.count != 1 else ''}"
    if bucket.names:
        more = ", ..." if bucket.count > len(bucket.names) else ""
        text += f" (first: {', '.join(bucket.names)}{more})"
    return text
