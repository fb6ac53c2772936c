"""Compose: each network's length rules, facets at byte offsets, shortening that never breaks a URL, tag or grapheme."""

from __future__ import annotations

from pathlib import Path

import grapheme
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pressroom.errors import TemplateError
from pressroom.releases import ChannelOptions, load_releases
from pressroom.settings import load_settings
from pressroom.social.compose import (
    BLUESKY,
    ELLIPSIS,
    LINKEDIN,
    MASTODON,
    NETWORK_LIMITS,
    Limits,
    compose_post,
    find_facets,
    hashtags_for,
    shorten,
)
from tests.golden import assert_golden
from tests.social_helpers import REPO, TEMPLATES, make_release

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "social-sample"

# Text from many scripts, with the clusters that break naive code: ZWJ families, flags,
# combining marks (also at the start of a word), RTL, CJK without spaces, Devanagari.
FRAGMENTS = [
    "👨‍👩‍👧‍👦", "🇧🇪", "🏳️‍🌈", "e\u0301", "\u0301", "电池回收试点工厂开业", "リチウム", "배터리",
    "مواد خام للبطاريات", "חומרי גלם", "नमस्ते दुनिया", "Ünïcödé", "naïve", "#tag", "C#", "100%",
    "(see https://example.org/a_(b)?q=1).", "a—b", "x" * 40, "\u200d", "ﷺ", "𝔘𝔫𝔦",
]
words = st.one_of(st.sampled_from(FRAGMENTS), st.text(min_size=1, max_size=12))
prose = st.lists(words, max_size=80).map(" ".join)
tags = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=8)


def _check_post(post, release) -> None:
    limits = post.limits
    for part in post.parts:
        assert limits.fits(part.text), (part.count, part.bytes)
        data = part.text.encode("utf-8")
        for facet in part.facets:
            covered = data[facet.start : facet.end].decode("utf-8")
            if facet.kind == "mention":  # a Bluesky @handle, or a LinkedIn page's name
                assert covered in (f"@{facet.value}", *(i.name for i in release.issuers if i.social.linkedin == facet.value))
                continue
            assert covered == (facet.value if facet.kind == "link" else "#" + facet.value)
    root = post.parts[0]
    # The release URL is whole, and it is a link facet.
    assert release.url in root.text
    assert any(f.kind == "link" and f.value == release.url for f in root.facets)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=prose.filter(lambda t: t.split()), summary=prose, tag_list=tags, network=st.sampled_from(sorted(NETWORK_LIMITS)))
def test_any_text_in_any_script_fits_with_the_url_intact_and_exact_facets(title, summary, tag_list, network):
    release = make_release(title=title[:300], summary=summary[:2000], tags=tuple(tag_list))
    post = compose_post(release=release, network=network, limits=NETWORK_LIMITS[network], templates=TEMPLATES)
    _check_post(post, release)
    assert len(post.parts) == 1  # generated text is shortened, never threaded


@settings(max_examples=100, deadline=None)
@given(text=prose, budget=st.integers(min_value=1, max_value=400))
def test_shorten_cuts_between_words_or_clusters_never_inside_a_url_or_tag(text, budget):
    text = text.strip()
    result = shorten(text, fits=lambda t: grapheme.length(t) <= budget)
    assert grapheme.length(result) <= budget
    if result == text:
        return
    if not result:
        return
    assert result.endswith(ELLIPSIS)
    head = result[: -len(ELLIPSIS)]
    assert text.startswith(head)
    # A cut between grapheme clusters: the head's clusters are the text's first clusters.
    clusters = list(grapheme.graphemes(text))
    assert list(grapheme.graphemes(head)) == clusters[: grapheme.length(head)]
    # A URL or a hashtag is kept whole or left out whole.
    for word in text.split():
        if "://" in word or "#" in word:
            start = text.find(word)
            while start != -1:
                end = start + len(word)
                assert not (start < len(head) < end), (word, head)
                start = text.find(word, start + 1)


def test_long_title_is_cut_at_a_word_boundary_with_an_ellipsis():
    title = "The Cluster HUB celebrates " + "partnership between research and industry " * 12
    release = make_release(title=title, summary="", tags=())
    post = compose_post(release=release, network="bluesky", limits=BLUESKY, templates=TEMPLATES)
    first_line = post.text.split("\n")[0]
    assert first_line.endswith(ELLIPSIS)
    assert title.startswith(first_line[:-1])
    assert first_line[:-1].split()[-1] in title.split()  # the last kept word is a whole word
    assert post.parts[0].count <= 300


def test_cjk_title_without_spaces_is_cut_between_characters_not_emptied():
    release = make_release(title="电池原材料" * 80, summary="", tags=())
    post = compose_post(release=release, network="bluesky", limits=BLUESKY, templates=TEMPLATES)
    first_line = post.text.split("\n")[0]
    assert first_line.endswith(ELLIPSIS) and len(first_line) > 100
    assert post.parts[0].count == 300 or post.parts[0].count <= 300


def test_mastodon_counts_every_url_as_23_characters():
    long_url = "https://press.example.org/releases/" + "x" * 300 + "/"
    assert MASTODON.count(f"read {long_url} now") == len("read ") + 23 + len(" now")
    assert MASTODON.fits("y" * 476 + " " + long_url)  # 476 + 1 + 23 = 500
    assert not MASTODON.fits("y" * 477 + " " + long_url)


def test_bluesky_counts_graphemes_and_bytes():
    family = "👨‍👩‍👧‍👦"  # one grapheme, 25 bytes
    assert BLUESKY.count(family * 120) == 120
    assert not BLUESKY.fits(family * 121)  # 120 graphemes but 3,025 bytes
    assert BLUESKY.fits("e\u0301" * 300) and not BLUESKY.fits("e\u0301" * 301)


