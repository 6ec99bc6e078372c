"""The control plane's config tree (YAML file + ``HAETAE_*`` environment overrides)."""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from haetae.cache.config import CacheConfig
from haetae.config import StrictModel, load_file
from link_analyzer.config import LinkAnalyzerConfig

ENV_PREFIX = "HAETAE"


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8340, ge=0, le=65535)
    # Largest accepted request body, compressed or not (reports are the big ones).
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # Largest body after gzip decompression: guards against decompression bombs.
    max_decompressed_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # A connection must send a complete request head this soon after it opens (or after its
    # first byte, on a kept-alive connection), else it is closed: slowloris holds no descriptor.
    header_timeout_s: float = Field(10.0, gt=0, le=600)


class PostgresConfig(StrictModel):
    dsn: SecretStr | None = None
    pool_min_size: int = Field(2, ge=1)
    pool_max_size: int = Field(10, ge=1)
    command_timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    # Apply pending migrations when the control plane starts (also: `haetae db migrate`).
    migrate_on_start: bool = True


class RedisConfig(StrictModel):
    url: SecretStr | None = None
    socket_timeout_s: float = Field(1.0, gt=0)
    # Commands beyond this many concurrent connections wait up to pool_timeout_s for one.
    max_connections: int = Field(200, ge=1)
    pool_timeout_s: float = Field(2.0, gt=0)


class AuthConfig(StrictModel):
    # A pre-shared enrolment token accepted in addition to the ones created via the API
    # (handy for fleets provisioned by config management). Stored hashed on first start.
    enrolment_token: SecretStr | None = None
    # On first start (no admin token exists yet) one is created and written here, mode 600.
    bootstrap_token_file: Path = Path(".haetae/admin.token")


class IngestConfig(StrictModel):
    # In-memory window kept per series for the rule evaluator.
    window_seconds: float = Field(3600.0, gt=0)
    window_max_points: int = Field(4096, ge=2)
    # At start the windows are back-filled from PostgreSQL (the span the rules read, at most
    # window_seconds); rules are first evaluated when it is done or after this long.
    backfill: bool = True
    backfill_timeout_s: float = Field(120.0, ge=0)
    # Group commit: one COPY transaction per flush.
    flush_interval_s: float = Field(0.05, gt=0)
    flush_max_samples: int = Field(25_000, ge=1)
    # Samples this far ahead of the server clock are refused (agent clock gone wrong).
    max_future_skew_s: float = Field(600.0, gt=0)
    max_samples_per_report: int = Field(200_000, ge=1)
    # Replicas share their committed samples through a Redis Stream so every replica's windows
    # hold every agent's samples (no sticky routing; ingest/replicate.py). auto: on when
    # redis.url is set; on: required (start fails without Redis); off: per-process windows.
    replicate: Literal["auto", "on", "off"] = "auto"
    replicate_stream: str = Field("haetae:ingest:samples", min_length=1)
    # Stream bounds (approximate trimming): entries (one per commit batch) and age; Redis holds
    # ~16 bytes per sample of that span. A replica cut off for longer re-reads the missed span
    # from PostgreSQL.
    replicate_max_entries: int = Field(2_000, ge=10)
    replicate_max_age_s: float = Field(60.0, gt=0)
    # Samples waiting to be published while Redis is unreachable; beyond, the oldest are
    # dropped (counted) and the other replicas back-fill that span from PostgreSQL.
    replicate_buffer_samples: int = Field(1_000_000, ge=1)
    # Series cardinality limits (ingest/limits.py): a report that would create more series is
    # refused whole, naming the limit. Sized for one app per agent: node + process + a large app
    # exporter is a few thousand series; a deploy relabelling everything stays well inside the
    # hourly budget; 1,000,000 live series is about what one control plane's windows and series
    # cache hold in ~1 GB. The benchmarks (50 agents x 1,000 series) stay far below.
    max_new_series_per_report: int = Field(10_000, ge=1)
    max_new_series_per_agent_hour: int = Field(50_000, ge=1)
    max_series_per_agent: int = Field(100_000, ge=1)
    max_series_global: int = Field(1_000_000, ge=1)
    # How often the live counts are re-read from the series table (other replicas' new series,
    # pruned ones).
    series_count_refresh_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _series_limits_nest(self) -> IngestConfig:
        # A report refused by the hourly limit must fit once the hour has moved on.
        if self.max_new_series_per_report > self.max_new_series_per_agent_hour:
            raise ValueError(
                "max_new_series_per_report must not exceed max_new_series_per_agent_hour"
            )
        if self.max_series_per_agent > self.max_series_global:
            raise ValueError("max_series_per_agent must not exceed max_series_global")
        return self


