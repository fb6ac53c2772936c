"""WCAG 2 contrast maths on ``#rrggbb`` colours: one home for the site's and the email's colours."""

from __future__ import annotations

import re

__all__ = ["contrast_ratio", "readable", "site_brand"]

_DEFAULT_BRAND = "#0b5d7a"
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}")


def _luminance(hex_color: str) -> float:
    value = hex_color.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    a, b = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def _mix(hex_color: str, target: str, amount: float) -> str:
    a = hex_color.lstrip("#")
    b = target.lstrip("#")
    mixed = [round(int(a[i : i + 2], 16) * (1 - amount) + int(b[i : i + 2], 16) * amount) for i in (0, 2, 4)]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def readable(color: str, background: str, toward: str) -> str:
    """``color`` moved toward ``toward`` until it reads at 4.5:1 (WCAG AA) on ``background``."""
    for step in range(21):
        candidate = _mix(color, toward, step / 20)
        if contrast_ratio(candidate, background) >= 4.5:
            return candidate
    return toward


def site_brand(colour: str) -> str:
    """``[site] brand_color`` as the site's pages show it (masthead, buttons, links): a valid colour (else the
    default), darkened until the masthead's white words on it and links in it on white read at 4.5:1 (WCAG AA)."""
    brand = colour if _HEX_COLOUR.fullmatch(colour or "") else _DEFAULT_BRAND
    return readable(brand, "#ffffff", "#000000") if len(brand) == 7 else brand
