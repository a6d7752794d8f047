"""Small inline SVG charts for the datasheet's HTML page (no plotting library, no files).

Only two shapes are needed: a histogram and a line chart with points. Text is escaped;
sizes are fixed so the page lays out the same everywhere.
"""

from __future__ import annotations

from html import escape

W, H = 420, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 24, 36


def _frame(title: str, xlabel: str, ylabel: str, body: list[str], xticks, yticks) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
             f'<text x="{W / 2}" y="15" text-anchor="middle" font-size="13">'
             f'{escape(title)}</text>',
             f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
             f'stroke="#333"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#333"/>']
    for x, label in xticks:
        parts.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" '
                     f'font-size="10">{escape(label)}</text>')
    for y, label in yticks:
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" '
                     f'font-size="10">{escape(label)}</text>')
    parts.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 4}" text-anchor="middle" '
                 f'font-size="11">{escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
                 f'font-size="11" transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2})">'
                 f'{escape(ylabel)}</text>')
    return "\n".join([*parts, *body, "</svg>"])


def histogram(values: list[float] | tuple[float, ...], title: str, xlabel: str,
              bins: int = 20) -> str:
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    top = max(counts)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    bar = plot_w / bins
    body = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        body.append(f'<rect x="{LEFT + i * bar + 1:.1f}" y="{H - BOTTOM - h:.1f}" '
                    f'width="{bar - 2:.1f}" height="{h:.1f}" fill="#4a7ab5">'
                    f'<title>{lo + i * width:.2f}–{lo + (i + 1) * width:.2f}: {c}</title>'
                    f'</rect>')
    xticks = [(LEFT + plot_w * k / 4, f"{lo + (hi - lo) * k / 4:.1f}") for k in range(5)]
    yticks = [(H - BOTTOM - plot_h * k / 2, f"{top * k / 2:.0f}") for k in range(3)]
    return _frame(title, xlabel, "frames", body, xticks, yticks)


def line(points: list[tuple[float, float]], title: str, xlabel: str, ylabel: str,
         xrange=(0.0, 1.0), yrange=(0.0, 1.0), labels: list[str] | None = None) -> str:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + plot_w * (x - xrange[0]) / (xrange[1] - xrange[0])

    def sy(y: float) -> float:
        return H - BOTTOM - plot_h * (y - yrange[0]) / (yrange[1] - yrange[0])

    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}"
                    for i, (x, y) in enumerate(points))
    body = [f'<path d="{path}" fill="none" stroke="#4a7ab5" stroke-width="2"/>']
    for i, (x, y) in enumerate(points):
        tip = f"<title>{escape(labels[i])}</title>" if labels else ""
        body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#c44">'
                    f'{tip}</circle>')
    xticks = [(sx(xrange[0] + (xrange[1] - xrange[0]) * k / 4),
               f"{xrange[0] + (xrange[1] - xrange[0]) * k / 4:.2f}") for k in range(5)]
    yticks = [(sy(yrange[0] + (yrange[1] - yrange[0]) * k / 4),
               f"{yrange[0] + (yrange[1] - yrange[0]) * k / 4:.2f}") for k in range(5)]
    return _frame(title, xlabel, ylabel, body, xticks, yticks)