class RetentionConfig(StrictModel):
    retention_days: int = Field(14, ge=1)
    partitions_ahead_days: int = Field(3, ge=1)
    maintenance_interval_s: float = Field(3600.0, gt=0)


class HealthConfig(StrictModel):
    # Dependency checks run in the background; the endpoints answer from the latest result.
    check_interval_s: float = Field(2.0, gt=0)
    check_timeout_s: float = Field(1.0, gt=0)
    # A check older than this is reported as "warn" (stale).
    stale_after_s: float = Field(10.0, gt=0)


class AgentsConfig(StrictModel):
    # An agent not heard from for this long is "stale"; after down_after_s it is "down".
    stale_after_s: float = Field(30.0, gt=0)
    down_after_s: float = Field(120.0, gt=0)


class WebhookChannelConfig(StrictModel):
    # Receives Alertmanager's webhook payload (version 4).
    url: str
    timeout_s: float = Field(10.0, gt=0)
    # Extra headers, e.g. Authorization for the receiving end (redacted when printed).
    headers: dict[str, SecretStr] = {}


class SlackChannelConfig(StrictModel):
    token: SecretStr
    channel: str
    # The Web API's base URL (tests point it at a local server).
    base_url: str = "https://slack.com/api/"
    timeout_s: float = Field(10.0, gt=0)


class PagerDutyChannelConfig(StrictModel):
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    timeout_s: float = Field(10.0, gt=0)


class EmailChannelConfig(StrictModel):
    # SMTP submission: STARTTLS (required unless starttls is false), then AUTH when a username
    # is set; a multipart message with a plain-text and an HTML body.
    host: str
    port: int = Field(587, ge=1, le=65535)
    from_addr: str
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    # Extra CA bundle to verify the server's certificate (a private CA); the system's otherwise.
    ca_file: Path | None = None
    timeout_s: float = Field(10.0, gt=0)


class SmsChannelConfig(StrictModel):
    # A Twilio-style Messages API: POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json
    # with basic auth and form fields To, From, Body. One number per entry (list several entries
    # for several people: each is its own destination, sent exactly once).
    account_sid: str
    auth_token: SecretStr
    from_number: str
    to: str
    base_url: str = "https://api.twilio.com"
    # The text is trimmed to this many SMS segments (1: 160 GSM-7 or 70 UCS-2 characters).
    max_segments: int = Field(1, ge=1, le=10)
    timeout_s: float = Field(10.0, gt=0)


class AlimTalkChannelConfig(StrictModel):
    # KakaoTalk AlimTalk through NHN Cloud's send API (v2.3 shape):
    # POST {base_url}/alimtalk/v2.3/appkeys/{app_key}/messages with an X-Secret-Key header.
    app_key: str
    secret_key: SecretStr
    sender_key: str
    # An approved template; its #{variables} are filled from template_parameters, whose values
    # are format strings over {status}, {title}, {alertname}, {summary}, {count}, {url}.
    template_code: str
    template_parameters: dict[str, str] = {"status": "{status}", "title": "{title}"}
    to: str
    base_url: str = "https://api-alimtalk.cloud.toast.com"
    # Provider-side fallback: NHN sends this text as SMS from this number when KakaoTalk cannot
    # deliver it (not a KakaoTalk user, blocked, ...).
    resend_send_no: str | None = None
    # Our fallback: when the AlimTalk API refuses the message, it is sent through this SMS API.
    fallback_sms: SmsChannelConfig | None = None
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _known_fields(self) -> AlimTalkChannelConfig:
        known = {"status", "title", "alertname", "summary", "count", "url"}
        for name, template in self.template_parameters.items():
            for _, field, _, _ in string.Formatter().parse(template):
                if field is not None and field not in known:
                    raise ValueError(
                        f"template_parameters.{name}: unknown field {{{field}}}"
                        f" (known: {', '.join(sorted(known))})"
                    )
        return self


