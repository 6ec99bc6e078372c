"""Server-rendered incident pages (list; detail with alerts, graphs, timeline and actions);
pure HTML rendering, every value escaped. Phone-sized layout; one tiny inline script shows
times in the viewer's zone and as "3 min ago" (without it, times read in UTC)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from control_plane.alerting.graph import series_svg
from control_plane.rules.templates import humanize

_STYLE = """
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1c1f23;
background:#f4f5f7}
main{max-width:48rem;margin:0 auto;padding:.8rem}
header.top{background:#1c1f23;color:#fff;padding:.55rem .8rem;font-weight:600;font-size:.95rem}
h1{font-size:1.25rem;margin:.3rem 0 .6rem;overflow-wrap:anywhere}
h2{font-size:1rem;margin:1.2rem 0 .5rem;color:#444;text-transform:uppercase;letter-spacing:.04em}
.card{background:#fff;border:1px solid #dde1e6;border-radius:.6rem;padding:.8rem;margin:.6rem 0}
.status{display:inline-block;padding:.12rem .55rem;border-radius:1rem;font-weight:600;
font-size:.85rem;text-transform:capitalize}
.triggered,.firing{background:#fde2e1;color:#8a1c14}.acknowledged{background:#fff3cd;color:#6b4e00}
.resolved{background:#d9f2dd;color:#1d5c2a}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem .8rem;margin:0}
dt{color:#5f6b7a}dd{margin:0;overflow-wrap:anywhere}
.muted,time.rel{color:#5f6b7a;font-size:.85rem}
.labels{display:flex;flex-wrap:wrap;gap:.25rem;margin:.4rem 0}
.labels span{background:#eef1f4;border-radius:.3rem;padding:.05rem .4rem;font-size:.8rem;
font-family:ui-monospace,monospace;overflow-wrap:anywhere}
code.expr{display:block;background:#f6f8fa;border-radius:.3rem;padding:.4rem;font-size:.8rem;
white-space:pre-wrap;overflow-wrap:anywhere}
.alert-head{display:flex;justify-content:space-between;gap:.5rem;align-items:baseline}
.value{font-weight:600}
svg.graph{width:100%;height:auto;display:block;margin-top:.4rem}
.legend{overflow-wrap:anywhere;font-size:.78rem;color:#5f6b7a}
ol.timeline{list-style:none;padding:0;margin:0}
ol.timeline li{padding:.45rem 0;border-bottom:1px solid #eceef1}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end}
form{margin:0}
button{font:inherit;font-weight:600;padding:.65rem 1.1rem;border-radius:.5rem;border:0;
cursor:pointer;background:#2f6fec;color:#fff;min-height:2.75rem}
button.resolve{background:#1d7a3a}button.secondary{background:#e4e7eb;color:#1c1f23}
label{display:block;font-size:.85rem;color:#5f6b7a;margin-bottom:.2rem}
input[type=text],input[type=password],textarea{font:inherit;width:100%;padding:.5rem;
border:1px solid #c3c9d1;border-radius:.4rem;background:#fff}
textarea{min-height:4.5rem}
.who{margin-bottom:.6rem}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.5rem .3rem;border-bottom:1px solid #e3e6ea;vertical-align:top}
a{color:#1f5fd1}
"""

# Times: <time datetime=ISO>UTC text</time> becomes the viewer's local time plus "3 min ago".
_SCRIPT = """
(function(){var f=new Intl.DateTimeFormat(undefined,{dateStyle:"medium",timeStyle:"short"});
var r=new Intl.RelativeTimeFormat(undefined,{numeric:"auto"});
function ago(ms){var s=Math.round(ms/1000),a=Math.abs(s);
if(a<60)return r.format(-s,"second");if(a<3600)return r.format(-Math.round(s/60),"minute");
if(a<86400)return r.format(-Math.round(s/3600),"hour");return r.format(-Math.round(s/86400),"day");}
document.querySelectorAll("time[datetime]").forEach(function(t){var d=new Date(t.dateTime);
if(isNaN(d))return;t.title=t.textContent;
t.textContent=f.format(d)+" ("+ago(Date.now()-d.getTime())+")";});})();
"""


def page(title: str, body: str, *, heading: str = "Haetae incidents") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><header class=top>{escape(heading)}</header><main>{body}</main>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def when(iso: str | None) -> str:
    """A time element: UTC text without scripts, the viewer's zone and "ago" with them."""
    if not iso:
        return "none"
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return escape(iso)
    text = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f'<time datetime="{escape(iso)}">{text}</time>'


def status_pill(status: str, *, element_id: str | None = None) -> str:
    ident = f" id={element_id}" if element_id else ""
    return f'<span class="status {escape(status)}"{ident}>{escape(status)}</span>'


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )


def render_incident(
    incident: Mapping[str, Any], auth: Mapping[str, str], *, actor: str = ""
) -> str:
    """The detail page; ``auth`` is the link's ``exp``/``sig``, carried by the forms; ``actor``
    the name the viewer gave before (asked for with every action)."""
    iid = int(incident["id"])
    context = incident.get("context") or {}
    timeline = incident.get("timeline", [])
    levels_paged = int(incident["level"])
    rows = [
        ("Status", status_pill(str(incident["status"]), element_id="status")),
        ("Level", f"<span id=level>{levels_paged}</span>" if levels_paged else "not paged yet"),
        ("Policy", escape(str(incident["policy"]))),
        ("Assignee", escape(incident["assignee"] or "nobody")),
        ("Opened", when(incident["created_at"])),
        ("Next escalation", when(incident["next_escalation_at"])),
    ]
    if incident.get("resolved_at"):
        rows.append(("Resolved", when(incident["resolved_at"])))
    paged = sorted(
        {
            str(e["detail"].get("name") or e["detail"].get("user"))
            for e in timeline
            if e["kind"] == "paged"
        }
    )
    if paged:
        rows.append(("People paged", escape(", ".join(paged))))
    facts = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    body = (
        f"<h1>#{iid} {escape(str(incident['title']))}</h1>"
        f"<section class=card><dl>{facts}</dl></section>"
        f"{_actions(incident, auth, actor)}"
        f"{_alerts(incident.get('alerts', []), context)}"
        f"<h2>Timeline</h2><section class=card><ol class=timeline id=timeline>"
        f"{''.join(_timeline_item(e) for e in timeline)}</ol></section>"
        f"{_note_form(iid, auth, actor)}"
    )
    return page(f"#{iid} {incident['title']}", body)


def _who_field(actor: str) -> str:
    return (
        "<div class=who><label for=actor>Your name (shown in the timeline)</label>"
        f'<input type=text id=actor name=actor required maxlength=100 value="{escape(actor)}"'
        " autocomplete=name></div>"
    )


def _actions(incident: Mapping[str, Any], auth: Mapping[str, str], actor: str) -> str:
    if incident["status"] == "resolved":
        return ""
    iid = int(incident["id"])
    action = f"/incidents/{iid}/action"
    buttons = ""
    if incident["status"] == "triggered":
        buttons += "<button id=ack name=action value=ack>Acknowledge</button>"
    # Resolving is confirmed on a page of its own (works without scripts).
    buttons += "<button id=resolve class=resolve name=action value=resolve>Resolve…</button>"
    return (
        f'<section class=card><form method=post action="{action}">{_hidden(auth)}'
        f"{_who_field(actor)}<div class=actions>{buttons}</div></form></section>"
    )


def _note_form(iid: int, auth: Mapping[str, str], actor: str) -> str:
    return (
        "<h2>Add a note</h2><section class=card>"
        f'<form method=post action="/incidents/{iid}/action">'
        f"{_hidden(auth)}<input type=hidden name=action value=note>{_who_field(actor)}"
        "<label for=text>Note</label><textarea id=text name=text required maxlength=10000>"
        "</textarea><p><button id=note class=secondary>Add note</button></p></form></section>"
    )


def render_confirm_resolve(incident: Mapping[str, Any], auth: Mapping[str, str], actor: str) -> str:
    iid = int(incident["id"])
    firing = sum(1 for a in incident.get("alerts", []) if a["state"] == "firing")
    warn = (
        f"<p>{firing} of its alerts still fire; they will page again if they keep firing.</p>"
        if firing
        else ""
    )
    fields = {**auth, "action": "resolve", "confirm": "yes", "actor": actor}
    body = (
        f"<h1>Resolve #{iid} {escape(str(incident['title']))}?</h1>"
        f"<section class=card>{warn}<p>Everyone paged is told it is resolved.</p>"
        f'<div class=actions><form method=post action="/incidents/{iid}/action">'
        f"{_hidden(fields)}<button id=confirm-resolve class=resolve>Yes, resolve</button></form>"
        f'<form method=get action="/incidents/{iid}">{_hidden(auth)}'
        "<button class=secondary>Cancel</button></form></div></section>"
    )
    return page(f"Resolve #{iid}?", body)


def _alerts(alerts: Sequence[Mapping[str, Any]], context: Mapping[str, Any]) -> str:
    if not alerts:
        return ""
    expressions = context.get("rule_expressions")
    expressions = expressions if isinstance(expressions, dict) else {}
    series = context.get("recent_series")
    series = series if isinstance(series, list) else []
    cards = "".join(_alert_card(a, expressions, series) for a in alerts)
    return f"<h2>Alerts ({len(alerts)})</h2>{cards}"


def _alert_card(
    alert: Mapping[str, Any], expressions: Mapping[str, Any], series: Sequence[Any]
) -> str:
    labels: Mapping[str, str] = alert.get("labels") or {}
    annotations: Mapping[str, str] = alert.get("annotations") or {}
    name = labels.get("alertname", "alert")
    summary = annotations.get("summary") or name
    chips = "".join(f"<span>{escape(k)}={escape(str(v))}</span>" for k, v in sorted(labels.items()))
    value = alert.get("value")
    parts = [
        f"<div class=alert-head><b>{escape(summary)}</b>{status_pill(str(alert['state']))}</div>",
        f"<div class=labels>{chips}</div>",
        "<dl>",
        f"<dt>Since</dt><dd>{when(alert.get('starts_at'))}</dd>",
    ]
    if alert.get("ends_at"):
        parts.append(f"<dt>Until</dt><dd>{when(alert['ends_at'])}</dd>")
    if isinstance(value, int | float):
        parts.append(f"<dt>Value</dt><dd class=value>{escape(_value(float(value)))}</dd>")
    runbook = annotations.get("runbook_url") or annotations.get("runbook")
    if runbook and runbook.startswith(("https://", "http://")):
        parts.append(
            f'<dt>Runbook</dt><dd><a href="{escape(runbook)}" rel="noopener noreferrer"'
            f" target=_blank>{escape(runbook)}</a></dd>"
        )
    description = annotations.get("description")
    if description:
        parts.append(f"<dt>Details</dt><dd>{escape(description)}</dd>")
    parts.append("</dl>")
    expr = expressions.get(name)
    if isinstance(expr, str) and expr:
        parts.append(f"<code class=expr>{escape(expr)}</code>")
    graph = series_svg(
        _series_for(labels, series, expr if isinstance(expr, str) else ""),
        marker_iso=alert.get("starts_at"),
    )
    if graph:
        parts.append(graph)
    return f"<section class=card>{''.join(parts)}</section>"


def _value(value: float) -> str:
    """Ratios read as 0.1987, not 198.7m; larger values with SI prefixes (1.235M)."""
    return f"{value:.4g}" if abs(value) < 1 else humanize(value)


def _series_for(
    labels: Mapping[str, str], series: Sequence[Any], expr: str
) -> list[dict[str, Any]]:
    """The recent series of the alert's agent that its rule's expression reads."""
    agent = labels.get("agent")
    return [
        s
        for s in series
        if isinstance(s, dict)
        and (agent is None or s.get("agent") == agent)
        and s.get("points")
        and str(s.get("name", "\x00")) in expr
    ][:4]


def _timeline_item(event: Mapping[str, Any]) -> str:
    kind = str(event["kind"])
    detail = event.get("detail") or {}
    return (
        f"<li>{when(event['at'])} <b>{escape(_KIND.get(kind, kind.replace('_', ' ')))}</b>"
        f" by {escape(str(event['actor']))}{_event(kind, detail)}</li>"
    )


_KIND = {
    "alert_firing": "alert firing",
    "alert_resolved": "alert resolved",
    "page_skipped": "could not page",
    "ack_timeout": "acknowledgement timed out",
}


def _event(kind: str, detail: Mapping[str, Any]) -> str:
    """Events read as sentences; levels are 1-based, as in the header."""
    level = detail.get("level")
    level_text = f"level {int(level) + 1}" if isinstance(level, int) else ""
    if kind == "paged":
        who = escape(str(detail.get("name") or detail.get("user")))
        how = escape(f"{detail.get('via')} {detail.get('address')}")
        why = escape(str(detail.get("target", "")))
        return (
            f": <b class=paged>{who}</b> via {how} <span class=muted>({level_text}, {why})</span>"
        )
    if kind == "page_skipped":
        why = escape(f"{detail.get('target')}: {detail.get('reason')}")
        return f": <span class=muted>{level_text}, {why}</span>"
    if kind == "escalated":
        told = ", ".join(str(r) for r in [*detail.get("receivers", []), *detail.get("targets", [])])
        again = " (repeat)" if detail.get("repeat") else ""
        return f": {escape(level_text)}{again}" + (f" to {escape(told)}" if told else "")
    if kind in ("alert_firing", "alert_resolved"):
        return f": {escape(str(detail.get('summary') or detail.get('alertname', '')))}"
    if kind == "ack_timeout":
        return f": <span class=muted>{escape(level_text)} is paged again</span>"
    if "text" in detail:
        return f": {escape(str(detail['text']))}"
    if "assignee" in detail:
        return f": to {escape(str(detail['assignee']))}"
    return _detail(detail)


def _detail(detail: Mapping[str, Any]) -> str:
    if not detail:
        return ""
    parts = ", ".join(f"{escape(str(k))}: {escape(_plain(v))}" for k, v in detail.items())
    return f" <span class=muted>({parts})</span>"


def _plain(value: Any) -> str:
    """Values as people read them, never as Python reprs."""
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


def render_list(incidents: Sequence[Mapping[str, Any]], link: Callable[[int], str]) -> str:
    rows = "".join(
        f'<tr><td><a href="{escape(link(int(i["id"])))}">#{int(i["id"])}</a></td>'
        f"<td>{escape(str(i['title']))}</td><td>{status_pill(str(i['status']))}</td>"
        f"<td>{when(i['created_at'])}</td></tr>"
        for i in incidents
    )
    if not rows:
        rows = "<tr><td colspan=4 class=muted>No incidents.</td></tr>"
    table = (
        "<section class=card><table><thead><tr><th>#</th><th>Title</th><th>Status</th>"
        f"<th>Opened</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )
    return page("Incidents", f"<h1>Incidents</h1>{table}")


def render_login(error: str = "") -> str:
    """The incident list for an admin without a signed link: sign in with an admin token."""
    message = f"<p class=status id=error>{escape(error)}</p>" if error else ""
    body = (
        "<h1>Incidents</h1><section class=card>"
        "<p>Open the list with an admin token (<code>haetae up</code> prints it, and saves it"
        " in <code>admin.token</code>), or use the link in a notification.</p>"
        f'{message}<form method=post action="/incidents/login">'
        "<label for=token>Admin token</label>"
        "<input type=password id=token name=token required maxlength=200"
        " autocomplete=current-password>"
        "<p><button id=login>Open the incident list</button></p></form></section>"
    )
    return page("Incidents: sign in", body)


def _script_hash() -> str:
    return base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()


# The pages' headers: never cached (signed links, actions), never framed, no referrer (the
# link's signature must not leak to a runbook's site), only our own inline script.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{_script_hash()}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
