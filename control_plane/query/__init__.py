"""Reading stored metrics back: query parameters, label matchers, SQL, agent states."""

from control_plane.query.agents import AgentsPage, AgentState, agent_state, list_agents
from control_plane.query.matchers import Matcher, MatchOp, matches_all, parse_matcher
from control_plane.query.metrics import MetricsPage, SeriesPoints, fetch_metrics
from control_plane.query.params import Agg, MetricsQuery, parse_metrics_query

__all__ = [
    "AgentState",
    "AgentsPage",
    "Agg",
    "MatchOp",
    "Matcher",
    "MetricsPage",
    "MetricsQuery",
    "SeriesPoints",
    "agent_state",
    "fetch_metrics",
    "list_agents",
    "matches_all",
    "parse_matcher",
    "parse_metrics_query",
]