class KakaoWorkChannelConfig(StrictModel):
    # A Kakao Work bot: POST {base_url}/v1/messages.send with the bot's app key as Bearer token.
    app_key: SecretStr
    conversation_id: str
    base_url: str = "https://api.kakaowork.com"
    timeout_s: float = Field(10.0, gt=0)


class ReceiverConfig(StrictModel):
    name: str = Field(min_length=1)
    # "all": every channel gets every message. "failover": only the first does; a message it
    # keeps failing (or refuses) goes to the next, in the order webhook, slack, pagerduty,
    # email, alimtalk, sms, kakaowork.
    delivery: Literal["all", "failover"] = "all"
    webhook: list[WebhookChannelConfig] = []
    slack: list[SlackChannelConfig] = []
    pagerduty: list[PagerDutyChannelConfig] = []
    email: list[EmailChannelConfig] = []
    alimtalk: list[AlimTalkChannelConfig] = []
    sms: list[SmsChannelConfig] = []
    kakaowork: list[KakaoWorkChannelConfig] = []


class EscalationLevelConfig(StrictModel):
    # Who is told at this level, then wait_s before the next level: receivers (channels) by
    # name, and/or targets: "receiver:<name>", "user:<id>" (a person, through their contact
    # methods) or "schedule:<id>" (whoever is on call in it when the level fires). People and
    # schedules live in PostgreSQL (/admin/oncall/...).
    receivers: list[str] = []
    targets: list[str] = []
    wait_s: float = Field(300.0, ge=0)

    @model_validator(mode="after")
    def _has_targets(self) -> EscalationLevelConfig:
        if not self.receivers and not self.targets:
            raise ValueError("a level needs receivers or targets")
        for target in self.targets:
            kind, sep, name = target.partition(":")
            if not sep or kind not in ("receiver", "user", "schedule") or not name:
                raise ValueError(
                    f"target {target!r}: use receiver:<name>, user:<id> or schedule:<id>"
                )
        return self

    def parsed_targets(self) -> list[tuple[str, str]]:
        """(kind, name) for every receiver and target, in order: kind is receiver, user or
        schedule."""
        out = [("receiver", r) for r in self.receivers]
        for target in self.targets:
            kind, _, name = target.partition(":")
            out.append((kind, name))
        return out

    @property
    def receiver_names(self) -> list[str]:
        return [name for kind, name in self.parsed_targets() if kind == "receiver"]


class PeopleChannelsConfig(StrictModel):
    """How people are reached (escalation targets user:<id> and schedule:<id>): the provider
    settings of each contact-method type; the address (Slack user id, phone, email address) is
    the person's. A type left unset cannot be used (the incident's timeline says so)."""

    class Slack(SlackChannelConfig):
        channel: str = ""  # the person's Slack user id (a DM)

    class Email(EmailChannelConfig):
        to: list[str] = []

    class Sms(SmsChannelConfig):
        to: str = ""

    class AlimTalk(AlimTalkChannelConfig):
        to: str = ""

    slack: Slack | None = None
    email: Email | None = None
    sms: Sms | None = None
    alimtalk: AlimTalk | None = None


class EscalationPolicyConfig(StrictModel):
    name: str = Field(min_length=1)
    levels: list[EscalationLevelConfig] = Field(min_length=1)
    # Run through the levels this many more times while nobody acknowledges.
    repeat: int = Field(0, ge=0)
    # An acknowledged incident not resolved within this long escalates again.
    ack_timeout_s: float | None = Field(None, gt=0)


class RouteConfig(StrictModel):
    receiver: str
    # Alerts of this route open an incident escalated with this policy.
    escalation_policy: str | None = None
    # Label matchers (``severity="critical"``); the first route whose matchers all match wins.
    matchers: list[str] = []
    group_by: list[str] = ["alertname"]
    group_wait_s: float = Field(30.0, ge=0)
    group_interval_s: float = Field(300.0, gt=0)
    repeat_interval_s: float = Field(4 * 3600.0, gt=0)


class InhibitRuleConfig(StrictModel):
    # While an alert matching source_matchers fires, alerts matching target_matchers with the
    # same values of the `equal` labels are not notified (Alertmanager's inhibit_rules).
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = []


