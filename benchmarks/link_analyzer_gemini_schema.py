"""Micro-benchmark: the google-genai SDK's per-call request conversion for each way of giving it
the response schema (the pydantic class, a prebuilt ``types.Schema``, a JSON-schema dict).

Times the SDK's own ``generate_content`` request building (``_GenerateContentParameters`` +
``_GenerateContentParameters_to_mldev``, private names of the installed SDK), no network.

    .venv/bin/python benchmarks/link_analyzer_gemini_schema.py      # --n 2000
"""

from __future__ import annotations

import argparse
import timeit

from google import genai
from google.genai import _transformers, models, types

from link_analyzer.gemini import ANALYSIS_JSON_SCHEMA, Analysis


def main(n: int) -> None:
    client = genai.Client(api_key="x", http_options=types.HttpOptions(api_version="v1beta"))
    api = client._api_client
    prebuilt = _transformers.t_schema(api, Analysis)
    mime = "application/json"
    configs = {
        "response_schema=Analysis (class; before)": types.GenerateContentConfig(
            response_mime_type=mime, response_schema=Analysis
        ),
        "response_schema=types.Schema (prebuilt)": types.GenerateContentConfig(
            response_mime_type=mime, response_schema=prebuilt
        ),
        "response_json_schema=dict (prebuilt; now)": types.GenerateContentConfig(
            response_mime_type=mime, response_json_schema=ANALYSIS_JSON_SCHEMA
        ),
    }
    contents = [types.Content(role="user", parts=[types.Part.from_text(text="hi")])]
    print(f"{'schema given as':45} us per call (n={n})")
    for name, config in configs.items():

        def build(config: types.GenerateContentConfig = config) -> None:
            params = types._GenerateContentParameters(
                model="gemini-2.5-flash", contents=contents, config=config
            )
            models._GenerateContentParameters_to_mldev(api, params)

        build()
        seconds = min(timeit.repeat(build, number=n, repeat=3))
        print(f"{name:45} {seconds / n * 1e6:8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    main(parser.parse_args().n)
