"""SMS encoding: GSM-7 or UCS-2, and how many segments a text costs."""

from __future__ import annotations

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM 03.38 alphabet (basic or extension table)."""
    return all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in text)


def encoding(text: str) -> str:
    """``"GSM-7"`` or ``"UCS-2"``: how a phone would send ``text``."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def segment_count(text: str) -> int:
    """Segments billed: GSM-7 160 in one, 153 per part; UCS-2 70 in one, 67 per part."""
    if not text:
        return 1
    if is_gsm7(text):
        units = sum(2 if ch in GSM_EXTENDED else 1 for ch in text)
        single, multi = 160, 153
    else:
        # UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else -(-units // multi)
