"""How long a message body is for Twilio, and a reply cut to fit.

Twilio refuses a body over 1,600 characters (error 21617) and says that characters outside
GSM-7, emoji among them, take more room. textback counts UTF-16 code units: a character outside
the Basic Multilingual Plane (most emoji) counts two, as it does in the UCS-2/UTF-16 encoding
an SMS with such a character is sent in. That never counts less than Twilio does.
"""

from __future__ import annotations

MAX_BODY = 1600


def body_length(text: str) -> int:
    """The length of ``text`` as counted against Twilio's limit (an emoji counts two)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def too_long(text: str) -> str | None:
    """What is wrong with ``text`` as a message body, None when it fits."""
    length = body_length(text)
    if length <= MAX_BODY:
        return None
    return f"{length:,} characters long; Twilio accepts at most {MAX_BODY:,} (an emoji counts two)"


def cut_to_fit(text: str, limit: int = MAX_BODY) -> str:
    """``text`` cut to at most ``limit`` (as body_length counts), between two characters.

    The cut falls between grapheme clusters, what a reader sees as one character: never inside
    an emoji sequence, a flag or a letter and its accents. A single cluster longer than the
    limit (a letter under a thousand combining marks) is cut between code points instead.
    """
    if body_length(text) <= limit:
        return text
    import regex  # only for a reply that needs cutting: `import textback` stays light

    used = end = 0
    for cluster in regex.finditer(r"\X", text):
        size = body_length(cluster.group())
        if used + size > limit:
            break
        used, end = used + size, cluster.end()
    if end == 0:
        for char in text:
            used += body_length(char)
            if used > limit:
                break
            end += 1
    return text[:end]


def sending_problem(body: str, *, media: int = 0) -> str | None:
    """Why a message with ``body`` and ``media`` pictures cannot be sent; None when it can.

    An empty (or blank) body is fine with a picture: that is an MMS without text.
    """
    if not body.strip() and not media:
        return "the message is empty: give a text, or a picture with --media"
    found = too_long(body)
    return f"the message is {found}" if found else None
