"""Every message says where to go: an incident's signed page, or the signed incident list for
a group message; an AlimTalk template never shows an empty parameter such as "link: "."""

from __future__ import annotations

from pydantic import SecretStr

from control_plane.alerting.channels.alimtalk import build_request
from control_plane.alerting.channels.email import render_text
from control_plane.alerting.channels.slack import render_blocks
from control_plane.alerting.channels.sms import render_sms
from control_plane.alerting.payload import GroupAlert, build_notification, message_link
from control_plane.config import AlimTalkChannelConfig

ALERT = GroupAlert("fp", {"alertname": "Down", "agent": "web-1"}, {"summary": "web-1 down"},
                   "firing", False, 1_800_000_000.0, None)  # fmt: skip
TALK = AlimTalkChannelConfig(
    app_key="k",
    secret_key=SecretStr("s"),
    sender_key="sk",
    template_code="HAETAE_ALERT",
    template_parameters={"status": "{status}", "title": "{title}", "link": "{url}"},
    to="01000000001",
)


def _params(note: object) -> dict[str, str]:
    request = build_request(note, TALK, idempotency_key="key")  # type: ignore[arg-type]
    return dict(request["recipientList"][0]["templateParameter"])


def test_a_message_without_any_link_never_shows_an_empty_parameter() -> None:
    note = build_notification("g", "ops", {}, [ALERT])
    assert message_link(note) is None
    assert _params(note)["link"] == "-"


def test_group_messages_carry_the_list_link_and_incident_messages_their_page() -> None:
    group = build_notification("g", "ops", {}, [ALERT], external_url="https://cp/incidents?e=1")
    assert _params(group)["link"] == "https://cp/incidents?e=1"
    assert "https://cp/incidents?e=1" in render_sms(group)
    incident = build_notification("incident/7", "default", {}, [ALERT])
    incident["incident"] = {
        "id": 7, "title": "web-1 down", "status": "triggered", "level": 0,
        "url": "https://cp/incidents/7?exp=1&sig=a",
    }  # fmt: skip
    for text in (
        _params(incident)["link"],
        render_sms(incident),
        render_text(incident),
        str(render_blocks(incident)),
    ):
        assert "https://cp/incidents/7?exp=1&sig=a" in text
    assert "INCIDENT #7 TRIGGERED level 1" in _params(incident)["title"]
