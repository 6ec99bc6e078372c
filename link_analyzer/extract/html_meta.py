"""A streaming scan of an HTML head: meta tags, title, links and JSON-LD blocks.

stdlib ``html.parser`` is tolerant of the broken markup real pages have and needs no wheel; we
only need the head, so the fetcher stops reading after ``</head>`` anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

MAX_JSONLD_BLOCKS = 16
MAX_TEXT_CHARS = 4000


@dataclass
class RawHead:
    title: str = ""
    # (key, content) in document order; keys are lower-cased ``property`` or ``name``.
    meta: list[tuple[str, str]] = field(default_factory=list)
    # (rel, type, href) of <link> elements.
    links: list[tuple[str, str, str]] = field(default_factory=list)
    jsonld: list[str] = field(default_factory=list)
    html_lang: str = ""
    # Visible body text seen before the cut (login forms, "sign in to continue", emptiness).
    body_text: str = ""
    password_inputs: int = 0

    def first(self, *keys: str) -> str | None:
        for wanted in keys:
            for key, content in self.meta:
                if key == wanted and content.strip():
                    return content.strip()
        return None

    def all(self, key: str) -> list[str]:
        return [c.strip() for k, c in self.meta if k == key and c.strip()]


class _HeadParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.head = RawHead()
        self._in_title = False
        self._in_jsonld = False
        self._skip_depth = 0
        self._jsonld_buf: list[str] = []
        self._text: list[str] = []
        self._text_len = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "html":
            self.head.html_lang = a.get("lang", "")
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            key = (a.get("property") or a.get("name") or a.get("itemprop") or "").lower()
            if key and "content" in a:
                self.head.meta.append((key, a["content"]))
        elif tag == "link":
            self.head.links.append(
                (a.get("rel", "").lower(), a.get("type", "").lower(), a.get("href", ""))
            )
        elif tag == "script":
            if a.get("type", "").lower() == "application/ld+json":
                self._in_jsonld = True
                self._jsonld_buf = []
            else:
                self._skip_depth += 1
        elif tag in ("style", "noscript", "template"):
            self._skip_depth += 1
        elif tag == "input" and a.get("type", "").lower() == "password":
            self.head.password_inputs += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "script":
            if self._in_jsonld:
                self._in_jsonld = False
                if len(self.head.jsonld) < MAX_JSONLD_BLOCKS:
                    self.head.jsonld.append("".join(self._jsonld_buf))
            elif self._skip_depth:
                self._skip_depth -= 1
        elif tag in ("style", "noscript", "template") and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_jsonld:
            self._jsonld_buf.append(data)
        elif self._in_title:
            self.head.title += data
        elif not self._skip_depth and self._text_len < MAX_TEXT_CHARS:
            text = data.strip()
            if text:
                self._text.append(text)
                self._text_len += len(text) + 1

    def finish(self) -> RawHead:
        self.head.title = " ".join(self.head.title.split())
        self.head.body_text = " ".join(self._text)[:MAX_TEXT_CHARS]
        return self.head


def scan(html: str) -> RawHead:
    parser = _HeadParser()
    parser.feed(html)
    parser.close()
    return parser.finish()
