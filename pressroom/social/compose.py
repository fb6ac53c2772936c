"""Release -> one :class:`Post` per network, written to that network's rules.

Each network counts differently (:class:`Limits`): Mastodon counts grapheme clusters and
every URL as 23; Bluesky counts grapheme clusters *and* UTF-8 bytes; LinkedIn counts
characters (UTF-16 code units here, the stricter reading). The text comes from
``templates/social/<network>.txt.j2``; when it is too long the release text is shortened at
a word boundary with an ellipsis, never inside a URL, a hashtag or a grapheme cluster. A long
per-network override text (``social: {mastodon: {text: ...}}`` in front matter) becomes a
thread of replies where the network has threads.

Facets (Bluesky's links and tags) are found in the final text, so their UTF-8 byte
offsets always match the bytes that are sent.

Co-issuers (``issuers:``) are named in each network's own form (:func:`mentions_for`): Mastodon
``@user@instance`` (counted as ``@user``, as Mastodon counts it), a Bluesky ``@handle`` with a
mention facet (its DID is looked up when posting), a LinkedIn organisation mention (the name,
sent as ``@[Name](urn:li:organization:…)``). A mention is never cut: hashtags go first, then the
text is shortened, and only a post with no room left at all loses mentions, last first.

A release with an EU-funded co-issuer says so (``funding``: the statement in the post's language, as
the grant agreement asks of every communication), counted like the rest: it goes only when not even an
ellipsis of the text fits beside it, before the mentions do, and the post's ``notes`` say so.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from gettext import NullTranslations
from pathlib import Path
from typing import Literal
from collections.abc import Callable

import grapheme
import jinja2

from pressroom import i18n, templating
from pressroom.errors import TemplateError
from pressroom.releases.blocks import eu_acknowledgement
from pressroom.releases.model import Release
from pressroom.settings import Settings
from pressroom.tokens import link_count_url

__all__ = [
    "BLUESKY",
    "Card",
    "Facet",
    "LINKEDIN",
    "Limits",
    "MASTODON",
    "Mention",
    "NETWORK_LIMITS",
    "Part",
    "Post",
    "compose_post",
    "find_facets",
    "hashtags_for",
    "mentions_for",
    "shorten",
]

ELLIPSIS = "…"
# A URL ends at whitespace; punctuation that closes a sentence is not part of it.
_URL_RE = re.compile(r"https?://[^\s<>\"]+")
_URL_TRAILING = ".,;:!?'\")]}»”’…"
_SENTENCE_END = (".", "!", "?", "。", "！", "？", "؟", "…")
# A Mastodon mention of another instance counts as its local part: "@user@example.social" as "@user".
_REMOTE_MENTION = re.compile(r"(?<![\w@])(@\w[\w.-]*)@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class Limits:
    """How one network measures a post, and how long a thread may grow."""

    chars: int
    bytes: int | None = None
    url_chars: int | None = None
    unit: Literal["graphemes", "utf16"] = "graphemes"
    max_parts: int = 1
    mention_domains: bool = True  # False: "@user@instance" counts as "@user" (Mastodon)

    def count(self, text: str) -> int:
        """The length of ``text`` counted the network's way."""
        if not self.mention_domains:
            text = _REMOTE_MENTION.sub(r"\1", text)
        if self.url_chars is not None:
            weight = self.url_chars
            text = _URL_RE.sub(lambda m: "x" * weight + m.group(0)[len(_url_at(m)) :], text)
        if self.unit == "utf16":
            return len(text.encode("utf-16-le")) // 2
        return grapheme.length(text)

    def fits(self, text: str) -> bool:
        """True when ``text`` is within every limit of the network."""
        if self.bytes is not None and len(text.encode("utf-8")) > self.bytes:
            return False
        return self.count(text) <= self.chars


# Defaults from each network's documentation; Mastodon's are replaced by the instance's own.
MASTODON = Limits(chars=500, url_chars=23, max_parts=10, mention_domains=False)
BLUESKY = Limits(chars=300, bytes=3000, max_parts=10)
LINKEDIN = Limits(chars=3000, unit="utf16", max_parts=1)
NETWORK_LIMITS: dict[str, Limits] = {"mastodon": MASTODON, "bluesky": BLUESKY, "linkedin": LINKEDIN}


@dataclass(frozen=True)
class Facet:
    """A link, a tag or a mention in a post, at UTF-8 byte offsets ``[start, end)`` of the text."""

    kind: Literal["link", "tag", "mention"]
    start: int
    end: int
    value: str  # the URL, the tag without its '#', or whom a mention names (Bluesky handle, LinkedIn URN)


@dataclass(frozen=True)
class Mention:
    """A co-issuer as a post names it: ``text`` as it reads, ``value`` whom it points at (None: plain text)."""

    text: str
    value: str | None = None


