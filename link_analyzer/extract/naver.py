"""Naver blog posts, from the mobile page ``https://m.blog.naver.com/{blogId}/{logNo}``.

The desktop page (``blog.naver.com/{blogId}/{logNo}``) is a frameset: its post lives in an iframe
(``mainFrame`` -> ``PostView.naver``), so canonicalisation sends every Naver blog URL to the
mobile page, which carries the post inline. From it (SmartEditor ONE, and the older SE2/SE3
markup) come the title (``se-title-text``), the author's nick (``nick``, or the
``naverblog:nickname`` meta), the published date (``blog_date`` / ``se_publishDate``, "2024. 1.
15. 10:30", Korean time), the body text (``se-main-container`` / ``se_component_wrap`` /
``postViewArea``, paragraph by paragraph) and the images (``se-image`` / ``se_mediaImage``: the
``data-lazy-src`` original, not the blurred ``src`` placeholder); the og: fields fill the gaps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from link_analyzer.extract.metadata import MAX_MEDIA, Metadata, extract_metadata

NAVER_BLOG_HOSTS = frozenset({"blog.naver.com", "m.blog.naver.com"})
MAX_BODY_CHARS = 8000
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_SKIP = frozenset({"script", "style", "noscript", "template", "button", "svg"})
_BLOCK = frozenset({"p", "div", "li", "h1", "h2", "h3", "h4", "blockquote", "tr", "table"})
_CONTAINER_CLASSES = ("se-main-container", "se_component_wrap")
_TITLE_CLASSES = frozenset({"se-title-text", "se_title"})
_NICK_CLASSES = frozenset({"nick", "se_author", "blog_nickname"})
_DATE_CLASSES = frozenset({"blog_date", "se_publishdate", "se_date"})
_DATE = re.compile(
    r"(?P<y>\d{4})\s*\.\s*(?P<m>\d{1,2})\s*\.\s*(?P<d>\d{1,2})\.?"
    r"(?:\s*(?P<H>\d{1,2}):(?P<M>\d{2}))?"
)
_TITLE_SUFFIX = re.compile(r"\s*:\s*네이버\s*블로그\s*$")


def is_naver_blog(final_url: str, body: bytes) -> bool:
    """A Naver blog post page: by its host, or (a copy served elsewhere) by its editor markup."""
    host = (urlsplit(final_url).hostname or "").lower()
    return host in NAVER_BLOG_HOSTS or b"se-main-container" in body or b"naverblog:" in body


def mobile_post_url(blog_id: str, log_no: str) -> str:
    return f"https://m.blog.naver.com/{blog_id}/{log_no}"


@dataclass
class NaverPost:
    title: str = ""
    nick: str = ""
    date_text: str = ""
    paragraphs: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)[:MAX_BODY_CHARS]


_FLAGS = ("container", "title", "nick", "date", "skip", "sticker")


@dataclass
class _Open:
    tag: str
    container: bool = False
    title: bool = False
    nick: bool = False
    date: bool = False
    skip: bool = False
    sticker: bool = False


class _PostParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.post = NaverPost()
        self._stack: list[_Open] = []
        self._line: list[str] = []
        # The first title, nick and date element with text (comments carry nicks and dates too).
        self._fields: dict[str, list[str]] = {"title": [], "nick": [], "date": []}
        self._done: set[str] = set()
        self._chars = 0
        # How many open elements carry each flag (kept on push and pop: O(1) per text node).
        self._open = dict.fromkeys(_FLAGS, 0)

    def _flag(self, name: str) -> bool:
        return self._open[name] > 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        classes = a.get("class", "").lower()
        if tag == "img":
            self._image(a, classes)
            return
        if tag == "br":
            self._break()
            return
        if tag in _VOID:
            return
        node = _Open(tag)
        node.skip = tag in _SKIP
        if classes:
            names = set(classes.split())
            node.container = any(c in classes for c in _CONTAINER_CLASSES)
            node.title = not names.isdisjoint(_TITLE_CLASSES) and not self._flag("container")
            node.nick = not names.isdisjoint(_NICK_CLASSES)
            node.date = not names.isdisjoint(_DATE_CLASSES)
            node.sticker = "sticker" in classes
        if not node.container and a.get("id") == "postViewArea":
            node.container = True
        if tag in _BLOCK:
            self._break()
        self._stack.append(node)
        for name in _FLAGS:
            if getattr(node, name):
                self._open[name] += 1

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i].tag == tag:
                for node in self._stack[i:]:
                    for name in _FLAGS:
                        if getattr(node, name):
                            self._open[name] -= 1
                            if self._fields.get(name):
                                self._done.add(name)
                del self._stack[i:]
                break
        if tag in _BLOCK:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._flag("skip"):
            return
        data = data.replace("\u200b", " ")  # SE pads empty lines with zero-width spaces
        text = " ".join(data.split())
        if not text:
            if self._line:
                self._line.append(" ")  # whitespace between inline runs separates words
            return
        for name in ("title", "nick", "date"):
            if self._flag(name):
                if name not in self._done:
                    self._fields[name].append(text)
                return
        if self._flag("container") and self._chars < MAX_BODY_CHARS:
            # Raw: adjacent inline runs (<span>산책로</span><span>는</span>) join without a gap.
            self._line.append(data)
            self._chars += len(text) + 1

    @property
    def saturated(self) -> bool:
        return (
            self._chars >= MAX_BODY_CHARS
            and len(self.post.images) >= MAX_MEDIA
            and len(self._done) == len(self._fields)
        )

    def _image(self, a: dict[str, str], classes: str) -> None:
        if not self._flag("container") or self._flag("sticker") or "sticker" in classes:
            return
        src = a.get("data-lazy-src") or a.get("data-src") or a.get("src") or ""
        if src and not src.startswith("data:") and src not in self.post.images:
            self.post.images.append(src)

    def _break(self) -> None:
        line = " ".join("".join(self._line).split())
        if line:
            self.post.paragraphs.append(line)
        self._line = []

    def finish(self) -> NaverPost:
        self._break()
        p = self.post
        p.title = " ".join(self._fields["title"])
        p.nick = " ".join(self._fields["nick"])
        p.date_text = " ".join(self._fields["date"])
        return p


_CHUNK = 16 * 1024


def parse_post(html: str) -> NaverPost:
    parser = _PostParser()
    # In pieces, to stop once nothing more would be kept (a long post, its images, its header).
    for start in range(0, len(html), _CHUNK):
        parser.feed(html[start : start + _CHUNK])
        if parser.saturated:
            break
    parser.close()
    return parser.finish()


def parse_date(text: str) -> str | None:
    """``"2024. 1. 15. 10:30"`` (Korea time, no zone written) -> ISO 8601 with +09:00."""
    m = _DATE.search(text)
    if m is None:
        return None
    y, mo, d = int(m["y"]), int(m["m"]), int(m["d"])
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    if m["H"] is None:
        return f"{y:04d}-{mo:02d}-{d:02d}"
    return f"{y:04d}-{mo:02d}-{d:02d}T{int(m['H']):02d}:{m['M']}:00+09:00"


_META_TAG = re.compile(r"<meta\b[^>]*>", re.I)
_CONTENT = re.compile(r"""\bcontent\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)