class NotifyConfig(StrictModel):
    receivers: list[ReceiverConfig] = []
    inhibit_rules: list[InhibitRuleConfig] = []
    routes: list[RouteConfig] = []
    escalation_policies: list[EscalationPolicyConfig] = []
    # Provider settings for paging people (escalation targets user:<id>, schedule:<id>).
    people: PeopleChannelsConfig = PeopleChannelsConfig()
    # The dispatcher and the senders look for due work this often (and when woken).
    tick_s: float = Field(0.2, gt=0)
    senders: int = Field(4, ge=1, le=64)
    # Per destination: at most one message per this many seconds (Slack: 1 per second).
    min_send_interval_s: float = Field(0.0, ge=0)
    slack_min_send_interval_s: float = Field(1.0, ge=0)
    # 5xx and connection errors: jittered exponential backoff between these bounds.
    retry_base_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    # After this many failed attempts a message also goes to the receiver's next channel.
    fallback_after_attempts: int = Field(5, ge=1)
    # Sent or failed messages, notified alert transitions and resolved incidents older than
    # this are deleted (hourly).
    history_days: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _routes_name_receivers(self) -> NotifyConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("receiver names must be unique")
        if any(n.startswith("@") for n in names):
            raise ValueError("receiver names cannot start with '@' (reserved)")
        for route in self.routes:
            if route.receiver not in names:
                raise ValueError(f"route names an unknown receiver {route.receiver!r}")
        policies = {p.name for p in self.escalation_policies}
        if len(policies) != len(self.escalation_policies):
            raise ValueError("escalation policy names must be unique")
        for route in self.routes:
            if route.escalation_policy is not None and route.escalation_policy not in policies:
                raise ValueError(f"route names an unknown policy {route.escalation_policy!r}")
        for policy in self.escalation_policies:
            for level in policy.levels:
                for receiver in level.receiver_names:
                    if receiver not in names:
                        raise ValueError(
                            f"policy {policy.name!r} names an unknown receiver {receiver!r}"
                        )
        return self


class AlertingConfig(StrictModel):
    enabled: bool = True
    # Prometheus-style rule files, loaded at start and re-read when they change.
    rules_dir: Path | None = Path("rules")
    # The periodic pass (for, keep_firing_for, absent); ingest commits also trigger a pass,
    # at most one per min_eval_interval_s.
    eval_interval_s: float = Field(1.0, gt=0)
    min_eval_interval_s: float = Field(0.05, ge=0)
    rules_reload_s: float = Field(2.0, gt=0)
    # Agents are split into this many shards; each is evaluated by the one control plane
    # holding its advisory lock.
    shards: int = Field(1, ge=1, le=1024)
    # After a start the windows are still filling: alerts are not cleared and absent() rules not
    # evaluated for this long, so a restart neither resolves nor raises alerts falsely.
    warmup_s: float = Field(60.0, ge=0)
    lookback_s: float = Field(300.0, gt=0)
    # Unchanged alerts' values and last-seen times are written at most this often.
    persist_interval_s: float = Field(5.0, ge=0)
    notify: NotifyConfig = NotifyConfig()
    # Where people reach this control plane (for incident-page links in notifications);
    # default: http://{http.host}:{http.port}.
    external_url: str | None = None
    # Incident-page links are valid this long.
    link_ttl_s: float = Field(7 * 86400.0, gt=0)


class LoggingConfig(StrictModel):
    level: str = "INFO"
    json_format: bool = True


class CdnConfig(StrictModel):
    """The L3: which CDN ``POST /admin/cdn/purge`` (and invalidation with layer ``l3``) purges."""

    provider: Literal["none", "cloudflare", "nginx"] = "none"
    # Cloudflare: POST {base_url}/client/v4/zones/{zone_id}/purge_cache with a Bearer token.
    zone_id: str | None = None
    api_token: SecretStr | None = None
    base_url: str = "https://api.cloudflare.com"
    timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    # nginx: the edge's proxy_cache_path, its levels, and its proxy_cache_key as a format string.
    nginx_cache_dir: Path | None = None
    nginx_cache_levels: str = "1:2"
    nginx_cache_key: str = "{scheme}://{host}{uri}"

    @model_validator(mode="after")
    def _provider_settings(self) -> CdnConfig:
        if self.provider == "cloudflare" and not (self.zone_id and self.api_token):
            raise ValueError("provider cloudflare needs zone_id and api_token")
        if self.provider == "nginx" and self.nginx_cache_dir is None:
            raise ValueError("provider nginx needs nginx_cache_dir")
        return self