def test_linkedin_counts_utf16_units():
    assert LINKEDIN.count("𝔘") == 2
    assert LINKEDIN.fits("a" * 3000) and not LINKEDIN.fits("a" * 3001)


def test_facets_sit_at_utf8_byte_offsets_after_multibyte_text():
    text = "Électricité 电池 👨‍👩‍👧‍👦 https://press.example.org/r/ #Batterie, #電池 (C#, #123)"
    facets = find_facets(text)
    data = text.encode()
    assert [(f.kind, f.value) for f in facets] == [
        ("link", "https://press.example.org/r/"),
        ("tag", "Batterie"),
        ("tag", "電池"),
    ]
    for facet in facets:
        assert data[facet.start : facet.end].decode() in (facet.value, "#" + facet.value)


def test_hashtags_from_tags_in_camel_case_deduplicated():
    assert hashtags_for(["Cluster HUB", "battery raw materials", "circular-economy", "cluster hub", "2024", "电池 回收", "café"]) == (
        "#ClusterHUB",
        "#BatteryRawMaterials",
        "#CircularEconomy",
        "#电池回收",
        "#Café",
    )


def test_hashtags_are_dropped_last_first_before_the_title_is_cut():
    release = make_release(
        title="A" * 200, summary="", tags=("first tag", "second tag", "third tag", "fourth tag", "fifth tag", "sixth tag")
    )
    post = compose_post(release=release, network="bluesky", limits=BLUESKY, templates=TEMPLATES)
    assert post.text.startswith("A" * 200 + "\n")
    assert post.hashtags and post.hashtags[0] == "#FirstTag"
    assert "#SixthTag" not in post.text


def test_hashtag_already_in_the_override_text_is_not_repeated():
    release = make_release(tags=("Cluster HUB",), social={"mastodon": ChannelOptions(text="News from the #ClusterHUB today")})
    post = compose_post(release=release, network="mastodon", limits=MASTODON, templates=TEMPLATES)
    assert post.text.count("#ClusterHUB") == 1


def test_long_override_becomes_a_thread_of_replies_each_within_the_limit():
    sentences = " ".join(f"Sentence number {n} tells part of the story of the pilot plant." for n in range(1, 25))
    release = make_release(social={"bluesky": ChannelOptions(text=sentences)})
    post = compose_post(release=release, network="bluesky", limits=BLUESKY, templates=TEMPLATES)
    assert len(post.parts) > 3
    _check_post(post, release)
    # Nothing is lost: every sentence appears once across the thread, in order.
    joined = " ".join(part.text for part in post.parts)
    positions = [joined.find(f"Sentence number {n} ") for n in range(1, 25)]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    # Replies end at sentence ends where possible.
    assert all(part.text.endswith(".") for part in post.parts[1:])


def test_override_on_linkedin_is_shortened_not_threaded():
    release = make_release(social={"linkedin": ChannelOptions(text="word " * 1000)})
    post = compose_post(release=release, network="linkedin", limits=LINKEDIN, templates=TEMPLATES)
    assert len(post.parts) == 1 and post.parts[0].count <= 3000 and ELLIPSIS in post.text


def test_instance_limits_replace_the_default():
    release = make_release(summary="word " * 200)
    small = compose_post(release=release, network="mastodon", limits=Limits(chars=200, url_chars=23), templates=TEMPLATES)
    large = compose_post(release=release, network="mastodon", limits=Limits(chars=5000, url_chars=23), templates=TEMPLATES)
    assert small.parts[0].count <= 200 and ELLIPSIS in small.text
    assert ELLIPSIS not in large.text


def test_missing_template_is_a_clear_error(tmp_path):
    (tmp_path / "social").mkdir()
    with pytest.raises(TemplateError, match="templates/social/mastodon.txt.j2 is missing"):
        compose_post(release=make_release(), network="mastodon", limits=MASTODON, templates=tmp_path)


@pytest.mark.parametrize("network", sorted(NETWORK_LIMITS))
def test_sample_release_matches_the_golden_post(network):
    settings = load_settings(REPO / "pressroom.toml", environ={})
    release = load_releases(settings).releases[0]
    post = compose_post(release=release, network=network, limits=NETWORK_LIMITS[network], templates=TEMPLATES)
    text = "\n\n--- reply ---\n\n".join(part.text for part in post.parts) + "\n"
    assert_golden(GOLDEN, {f"{network}.txt": text})
    _check_post(post, release)


@pytest.mark.parametrize("network", sorted(NETWORK_LIMITS))
def test_the_inheriting_german_version_of_the_sample_matches_its_golden_post(network):
    """index.de.md writes its words (and a Mastodon text); the co-issuers it mentions and the tags come from index.md."""
    site = load_settings(REPO / "pressroom.toml", environ={})
    german = load_releases(site).releases[0].version("de")
    assert german.language == "de" and "issuers" not in german.written and german.issuers
    post = compose_post(release=german, network=network, limits=NETWORK_LIMITS[network], templates=TEMPLATES, settings=site)
    text = "\n\n--- reply ---\n\n".join(part.text for part in post.parts) + "\n"
    assert_golden(GOLDEN, {f"{network}.de.txt": text})
    _check_post(post, german)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=prose.filter(lambda t: t.strip()), tag_list=tags, network=st.sampled_from(sorted(NETWORK_LIMITS)))
def test_any_override_text_fits_in_every_part_of_its_thread(text, tag_list, network):
    release = make_release(tags=tuple(tag_list), social={network: ChannelOptions(text=text * 3)})
    post = compose_post(release=release, network=network, limits=NETWORK_LIMITS[network], templates=TEMPLATES)
    _check_post(post, release)
    assert len(post.parts) <= NETWORK_LIMITS[network].max_parts
