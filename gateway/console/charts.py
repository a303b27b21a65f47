"""Charts for the console, drawn on the server as SVG: no script, no library, no CDN.

Each function returns markup for one ``<svg role="img">`` with a ``<title>``; colours come
from classes in ``console.css`` (the console's policy allows no inline style). A chart is
only a picture of the table printed beside it: the table is the accessible truth, and labels
and numbers arrive here already translated and formatted by the caller. Every text is
escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 640
BAR_HEIGHT = 22
LABEL_WIDTH = 200


def _svg(height: int, title: str, body: list[str]) -> Markup:
    # every text in ``body`` and here went through escape(); numbers are formatted floats
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def stacked_columns(title: str, labels: Sequence[str],
                    series: Sequence[tuple[str, str, Sequence[int]]]) -> Markup:
    """Columns of ``labels`` (days), each a stack of ``series`` ``(name, css class,
    values)``; a legend below."""
    height, top, bottom, left = 240, 10, 40, 40
    plot_h = height - top - bottom
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    step = (WIDTH - left - 10) / max(len(labels), 1)
    body = [f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{WIDTH - 10}" '
            f'y2="{top + plot_h}"/>',
            f'<text class="tick" x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
            f'<text class="tick" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>']
    for i, label in enumerate(labels):
        x = left + i * step + step * 0.1
        y = top + plot_h
        for _name, css, values in series:
            h = plot_h * values[i] / peak
            if h:
                y -= h
                body.append(f'<rect class="{escape(css)}" x="{x:.1f}" y="{y:.1f}" '
                            f'width="{step * 0.8:.1f}" height="{h:.1f}"/>')
        if len(labels) <= 16 or i % max(len(labels) // 8, 1) == 0:
            body.append(f'<text class="tick" x="{x + step * 0.4:.1f}" y="{top + plot_h + 14}" '
                        f'text-anchor="middle">{escape(label)}</text>')
    x = left
    for name, css, _values in series:
        body.append(f'<rect class="{escape(css)}" x="{x}" y="{height - 14}" width="10" '
                    f'height="10"/><text class="tick" x="{x + 14}" y="{height - 5}">'
                    f'{escape(name)}</text>')
        x += 20 + 8 * len(name)
    return _svg(height, title, body)


def bars(title: str, rows: Sequence[tuple[str, float, str]], marker: float | None = None,
         marker_label: str = "") -> Markup:
    """Horizontal bars ``(label, value, value as shown)``; ``marker`` draws a line at that
    value (a target)."""
    height = max(len(rows), 1) * (BAR_HEIGHT + 6) + (24 if marker is not None else 8)
    peak = max([v for _, v, _ in rows] + ([marker] if marker is not None else []),
               default=0) or 1
    span = WIDTH - LABEL_WIDTH - 90
    body = []
    for i, (label, value, shown) in enumerate(rows):
        y = 4 + i * (BAR_HEIGHT + 6)
        w = span * value / peak
        body.append(f'<text class="tick" x="{LABEL_WIDTH - 6}" y="{y + 15}" '
                    f'text-anchor="end">{escape(label[:32])}</text>'
                    f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{w:.1f}" '
                    f'height="{BAR_HEIGHT}"/><text class="tick" x="{LABEL_WIDTH + w + 4:.1f}" '
                    f'y="{y + 15}">{escape(shown)}</text>')
    if marker is not None:
        x = LABEL_WIDTH + span * marker / peak
        body.append(f'<line class="target" x1="{x:.1f}" y1="0" x2="{x:.1f}" '
                    f'y2="{height - 18}"/><text class="tick" x="{x:.1f}" y="{height - 4}" '
                    f'text-anchor="middle">{escape(marker_label)}</text>')
    return _svg(height, title, body)
