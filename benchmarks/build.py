"""Build-time benchmark: what `pressroom build` costs for 1,000 and 10,000 releases, against Hugo.

Generates synthetic releases in a temporary project (one in ten a bundle with a hero image), then
times load_releases + build_site together, as the command does, each build in a fresh process:

- full: an empty public/ and an empty var/cache/ (nothing parsed before);
- incremental: the same project after adding one release (every other file is already there,
  var/cache/ is as the full build left it);
- hugo: Hugo (Debian package ``hugo``) building the same Markdown files in the same run, with a
  minimal layout of its own: a page per release, paginated home, section and topic lists, RSS for
  each (Hugo's built-in template) and a sitemap. It is a reference, not a twin: Hugo writes one
  feed format where Pressroom writes three, and it uses every core. Skipped, with a note, when
  ``hugo`` is not on PATH.

Prints figures, asserts nothing. Wall-clock seconds are what the issue asks for; the CPU seconds
beside them tell a slow build apart from a busy machine (the 2 cores are shared), and the load
average is printed at the start and the end. Each size is built in 3 rounds (Hugo, Pressroom from
nothing, Pressroom after adding one release); each figure is the median of the rounds, and each
ratio the median of the rounds' own ratios (a build against Hugo in the same round). Each of
Pressroom's builds runs in a process of its own, as ``pressroom build`` would; peak_rss_mb is the
largest build's peak at 10,000 releases (the parsing and rendering workers' peak is printed beside
it). The last line is the one the issue asks for:
``build: full_1000=<s> hugo_1000=<s> ratio_1000=<x> incremental_1000=<s> incremental_ratio=<x>
files_touched=<n> full_10000=<s> hugo_10000=<s> ratio_10000=<x> incremental_10000=<s>
incremental_ratio_10000=<x> incremental_growth=<x> peak_rss_mb=<n>`` (incremental_growth: the
incremental build's time at 10,000 over its time at 1,000).
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pressroom.releases import load_releases
from pressroom.settings import load_settings
from pressroom.site import build_site

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HUGO_TIMEOUT = 600
BUILD_TIMEOUT = 1200
ROUNDS = 3
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
# Hugo's side: the same page size and feed length as Pressroom's defaults, one template per kind of page.
HUGO_CONFIG = """
baseURL = "https://press.example.org/"
title = "Benchmark Hub"
timeZone = "Europe/Brussels"
paginate = 20
disableKinds = []
[services.rss]
limit = 50
[taxonomies]
tag = "tags"
"""
HUGO_LAYOUTS = {
    "_default/baseof.html": (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ .Title }} · {{ site.Title }}</title>'
        '<link rel="canonical" href="{{ .Permalink }}">'
        '{{ with .OutputFormats.Get "rss" }}<link rel="alternate" type="application/rss+xml" href="{{ .RelPermalink }}">{{ end }}'
        "</head><body>{{ block \"main\" . }}{{ end }}</body></html>\n"
    ),
    "_default/single.html": (
        '{{ define "main" }}<article><h1>{{ .Title }}</h1><time>{{ .Date.Format "2 January 2006" }}</time>'
        "<p>{{ .Params.summary }}</p><ul>{{ range .GetTerms \"tags\" }}<li><a href=\"{{ .RelPermalink }}\">{{ .LinkTitle }}</a></li>{{ end }}</ul>"
        "{{ .Content }}</article>"
        "{{ with .PrevInSection }}<a href=\"{{ .RelPermalink }}\">{{ .Title }}</a>{{ end }}"
        "{{ with .NextInSection }}<a href=\"{{ .RelPermalink }}\">{{ .Title }}</a>{{ end }}{{ end }}\n"
    ),
    "_default/list.html": (
        '{{ define "main" }}<h1>{{ .Title }}</h1>{{ $list := .RegularPagesRecursive }}'
        '{{ if .IsHome }}{{ $list = site.RegularPages }}{{ else if eq .Kind "term" }}{{ $list = .Pages }}{{ end }}'
        "{{ $pages := .Paginate $list }}"
        "{{ range $pages.Pages }}<article><h2><a href=\"{{ .RelPermalink }}\">{{ .Title }}</a></h2>"
        "<time>{{ .Date.Format \"2 January 2006\" }}</time><p>{{ .Params.summary }}</p></article>{{ end }}"
        "{{ with $pages.Prev }}<a href=\"{{ .URL }}\">Newer</a>{{ end }}{{ with $pages.Next }}<a href=\"{{ .URL }}\">Older</a>{{ end }}"
        "{{ end }}\n"
    ),
    "_default/terms.html": (
        '{{ define "main" }}<ul>{{ range .Data.Terms.Alphabetical }}<li><a href="{{ .Page.RelPermalink }}">'
        "{{ .Page.Title }}</a> {{ .Count }}</li>{{ end }}</ul>{{ end }}\n"
    ),
}


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
        f"date: {date:%Y-%m-%d %H:%M:%S}\nstatus: approved\ntags: [{tags}]\n{hero}"
        "contacts:\n  - name: Press Office\n    email: press@example.org\n---\n\n" + body + "\n"
    )
    if bundle:
        (folder / slug).mkdir()
        (folder / slug / "hero.png").write_bytes(PNG)
        (folder / slug / "index.md").write_text(text, encoding="utf-8")
    else:
        (folder / f"{slug}.md").write_text(text, encoding="utf-8")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_build(root: Path) -> tuple[float, int, str]:
    cpu = time.process_time()
    workers = children_cpu()
    started = time.perf_counter()
    settings = load_settings(root / "pressroom.toml", environ={})
    loaded = time.perf_counter()
    result = load_releases(settings)
    parsed = time.perf_counter()
    report = build_site(settings=settings, releases=result.releases, now=NOW)
    finished = time.perf_counter()
    detail = (
        f"cpu {time.process_time() - cpu:.3f}s + {children_cpu() - workers:.3f}s in workers; load_releases {parsed - loaded:.3f}s, build_site {finished - parsed:.3f}s; "
        f"{report.pages} pages, wrote {len(report.written)}, unchanged {report.unchanged}, removed {len(report.removed)}"
    )
    return finished - started, len(report.written) + len(report.removed), detail


def hugo_site(workdir: Path, content: Path, count: int) -> Path | None:
    """Hugo's project of the same Markdown, or None (with a note) when Hugo is not installed."""
    if shutil.which("hugo") is None:
        print("hugo is not installed (Debian: apt-get install hugo): no reference figures", flush=True)
        return None
    site = workdir / f"hugo-{count}"
    (site / "content").mkdir(parents=True)
    shutil.copytree(content, site / "content" / "releases")
    (site / "config.toml").write_text(HUGO_CONFIG, encoding="utf-8")
    for name, text in HUGO_LAYOUTS.items():
        (site / "layouts" / name).parent.mkdir(parents=True, exist_ok=True)
        (site / "layouts" / name).write_text(text, encoding="utf-8")
    return site