class ForwardConfig(StrictModel):
    """Remote write out (control_plane/forward/): every committed sample is forwarded to a
    Prometheus-compatible store (VictoriaMetrics, Mimir, Thanos receive) with remote write 1.0,
    through a durable outbox in PostgreSQL. Off while ``url`` is unset."""

    # e.g. http://victoria-metrics:8428/api/v1/write
    url: str | None = Field(None, pattern=r"^https?://")
    bearer_token: SecretStr | None = None
    basic_auth_username: str | None = None
    basic_auth_password: SecretStr | None = None
    # Added to every series that lacks them (Prometheus' external_labels), e.g. {cluster: prod}.
    external_labels: dict[str, str] = {}
    max_samples_per_request: int = Field(5_000, ge=1, le=1_000_000)
    max_in_flight: int = Field(4, ge=1, le=64)
    timeout_s: float = Field(30.0, gt=0)
    # 5xx, 429 and connection errors: jittered exponential backoff between these bounds.
    retry_base_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    # While the store is unreachable the outbox grows (~17 bytes a sample in PostgreSQL); past
    # this many samples the oldest are dropped (haetae_forward_samples_total{outcome="dropped"}).
    max_pending_samples: int = Field(50_000_000, ge=1)
    # How often the outbox is polled when no local commit woke the forwarder (other replicas'
    # commits, claims whose lease ran out), and the pending/lag gauges refreshed.
    poll_interval_s: float = Field(1.0, gt=0)
    # Series whose encoded labels each replica keeps (~250 bytes each); more live series than
    # this make the forwarder read labels from PostgreSQL again and again.
    series_cache: int = Field(1_000_000, ge=1_000)

    @model_validator(mode="after")
    def _one_auth(self) -> ForwardConfig:
        if self.bearer_token is not None and self.basic_auth_username is not None:
            raise ValueError("use either bearer_token or basic_auth_username, not both")
        if (self.basic_auth_password is not None) and self.basic_auth_username is None:
            raise ValueError("basic_auth_password needs basic_auth_username")
        if self.retry_base_s > self.retry_max_s:
            raise ValueError("retry_base_s must not exceed retry_max_s")
        return self


class PromApiConfig(StrictModel):
    """The Prometheus HTTP API (``/api/v1/*``, control_plane/promapi/): Grafana, KEDA, promtool."""

    # Instant selectors look this far back for a point (Prometheus' --query.lookback-delta).
    lookback_delta_s: float = Field(300.0, gt=0, le=86400)
    # A query's own ``timeout`` is capped by this (Prometheus' --query.timeout).
    timeout_s: float = Field(120.0, gt=0)
    # Bounds of one query: series per selector, and points loaded in all (422 past them).
    max_series: int = Field(10_000, ge=1)
    max_samples: int = Field(5_000_000, ge=1)
    # Ranges inside the ingest windows are read from memory instead of PostgreSQL.
    use_windows: bool = True
    # A Prometheus-compatible API (VictoriaMetrics, Mimir, Thanos) holding what was forwarded:
    # queries reaching further back than retention.retention_days are proxied there.
    remote_read_url: str | None = Field(None, pattern=r"^https?://")
    remote_timeout_s: float = Field(60.0, gt=0)
    remote_bearer_token: SecretStr | None = None


class ControlPlaneConfig(StrictModel):
    http: HttpConfig = HttpConfig()
    postgres: PostgresConfig = PostgresConfig()
    redis: RedisConfig = RedisConfig()
    auth: AuthConfig = AuthConfig()
    ingest: IngestConfig = IngestConfig()
    retention: RetentionConfig = RetentionConfig()
    health: HealthConfig = HealthConfig()
    agents: AgentsConfig = AgentsConfig()
    alerting: AlertingConfig = AlertingConfig()
    logging: LoggingConfig = LoggingConfig()
    cache: CacheConfig = CacheConfig()
    cdn: CdnConfig = CdnConfig()
    link_analyzer: LinkAnalyzerConfig = LinkAnalyzerConfig()
    forward: ForwardConfig = ForwardConfig()
    promapi: PromApiConfig = PromApiConfig()


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> ControlPlaneConfig:
    """Load the control-plane config from ``path`` (optional) and the environment."""
    if path is not None:
        path = Path(path)
    return load_file(
        ControlPlaneConfig, path, env=os.environ if env is None else env, env_prefix=ENV_PREFIX
    )
