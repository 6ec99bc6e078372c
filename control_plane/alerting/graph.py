"""A small server-rendered SVG line graph of an alert's recent series, with the moment it
started marked; pure, no scripts (the incident page's Content-Security-Policy allows none
from elsewhere, and a phone gets it as part of the page)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from control_plane.rules.templates import humanize

_W, _H = 600.0, 180.0
_LEFT, _RIGHT, _TOP, _BOTTOM = 54.0, 8.0, 10.0, 24.0
_COLOURS = ("#2f6fec", "#d9480f", "#2b8a3e", "#7048e8")


def _points(series: Mapping[str, Any]) -> list[tuple[float, float]]:
    out = []
    for point in series.get("points") or ():
        try:
            t, v = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(t) and math.isfinite(v):
            out.append((t, v))
    return out


_COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _per_second(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A counter's points as its rate between samples (a reset starts over), as a person
    reads a counter: how fast it grows, not how far it has counted."""
    out = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t1 > t0:
            out.append((t1, (v1 - v0 if v1 >= v0 else v1) / (t1 - t0)))
    return out


def _iso_epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M UTC")


def _label(series: Mapping[str, Any]) -> str:
    labels = series.get("labels") or {}
    extra = ",".join(
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("agent", "__name__")
    )
    name = str(series.get("name", ""))
    text = f"{name}{{{extra}}}" if extra else name
    return f"rate({text}) /s" if name.endswith(_COUNTER_SUFFIXES) else text


def series_svg(series: Sequence[Mapping[str, Any]], *, marker_iso: str | None = None) -> str:
    """An SVG graph of ``series`` (each ``{name, labels, points: [[unix_s, value], ...]}``), or
    "" when there is nothing to draw."""
    lines = []
    for s in series:
        pts = _points(s)
        if str(s.get("name", "")).endswith(_COUNTER_SUFFIXES):
            pts = _per_second(pts)
        if len(pts) >= 2:
            lines.append((s, pts))
    if not lines:
        return ""
    ts = [t for _, pts in lines for t, _ in pts]
    vs = [v for _, pts in lines for _, v in pts]
    t0, t1 = min(ts), max(ts)
    v0, v1 = min(vs), max(vs)
    if v0 == v1:
        v0, v1 = v0 - 1, v1 + 1
    if t0 == t1:
        t1 = t0 + 1
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(t: float) -> float:
        return _LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return _TOP + (1 - (v - v0) / (v1 - v0)) * plot_h

    parts = [
        f'<svg class=graph viewBox="0 0 {_W:g} {_H:g}" role=img aria-label="recent values"'
        ' xmlns="http://www.w3.org/2000/svg" font-family="system-ui,sans-serif" font-size="11">',
        f'<rect x="{_LEFT:g}" y="{_TOP:g}" width="{plot_w:g}" height="{plot_h:g}" fill="#fafbfc"'
        ' stroke="#dde1e6"/>',
        f'<text x="{_LEFT - 4:g}" y="{_TOP + 9:g}" text-anchor="end" fill="#5f6b7a">'
        f"{escape(humanize(v1))}</text>",
        f'<text x="{_LEFT - 4:g}" y="{_TOP + plot_h:g}" text-anchor="end" fill="#5f6b7a">'
        f"{escape(humanize(v0))}</text>",
        f'<text x="{_LEFT:g}" y="{_H - 6:g}" fill="#5f6b7a">{_clock(t0)}</text>',
        f'<text x="{_W - _RIGHT:g}" y="{_H - 6:g}" text-anchor="end" fill="#5f6b7a">'
        f"{_clock(t1)}</text>",
    ]
    for i, (s, pts) in enumerate(lines):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{path}">'
            f"<title>{escape(_label(s))}</title></polyline>"
        )
    marker = _iso_epoch(marker_iso)
    if marker is not None and t0 <= marker <= t1:
        mx = x(marker)
        parts.append(
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{_TOP:g}" y2="{_TOP + plot_h:g}"'
            ' stroke="#c92a2a" stroke-dasharray="4 3"/>'
            f'<text x="{min(mx + 3, _W - 60):.1f}" y="{_TOP + 10:g}" fill="#c92a2a">started</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span style="color:{_COLOURS[i % len(_COLOURS)]}">&#9632;</span> {escape(_label(s))}<br>'
        for i, (s, _) in enumerate(lines)
    )
    return "".join(parts) + f"<div class=legend>{legend}</div>"
