"""aiohttp helpers shared by every Haetae HTTP service: problem+json errors, JSON bodies."""

from haetae.web.problem import (
    PROBLEM_CONTENT_TYPE,
    ProblemError,
    problem_middleware,
    problem_response,
)

__all__ = ["PROBLEM_CONTENT_TYPE", "ProblemError", "problem_middleware", "problem_response"]
