"""A student's Markdown as HTML that is safe to open: markdown-it-py renders it, nh3 sanitises the result.

Student text is untrusted. What survives:

* the tags Markdown produces, and a few harmless inline ones (``sub``, ``sup``, ``kbd``, ...); no script,
  style, iframe, object, form, meta, link, base or SVG; no event handler or ``style`` attribute (only
  ``text-align`` in table cells, which Markdown writes itself);
* links to http, https and mailto addresses (with ``rel="noopener noreferrer nofollow"``); a link is not
  loaded until the teacher clicks it;
* images only from the submission's own files, which the site copies next to the page: any other ``src``
  (remote, ``data:``, a path outside the submission) is dropped, and a Markdown image that points elsewhere
  is shown as a visible note instead, so the teacher sees what was attempted.

The page that holds the result also carries a Content-Security-Policy (:mod:`.site`), a second line of
defence should anything slip through.
"""
from __future__ import annotations

import html
import posixpath
from urllib.parse import unquote

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small",
    "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    "var",
}
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "td": {"colspan", "rowspan", "style"},
    "th": {"colspan", "rowspan", "style"},
    "abbr": {"title"},
}
LINK_SCHEMES = {"http", "https", "mailto"}


def local_name(src: str, allowed: set[str]) -> str | None:
    """The submission's file that ``src`` names (``plot_lr.png``, ``./plot_lr.png``), or None."""
    src = unquote(src.strip())
    if not src or ":" in src or src.startswith(("/", "\\")) or "?" in src or "#" in src:
        return None
    name = posixpath.normpath(src)
    return name if name in allowed else None


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"])


def _rewrite_images(tokens: list[Token], images: dict[str, str]) -> None:
    """Point Markdown images at the copied files; turn any other image into a visible note."""
    for token in tokens:
        if token.children:
            _rewrite_images(token.children, images)
        if token.type != "image":
            continue
        src = str(token.attrs.get("src", ""))
        name = local_name(src, set(images))
        if name is not None:
            token.attrs["src"] = images[name]
            continue
        alt = "".join(child.content for child in token.children or [])
        token.type, token.tag, token.nesting, token.children, token.attrs = "text", "", 0, None, {}
        token.content = f"[image not shown: {src!r} is not a file of this submission{f' ({alt})' if alt else ''}]"


def render_markdown(text: str, *, images: dict[str, str] | None = None) -> str:
    """``text`` (Markdown, untrusted) as sanitised HTML.

    ``images`` maps the submission's image files (as the report names them, ``plot_lr.png``) to the URL of
    their copy beside the page (``files/plot_lr.png``); every other image source is dropped.
    """
    images = dict(images or {})
    md = _markdown()
    env: dict = {}
    tokens = md.parse(text, env)
    _rewrite_images(tokens, images)
    return sanitise(md.renderer.render(tokens, md.options, env), images=images)


def sanitise(fragment: str, *, images: dict[str, str] | None = None) -> str:
    """nh3 with the allowlist above; ``img src`` survives only as one of ``images``' URLs (or names)."""
    images = dict(images or {})
    urls = set(images.values())

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            if value in urls:
                return value
            name = local_name(value, set(images))
            return images[name] if name is not None else None
        if attribute == "style":  # only the alignment markdown-it writes into table cells
            return value if value.replace(" ", "") in {"text-align:left", "text-align:right",
                                                        "text-align:center"} else None
        return value

    return nh3.clean(fragment, tags=TAGS, clean_content_tags={"script", "style", "textarea", "title", "noscript"},
                     attributes=ATTRIBUTES, attribute_filter=keep, url_schemes=LINK_SCHEMES,
                     link_rel="noopener noreferrer nofollow", strip_comments=True)


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)