@dataclass(frozen=True)
class Part:
    """One post of a thread (the first is the root); ``count`` is the network's own count."""

    text: str
    count: int
    bytes: int
    facets: tuple[Facet, ...] = ()


@dataclass(frozen=True)
class Card:
    """The release link as a preview card, with the hero image and its alt text."""

    url: str
    title: str
    description: str
    image_url: str | None = None
    image_file: Path | None = None
    image_alt: str = ""


@dataclass(frozen=True)
class Post:
    """What goes out on one network for one release: a root post, maybe replies, and a card."""

    network: str
    slug: str
    published: datetime
    parts: tuple[Part, ...]
    card: Card
    language: str
    limits: Limits
    hashtags: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # what the network's length left out that the release asks for

    @property
    def text(self) -> str:
        return self.parts[0].text


# --------------------------------------------------------------------------- counting helpers


def _url_at(match: re.Match[str]) -> str:
    return match.group(0).rstrip(_URL_TRAILING)


def _is_tag_char(char: str) -> bool:
    return char == "_" or unicodedata.category(char)[0] in "LMN"


def _tag_body(candidate: str) -> str:
    """The tag in the text after a '#': tag characters, starting with a letter or digit, with a letter."""
    end = 0
    while end < len(candidate) and _is_tag_char(candidate[end]):
        end += 1
    body = candidate[:end]
    if not body or unicodedata.category(body[0])[0] not in "LN":
        return ""
    if not any(unicodedata.category(char)[0] == "L" for char in body):
        return ""
    return body if grapheme.length(body) <= 64 else ""


def find_facets(text: str, *, mentions: tuple[Mention, ...] = ()) -> tuple[Facet, ...]:
    """Every URL and ``#tag`` in ``text`` with its UTF-8 byte offsets, in text order; and each of
    ``mentions`` where the post names it (its last occurrence: the line the template gave mentions)."""
    spans: list[_Span] = []
    for match in _URL_RE.finditer(text):
        url = _url_at(match)
        spans.append((match.start(), match.start() + len(url), "link", url))
    spans += _tag_spans(text, spans)
    for mention in mentions:
        start = text.rfind(mention.text)
        if mention.value is not None and start != -1 and not any(a < start + len(mention.text) and start < b for a, b, _, _ in spans):
            spans.append((start, start + len(mention.text), "mention", mention.value))
    spans.sort()
    facets = []
    for start, end, kind, value in spans:
        byte_start = len(text[:start].encode("utf-8"))
        facets.append(Facet(kind, byte_start, byte_start + len(text[start:end].encode("utf-8")), value))
    return tuple(facets)


_Span = tuple[int, int, Literal["link", "tag", "mention"], str]  # (start, end) in characters, kind, value


def _tag_spans(text: str, links: list[_Span]) -> list[_Span]:
    """Each ``#tag`` of ``text`` that starts a word and is not inside one of ``links``."""
    spans: list[_Span] = []
    for index, char in enumerate(text):
        if char != "#" or (index and not text[index - 1].isspace()):
            continue
        if any(start <= index < end for start, end, _, _ in links):
            continue
        body = _tag_body(text[index + 1 :])
        if body:
            spans.append((index, index + 1 + len(body), "tag", body))
    return spans


