"""How a release looks in an email: the palette (the site's brand colour made readable, pressroom.colours)
and the inline styles of the release body (some clients drop <style>, none drops style="")."""

from __future__ import annotations

import re

from pressroom.colours import contrast_ratio, readable
from pressroom.text import cell_alignment

__all__ = ["contrast_ratio", "palette", "style_body"]


def palette(brand: str) -> dict[str, str]:
    """The email's colours from the brand colour: accents moved until they read at 4.5:1 (WCAG AA), light and dark."""
    brand = brand if re.fullmatch(r"#[0-9a-fA-F]{6}", brand or "") else "#0b5d7a"
    light_bg, dark_bg = "#ffffff", "#1a1f24"
    accent = readable(brand, light_bg, "#000000")
    return {
        "brand": brand,
        "accent": accent,  # links, button, headings on white
        "on_accent": "#ffffff" if contrast_ratio("#ffffff", accent) >= contrast_ratio("#111111", accent) else "#111111",
        "text": "#1f2933",
        "muted": "#52606d",
        "page": "#eef2f5",
        "card": light_bg,
        "rule": "#d9e2ec",
        "dark_page": "#0f1316",
        "dark_card": dark_bg,
        "dark_text": "#e4e9ee",
        "dark_muted": "#aab6c2",
        "dark_accent": readable(brand, dark_bg, "#ffffff"),
    }


# Inline styles for the sanitised release body: some clients drop <style>, none drops style="".
_BODY_STYLES = {
    "p": "margin:0 0 16px 0;",
    "h1": "margin:24px 0 12px 0;font-size:22px;line-height:1.3;",
    "h2": "margin:24px 0 12px 0;font-size:20px;line-height:1.3;",
    "h3": "margin:20px 0 10px 0;font-size:18px;line-height:1.3;",
    "ul": "margin:0 0 16px 0;padding-left:24px;",
    "ol": "margin:0 0 16px 0;padding-left:24px;",
    "li": "margin:0 0 6px 0;",
    "blockquote": "margin:0 0 16px 0;padding:4px 0 4px 16px;border-left:4px solid {accent};",
    # CSS width:auto beats the width attribute where CSS works; Outlook desktop reads only the attribute.
    "img": "max-width:100%;width:auto;height:auto;",
    # MJML gives every text block word-break:break-word, which would split "Quarter" into
    # "Qu/art/er" to squeeze a table: words stay whole and the box around the table scrolls instead.
    "table": "border-collapse:collapse;word-break:normal;overflow-wrap:normal;margin:0;",
    "th": "padding:6px 10px;border-bottom:2px solid {rule};text-align:{align};vertical-align:bottom;font-weight:bold;",
    "td": "padding:6px 10px;border-bottom:1px solid {rule};text-align:{align};vertical-align:top;",
    "a": "color:{accent};text-decoration:underline;word-break:break-word;",
}
_OPEN_TAG = re.compile(r"<(p|h1|h2|h3|ul|ol|li|blockquote|img|table|th|td|a)(\s[^>]*)?>")
_CLASS = re.compile(r'\sclass="([^"]*)"')
#: The width of the release body in the 600px layout (32px padding each side), for img width="".
_BODY_WIDTH = 536


def style_body(fragment: str, colors: dict[str, str]) -> str:
    """The release body (sanitised HTML) with the inline styles of :data:`_BODY_STYLES` in ``colors``."""

    def replace(match: re.Match[str]) -> str:
        tag, attributes = match.group(1), match.group(2) or ""
        classes = _CLASS.search(attributes) if tag in ("th", "td") else None
        style = _BODY_STYLES[tag].format(**colors, align=cell_alignment(classes.group(1) if classes else None))
        closing = "/" if attributes.rstrip().endswith("/") else ""
        attributes = attributes.rstrip().removesuffix("/")
        if tag == "img" and " width=" not in attributes:
            attributes += f' width="{_BODY_WIDTH}"'
        opening = f'<{tag}{attributes} style="{style}"{closing}>'
        if tag == "table":
            # width:0 keeps the table from widening MJML's layout tables (which size to their content);
            # min-width:100% then gives the box the text's width, and a wider table scrolls inside it.
            return f'<div style="overflow-x:auto;width:0;min-width:100%;margin:0 0 16px 0;">{opening}'
        return opening

    return _OPEN_TAG.sub(replace, fragment).replace("</table>", "</table></div>")