def hugo_build(site: Path | None, count: int) -> float | None:
    """Seconds Hugo takes to build ``site`` into an empty folder (None without Hugo, or when it fails)."""
    if site is None:
        return None
    hugo = shutil.which("hugo") or "hugo"
    shutil.rmtree(site / "public", ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(
        [hugo, "--quiet", "--source", str(site), "--destination", str(site / "public")],
        capture_output=True, text=True, timeout=HUGO_TIMEOUT, check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        print(f"hugo failed ({done.returncode}): {done.stderr.strip()[:500]}", flush=True)
        return None
    pages = sum(1 for _ in (site / "public").rglob("*.html"))
    print(f"{count} releases, hugo {hugo_version(hugo)}: {elapsed:.3f}s ({pages} HTML files)", flush=True)
    return elapsed


def hugo_version(hugo: str) -> str:
    done = subprocess.run([hugo, "version"], capture_output=True, text=True, timeout=30, check=False)
    words = done.stdout.split()
    return words[1] if len(words) > 1 else "?"


def run(count: int, workdir: Path) -> dict[str, float | None]:
    """Generate ``count`` releases, then ROUNDS times: Hugo builds them, Pressroom builds them from nothing, one
    release is added and Pressroom builds again, each build in a fresh process. The medians of the rounds."""
    root = workdir / f"project-{count}"
    releases = root / "content" / "releases"
    releases.mkdir(parents=True)
    (root / "pressroom.toml").write_text(SETTINGS, encoding="utf-8")
    os.symlink(Path(__file__).resolve().parent.parent / "templates", root / "templates")
    rng = random.Random(count)
    for number in range(count):
        write_release(releases, number, rng)
    site = hugo_site(workdir, releases, count)
    rounds = []
    for _ in range(ROUNDS):
        hugo = hugo_build(site, count)
        # Back to the generated releases alone: no site, no caches, not the release the last round added.
        for generated in (root / "public", root / "var", releases / f"release-{count:05d}"):
            shutil.rmtree(generated, ignore_errors=True)
        (releases / f"release-{count:05d}.md").unlink(missing_ok=True)
        figures = {}
        for phase in ("full", "incremental"):
            if phase == "incremental":
                write_release(releases, count, random.Random(-count))
            # A process of its own, as `pressroom build` is: its own peak RSS, its own cold start.
            result = workdir / f"result-{count}-{phase}.json"
            subprocess.run([sys.executable, __file__, "--pressroom", str(root), phase, str(result)],
                           check=True, timeout=BUILD_TIMEOUT)
            figures[phase] = json.loads(result.read_text(encoding="utf-8"))
        rounds.append({
            "full": figures["full"]["seconds"], "incremental": figures["incremental"]["seconds"],
            "touched": figures["incremental"]["touched"], "peak_mb": max(f["peak_mb"] for f in figures.values()),
            "hugo": hugo,
            # Against its reference in the same round: the machine is shared, and its load changes between rounds.
            "ratio": figures["full"]["seconds"] / hugo if hugo else None,
            "incremental_ratio": figures["incremental"]["seconds"] / figures["full"]["seconds"],
        })
    return {name: _median([figures[name] for figures in rounds]) for name in rounds[0]}


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if len(known) == len(values) else None


def pressroom_build(root: Path, phase: str, result: Path) -> None:
    """In the child: one build of the project as it is now; its figures to ``result``."""
    seconds, touched, detail = timed_build(root)
    count = sum(1 for _ in (root / "content" / "releases").iterdir())
    what = "full build" if phase == "full" else "incremental build after adding one"
    print(f"{count} releases, {what}: {seconds:.3f}s ({detail})", flush=True)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it could report the parent's peak.
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{count} releases, {what}: peak RSS {peak:.0f} MB in the build, {workers:.0f} MB in the largest worker",
          flush=True)
    result.write_text(json.dumps({"seconds": seconds, "touched": touched, "peak_mb": peak}), encoding="utf-8")


def ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def seconds(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "n/a"


def main() -> None:
    if sys.argv[1:2] == ["--pressroom"]:
        pressroom_build(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="pressroom-bench-") as folder:
        workdir = Path(folder)
        small = run(1000, workdir)
        large = run(10_000, workdir)
    print(f"load average {os.getloadavg()[0]:.1f} at the end; each figure the median of {ROUNDS} rounds", flush=True)
    print(
        f"build: full_1000={small['full']:.3f} hugo_1000={seconds(small['hugo'])} "
        f"ratio_1000={ratio(small['ratio'])} incremental_1000={small['incremental']:.3f} "
        f"incremental_ratio={small['incremental_ratio']:.3f} files_touched={small['touched']:.0f} "
        f"full_10000={large['full']:.3f} hugo_10000={seconds(large['hugo'])} "
        f"ratio_10000={ratio(large['ratio'])} incremental_10000={large['incremental']:.3f} "
        f"incremental_ratio_10000={large['incremental_ratio']:.3f} "
        f"incremental_growth={large['incremental'] / small['incremental']:.2f} peak_rss_mb={large['peak_mb']:.0f}"
    )


if __name__ == "__main__":
    main()