def hashtags_for(tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``["Cluster HUB", "circular economy"]`` -> ``("#ClusterHUB", "#CircularEconomy")``.

    Words are joined in CamelCase (readable by screen readers); characters that cannot be in
    a hashtag are dropped; a tag without a letter, or longer than Bluesky's 64 graphemes, is left out.
    """
    result: dict[str, str] = {}
    for tag in tags:
        words = re.split(r"[^\w\u0300-\u036f]+|_", unicodedata.normalize("NFC", tag))
        pieces = []
        for word in words:
            word = "".join(char for char in word if _is_tag_char(char) and char != "_")
            word = word.lstrip("".join(c for c in word if unicodedata.category(c)[0] == "M"))
            if not word:
                continue
            first = word[0].upper()
            pieces.append((first if len(first) == 1 else word[0]) + word[1:])
        body = "".join(pieces)
        if body and _tag_body(body) == body:
            result.setdefault(body.casefold(), f"#{body}")
    return tuple(result.values())


# --------------------------------------------------------------------------- shortening


def _words(text: str) -> list[str]:
    """``text`` as alternating runs of whitespace and non-whitespace grapheme clusters."""
    runs: list[str] = []
    for cluster in grapheme.graphemes(text):
        space = cluster.isspace()
        if runs and runs[-1].isspace() == space:
            runs[-1] += cluster
        else:
            runs.append(cluster)
    return runs


def _protected(word: str) -> bool:
    """A URL, a hashtag or a mention (an @handle) is kept whole or dropped whole."""
    return "://" in word or "#" in word or "@" in word


def _largest(count: int, ok: Callable[[int], bool]) -> int:
    """The largest ``n`` in ``0..count`` with ``ok(n)``, assuming ``ok`` is monotone (0 is assumed ok)."""
    low, high = 0, count
    while low < high:
        middle = (low + high + 1) // 2
        if ok(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _trim_end(text: str) -> str:
    return text.rstrip().rstrip(",;:-–—(").rstrip()


def shorten(text: str, *, fits: Callable[[str], bool], ellipsis: str = ELLIPSIS) -> str:
    """The longest start of ``text`` that ``fits``, cut at a word boundary and ending in ``ellipsis``.

    A word without spaces (CJK text, a long compound) is cut between grapheme clusters when
    cutting at a word boundary would keep less than half of what fits; URLs and hashtags are
    never cut. Returns ``""`` when not even the ellipsis fits.
    """
    if fits(text):
        return text
    if not fits(ellipsis):
        return ""
    words = _words(text)
    kept = _largest(len(words), lambda n: fits(_trim_end("".join(words[:n])) + ellipsis))
    head = _trim_end("".join(words[:kept]))
    if kept < len(words) and not words[kept].isspace() and not _protected(words[kept]):
        # Try cutting inside the next word, between grapheme clusters.
        prefix = "".join(words[:kept])
        clusters = list(grapheme.graphemes(words[kept]))
        inside = _largest(len(clusters) - 1, lambda n: fits(_trim_end(prefix + "".join(clusters[:n])) + ellipsis))
        longer = _trim_end(prefix + "".join(clusters[:inside]))
        if inside and grapheme.length(head) * 2 < grapheme.length(longer):
            head = longer
    return head + ellipsis if head else ellipsis


def _split_thread(
    text: str, *, fits_first: Callable[[str], bool], fits_reply: Callable[[str], bool], max_parts: int
) -> list[str]:
    """Cut ``text`` into thread parts at sentence (else word) boundaries, without ellipses."""
    parts: list[str] = []
    rest = text.strip()
    while rest:
        fits = fits_first if not parts else fits_reply
        if len(parts) == max_parts - 1 or fits(rest):
            parts.append(rest if fits(rest) else shorten(rest, fits=fits))
            break
        words = _words(rest)
        kept = _largest(len(words), lambda n, words=words, fits=fits: fits(_trim_end("".join(words[:n]))))
        sentence = max(
            (n for n in range(1, kept + 1) if "".join(words[:n]).rstrip().endswith(_SENTENCE_END)),
            default=0,
        )
        if sentence * 2 >= kept:
            kept = sentence
        if kept == 0:  # one word longer than a whole post: shorten it rather than loop
            parts.append(shorten(rest, fits=fits))
            break
        parts.append(_trim_end("".join(words[:kept])))
        rest = "".join(words[kept:]).strip()
    return parts


# --------------------------------------------------------------------------- templates and compose


def _template(templates: Path, network: str, catalogue: NullTranslations) -> jinja2.Template:
    try:
        environment = templating.environment((templates / "social",), translations=catalogue, autoescape=False,
                                             trailing_newline=False)
        return environment.get_template(f"{network}.txt.j2")
    except jinja2.TemplateNotFound:
        raise TemplateError(
            f"templates/social/{network}.txt.j2 is missing",
            hint=f"add templates/social/{network}.txt.j2 (copy one of the other networks' templates)",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"templates/social/{network}.txt.j2:{exc.lineno}: {exc.message}") from None


def _render(template: jinja2.Template, **values: object) -> str:
    try:
        text = template.render(**values)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"templates/social/{template.name}: {exc}") from None
    # Blank lines collapse to one; the template decides where text, link and tags go.
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _part(text: str, limits: Limits, mentions: tuple[Mention, ...] = ()) -> Part:
    return Part(text=text, count=limits.count(text), bytes=len(text.encode("utf-8")), facets=find_facets(text, mentions=mentions))


def mentions_for(*, release: Release, network: str, own: str | None = None) -> tuple[Mention, ...]:
    """How a post on ``network`` names each co-issuer: its handle there (a LinkedIn page by its
    name), or its name as plain text when it has no account there. ``own`` (the posting account's
    handle or URN) is left out: an account does not mention itself."""
    mentions = []
    for issuer in release.issuers:
        handle = getattr(issuer.social, network, None)
        if handle is not None and own is not None and handle.removeprefix("@").casefold() == own.removeprefix("@").casefold():
            continue
        if handle is None:
            mentions.append(Mention(issuer.label))
        elif network == "linkedin":
            mentions.append(Mention(issuer.name, handle))
        elif network == "bluesky":
            mentions.append(Mention(f"@{handle}", handle))
        else:  # Mastodon finds mentions in the text itself; the facet only shows them in the outbox
            mentions.append(Mention(handle, handle.removeprefix("@")))
    return tuple(mentions)


@dataclass
class _Draft:
    """A post being fitted to a network: the hashtags and mentions it still has room for."""

    template: jinja2.Template
    release: Release
    url: str
    limits: Limits
    hashtags: list[str]
    mentions: list[Mention]
    funding: str = ""
    notes: list[str] = field(default_factory=list)

    def render(self, text: str, summary: str = "") -> str:
        return _render(
            self.template, text=text, summary=summary, url=self.url, hashtags=self.hashtags, release=self.release,
            mentions=[mention.text for mention in self.mentions], funding=self.funding,
        )

    def fits(self, text: str, summary: str = "") -> bool:
        return self.limits.fits(self.render(text, summary))

    def make_room(self, minimal: str) -> None:
        """Hashtags are the first thing to go (last first): the URL and a whole title matter more.
        Mentions go only when not even an ellipsis of the text would fit beside them."""
        while self.hashtags and not self.fits(minimal):
            self.hashtags.pop()
        if self.funding and not self.fits(ELLIPSIS):
            self.notes.append(f"the EU funding statement ({self.funding!r}) did not fit in {self.limits.chars} characters")
            self.funding = ""
        while self.mentions and not self.fits(ELLIPSIS):
            self.mentions.pop()

    def parts(self, body: str, summary: str, *, thread: bool) -> list[str]:
        """The root post (and, for an override text on a network with threads, its replies)."""
        if self.fits(body, summary):
            return [self.render(body, summary)]
        if summary and self.fits(body, ELLIPSIS):
            return [self.render(body, shorten(summary, fits=lambda s: self.fits(body, s)))]
        if thread:
            chunks = _split_thread(
                body, fits_first=self.fits, fits_reply=self.limits.fits, max_parts=self.limits.max_parts,
            )
            return [self.render(chunks[0]), *chunks[1:]]
        return [self.render(shorten(body, fits=self.fits))]


def _counted_url(release: Release, network: str, settings: Settings | None) -> str:
    """The release's URL through the aggregate link count when ``[analytics] links`` is on, else as it is."""
    if settings is None or not settings.analytics.links:
        return release.url
    return link_count_url(settings=settings, release=release.slug, link=release.url, channel=network, language=release.language)


def compose_post(
    *, release: Release, network: str, limits: Limits, templates: Path, own: str | None = None,
    settings: Settings | None = None,
) -> Post:
    """Write ``release`` for ``network`` within ``limits`` using ``templates/social/<network>.txt.j2``.

    The release URL is always in the root post, whole; hashtags that do not fit are left out,
    last first; the text is shortened, or, for an override text on a network with threads,
    continued in replies. Co-issuers are mentioned in the root post (:func:`mentions_for`; ``own``
    is the posting account, never mentioned). Fixed words come from the catalogue of the release's
    language (with ``settings``: the project's catalogues too).
    """
    template = _template(templates, network, i18n.translations(language=release.language, settings=settings))
    override = release.channel(network).text
    body = override.strip() if override else release.title
    summary = "" if override or release.summary.strip() == release.title.strip() else release.summary.strip()
    present = {facet.value.casefold() for facet in find_facets(f"{body} {summary}") if facet.kind == "tag"}
    counted = _counted_url(release, network, settings)
    draft = _Draft(
        # The text carries the counted link only where a link counts as a fixed length (Mastodon):
        # elsewhere its length would cost the post its words. The card's link is counted everywhere.
        template=template, release=release, url=counted if limits.url_chars is not None else release.url, limits=limits,
        hashtags=[tag for tag in hashtags_for(release.tags) if tag[1:].casefold() not in present],
        mentions=list(mentions_for(release=release, network=network, own=own)),
        funding="; ".join(statement for statement, _ in eu_acknowledgement(release=release, settings=settings)),
    )
    draft.make_room(ELLIPSIS if override else body)
    parts = draft.parts(body, summary, thread=bool(override) and limits.max_parts > 1)
    return Post(
        network=network,
        slug=release.slug,
        published=release.date,
        parts=tuple(_part(text, limits, tuple(draft.mentions) if index == 0 else ()) for index, text in enumerate(parts)),
        card=_card(release, counted),
        language=release.language,
        limits=limits,
        hashtags=tuple(draft.hashtags),
        notes=tuple(draft.notes),
    )


def _card(release: Release, url: str) -> Card:
    hero = release.hero
    return Card(
        url=url,
        title=release.title,
        description=release.summary,
        image_url=hero.src if hero else None,
        image_file=hero.file if hero else None,
        image_alt=hero.alt if hero else "",
    )
