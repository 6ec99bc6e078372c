"""Server-rendered incident pages (list; detail with a timeline and actions); pure HTML
rendering, every value escaped. Small, phone-sized layout, no scripts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;padding:1rem;max-width:48rem;color:#1b1b1b}
h1{font-size:1.3rem;margin:.2rem 0 .8rem}
.status{display:inline-block;padding:.15rem .5rem;border-radius:.3rem;font-weight:600}
.triggered{background:#fde2e1;color:#8a1c14}.acknowledged{background:#fff3cd;color:#6b4e00}
.resolved{background:#d9f2dd;color:#1d5c2a}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem .8rem}dt{color:#666}
ol{padding-left:1.2rem}li{margin:.35rem 0}.when{color:#666;font-size:.85rem}
form{display:inline-block;margin:.3rem .3rem .3rem 0}
button{font-size:1rem;padding:.6rem 1rem;border-radius:.4rem;border:1px solid #888}
textarea{width:100%;min-height:4rem;font-size:1rem;box-sizing:border-box}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _status(status: str) -> str:
    return f'<span class="status {escape(status)}" id=status>{escape(status)}</span>'


def _hidden(auth: Mapping[str, str]) -> str:
    return "".join(
        f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in auth.items()
    )


def render_incident(incident: Mapping[str, Any], auth: Mapping[str, str]) -> str:
    """The detail page; ``auth`` is the link's ``exp``/``sig``, carried by the forms."""
    iid = int(incident["id"])
    action = f"/incidents/{iid}/action"
    rows = [
        ("Status", _status(incident["status"])),
        ("Policy", escape(incident["policy"])),
        ("Level reached", str(int(incident["level"]))),
        ("Assignee", escape(incident["assignee"] or "nobody")),
        ("Opened", escape(incident["created_at"] or "")),
        ("Next escalation", escape(incident["next_escalation_at"] or "none")),
    ]
    paged = sorted(
        {
            str(e["detail"].get("name") or e["detail"].get("user"))
            for e in incident.get("timeline", [])
            if e["kind"] == "paged"
        }
    )
    if paged:
        rows.append(("People paged", escape(", ".join(paged))))
    facts = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    timeline = "".join(
        f"<li><span class=when>{escape(e['at'])}</span> <b>{escape(e['kind'])}</b> "
        f"by {escape(e['actor'])}{_event(e['kind'], e['detail'])}</li>"
        for e in incident.get("timeline", [])
    )
    actions = ""
    if incident["status"] != "resolved":
        hidden = _hidden(auth)
        if incident["status"] == "triggered":
            actions += (
                f'<form method=post action="{action}">{hidden}'
                "<input type=hidden name=action value=ack>"
                "<button id=ack>Acknowledge</button></form>"
            )
        actions += (
            f'<form method=post action="{action}">{hidden}'
            "<input type=hidden name=action value=resolve>"
            "<button id=resolve>Resolve</button></form>"
        )
    note = (
        f'<form method=post action="{action}" style="display:block">{_hidden(auth)}'
        "<input type=hidden name=action value=note>"
        '<textarea name=text aria-label="Note" required></textarea>'
        "<button id=note>Add note</button></form>"
    )
    body = (
        f"<h1>#{iid} {escape(incident['title'])}</h1><dl>{facts}</dl>"
        f"<div>{actions}</div><h2>Timeline</h2><ol id=timeline>{timeline}</ol>{note}"
    )
    return _page(f"#{iid} {incident['title']}", body)


def render_list(incidents: Sequence[Mapping[str, Any]], link: Callable[[int], str]) -> str:
    rows = "".join(
        f'<tr><td><a href="{escape(link(int(i["id"])))}">#{int(i["id"])}</a></td>'
        f"<td>{escape(i['title'])}</td><td>{_status(i['status'])}</td>"
        f"<td>{escape(i['created_at'] or '')}</td></tr>"
        for i in incidents
    )
    table = (
        "<table><thead><tr><th>#</th><th>Title</th><th>Status</th><th>Opened</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )
    return _page("Incidents", f"<h1>Incidents</h1>{table}")


def _event(kind: str, detail: Mapping[str, Any]) -> str:
    """People paged (or not) read as sentences; other events list their details."""
    if kind == "paged":
        who = escape(str(detail.get("name") or detail.get("user")))
        how = escape(f"{detail.get('via')} {detail.get('address')}")
        level = int(detail.get("level", 0)) + 1
        why = escape(str(detail.get("target", "")))
        return (
            f": <b class=paged>{who}</b> via {how} <span class=when>(level {level}, {why})</span>"
        )
    if kind == "page_skipped":
        level = int(detail.get("level", 0)) + 1
        why = escape(f"{detail.get('target')}: {detail.get('reason')}")
        return f": <span class=when>level {level}, {why}</span>"
    return _detail(detail)


def _detail(detail: Mapping[str, Any]) -> str:
    if not detail:
        return ""
    if "text" in detail:
        return f": {escape(str(detail['text']))}"
    parts = ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in detail.items())
    return f" <span class=when>({parts})</span>"