def _meta_content(html: str, name: str) -> str | None:
    """A <meta> the generic scan does not surface (its head ends before the cut anyway)."""
    for tag in _META_TAG.findall(html[:65536]):
        if name in tag:
            m = _CONTENT.search(tag)
            value = unescape((m.group(1) or m.group(2) or "").strip()) if m else ""
            if value:
                return value
    return None


def extract_naver(html: str, base_url: str) -> Metadata:
    """The og:/JSON-LD metadata of the page, completed (and corrected) from the post itself."""
    # The head for the og:/JSON-LD fields, the body for the post: each parsed once (a whole
    # mobile page is a few hundred KiB; the stdlib parser is what costs).
    head_end = html.find("</head")
    if head_end < 0:
        head_end = html.find("</HEAD")
    post = parse_post(html[head_end:] if head_end > 0 else html)
    base = extract_metadata(html[:head_end] if head_end > 0 and post.text else html, base_url)
    head_nick = _meta_content(html, "naverblog:nickname")
    og_title = _TITLE_SUFFIX.sub("", base.title or "") or None
    images: dict[str, None] = {}
    for src in [*post.images, *base.images]:
        images[urljoin(base_url, src)] = None
    published = (parse_date(post.date_text) or post.date_text or None) if post.date_text else None
    return replace(
        base,
        title=post.title or og_title,
        author=post.nick or head_nick or base.author,
        published=published or base.published,
        site_name=base.site_name or "네이버 블로그",
        kind=base.kind or "article",
        images=tuple(images)[:MAX_MEDIA],
        body_text=post.text or base.body_text,
        sources=(*base.sources, "naver-blog"),
    )
