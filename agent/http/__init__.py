"""The agent's HTTP plumbing: a small keep-alive client and server over asyncio streams, with the
HTTP/1.1 protocol itself handled by h11 (aiohttp alone cost the agent ~12 MiB of RSS)."""

from agent.http.client import HttpClient, HttpError, Response
from agent.http.server import HttpServer

__all__ = ["HttpClient", "HttpError", "HttpServer", "Response"]
