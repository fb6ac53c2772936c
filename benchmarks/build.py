"""Build-time benchmark: what `pressroom build` costs for 1,000 and 10,000 releases.

Generates synthetic releases in a temporary project (one in ten a bundle with a hero image), then
times load_releases + build_site together, as the command does:

- full: an empty public/;
- incremental: the same project after adding one release (every other file is already there).

Prints figures, asserts nothing. Wall-clock seconds are what the issue asks for; the CPU seconds
beside them tell a slow build apart from a busy machine (the 2 cores are shared). The last line is the one the issue asks for:
``build: full_1000=<s> incremental_1000=<s> full_10000=<s> peak_rss_mb=<n>``
"""

from __future__ import annotations

import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pressroom.releases import load_releases  # noqa: E402
from pressroom.settings import load_settings  # noqa: E402
from pressroom.site import build_site  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = [
    "Recycling", "Lithium", "Cobalt", "Nickel", "Graphite", "Policy", "Funding", "Events", "Research",
    "Industry", "Circular economy", "Mining", "Refining", "Battery passport", "Standards", "Training",
]
WORDS = (
    "battery raw materials recycling research industry partnership europe sustainable circular production "
    "lithium cobalt nickel graphite refining value chain pilot plant consortium project results innovation"
).split()
SETTINGS = """
[site]
name = "Benchmark Hub"
base_url = "https://press.example.org"
timezone = "Europe/Brussels"
about = "**About the Benchmark Hub.** A synthetic organisation for timing builds."
"""
# A small valid PNG (1x1), so bundles have a real file to copy.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc000000301"
    "0100c9fe92ef0000000049454e44ae426082"
)


def paragraph(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def write_release(folder: Path, number: int, rng: random.Random) -> None:
    slug = f"release-{number:05d}"
    date = datetime(2020, 1, 1, 9, 0) + timedelta(hours=3 * number)
    tags = ", ".join(rng.sample(TAGS, 3))
    bundle = number % 10 == 0
    hero = "hero:\n  src: hero.png\n  alt: A pilot plant for battery materials\n" if bundle else ""
    body = "\n\n".join(
        [paragraph(rng, 60), "## Results", paragraph(rng, 80), "- " + paragraph(rng, 10) + "\n- " + paragraph(rng, 12),
         "> " + paragraph(rng, 30), paragraph(rng, 70), "[More](https://example.org/more)"]
    )
    text = (
        f"---\ntitle: \"Release {number}: {paragraph(rng, 8)}\"\nsummary: \"{paragraph(rng, 25)}\"\n"
        f"date: {date:%Y-%m-%d %H:%M}\nstatus: approved\ntags: [{tags}]\n{hero}"
        "contacts:\n  - name: Press Office\n    email: press@example.org\n---\n\n" + body + "\n"
    )
    if bundle:
        (folder / slug).mkdir()
        (folder / slug / "hero.png").write_bytes(PNG)
        (folder / slug / "index.md").write_text(text, encoding="utf-8")
    else:
        (folder / f"{slug}.md").write_text(text, encoding="utf-8")


def timed_build(root: Path) -> tuple[float, str]:
    cpu = time.process_time()
    started = time.perf_counter()
    settings = load_settings(root / "pressroom.toml", environ={})
    loaded = time.perf_counter()
    result = load_releases(settings)
    parsed = time.perf_counter()
    report = build_site(settings=settings, releases=result.releases, now=NOW)
    finished = time.perf_counter()
    detail = (
        f"cpu {time.process_time() - cpu:.3f}s; load_releases {parsed - loaded:.3f}s, build_site {finished - parsed:.3f}s; "
        f"{report.pages} pages, wrote {len(report.written)}, unchanged {report.unchanged}, removed {len(report.removed)}"
    )
    return finished - started, detail


def run(count: int, workdir: Path, *, incremental: bool) -> tuple[float, float | None]:
    root = workdir / f"project-{count}"
    releases = root / "content" / "releases"
    releases.mkdir(parents=True)
    (root / "pressroom.toml").write_text(SETTINGS, encoding="utf-8")
    os.symlink(Path(__file__).resolve().parent.parent / "templates", root / "templates")
    rng = random.Random(count)
    for number in range(count):
        write_release(releases, number, rng)
    full, detail = timed_build(root)
    print(f"{count} releases, full build: {full:.3f}s ({detail})", flush=True)
    if not incremental:
        return full, None
    write_release(releases, count, rng)
    again, detail = timed_build(root)
    print(f"{count} releases, incremental build after adding one: {again:.3f}s ({detail})", flush=True)
    return full, again


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pressroom-bench-") as folder:
        workdir = Path(folder)
        full_1000, incremental_1000 = run(1000, workdir, incremental=True)
        full_10000, _ = run(10_000, workdir, incremental=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"build: full_1000={full_1000:.3f} incremental_1000={incremental_1000:.3f} "
        f"full_10000={full_10000:.3f} peak_rss_mb={peak_mb:.0f}"
    )


if __name__ == "__main__":
    main()
