"""The plain values a message is made of: what came in (Inbound) and what goes back (Reply)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from types import MappingProxyType

from textback.errors import MalformedWebhook

REQUIRED_FIELDS = ("MessageSid", "From", "To")
# Twilio's own pattern for a Message SID (its OpenAPI description of /Messages).
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
MAX_ADDRESS = 64  # the longest From, To or AccountSid stored (whatsapp:+… and the like fit)
# The parameters textback reads. Twilio sends each at most once, and its signature does not tell
# one copy from two (it sorts the values of a key and joins them), so a second copy or a
# reordered pair would pass as signed: a form that repeats one of them is refused.
SINGLE_FIELDS = frozenset(
    {"Body", "From", "To", "MessageSid", "AccountSid", "NumMedia", "OptOutType"}
)
_MEDIA_FIELD = re.compile(r"Media(?:Url|ContentType)[0-9]+")


def is_single_field(name: str) -> bool:
    """True for a parameter textback reads, which a webhook must not repeat."""
    return name in SINGLE_FIELDS or _MEDIA_FIELD.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Media:
    """One picture (or other file) attached to an MMS."""

    url: str
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message Twilio delivered to us, as a frozen value.

    ``params`` holds every parameter Twilio sent (the first value of a repeated one; the
    parameters textback reads are never repeated), including those Twilio adds after this code
    was written; ``form`` keeps them all, in order.
    """

    sid: str
    from_: str
    to: str
    body: str = ""
    account_sid: str = ""
    media: tuple[Media, ...] = ()
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    form: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_form(cls, form: Iterable[tuple[str, str]]) -> Inbound:
        """Build an Inbound from the webhook's form parameters, in the order they came.

        Raises MalformedWebhook when one of the SINGLE_FIELDS (Body, From, MediaUrl0…) is
        repeated, when MessageSid, From or To is missing or empty, or MessageSid is
        not a message SID (SM or MM and 32 hex digits). The last check matters for more than
        tidiness: Twilio's signature joins keys and values with nothing between them, so a
        captured request whose MessageSid is followed by a parameter such as
        MessagingServiceSid signs the same as one whose MessageSid swallowed that parameter. A
        well-formed SID cannot swallow anything, so such a replay cannot pass as a new message.
        """
        pairs = tuple(form)
        params: dict[str, str] = {}
        for key, value in pairs:
            if key not in params:
                params[key] = value
            elif is_single_field(key):
                raise MalformedWebhook(f"{key} is repeated")
        missing = [name for name in REQUIRED_FIELDS if not params.get(name)]
        if missing:
            raise MalformedWebhook("missing " + ", ".join(missing))
        if MESSAGE_SID.fullmatch(params["MessageSid"]) is None:
            raise MalformedWebhook("MessageSid is not a message SID (SM or MM and 32 hex digits)")
        for name in ("From", "To", "AccountSid"):
            if len(params.get(name, "")) > MAX_ADDRESS:
                raise MalformedWebhook(f"{name} is longer than {MAX_ADDRESS} characters")
        return cls(
            sid=params["MessageSid"],
            from_=params["From"],
            to=params["To"],
            body=params.get("Body", ""),
            account_sid=params.get("AccountSid", ""),
            media=_media(params),
            params=MappingProxyType(params),
            form=pairs,
        )


def _media(params: Mapping[str, str]) -> tuple[Media, ...]:
    try:
        count = int(params.get("NumMedia", "0") or 0)
    except ValueError:
        count = 0
    items = []
    for index in range(max(0, min(count, 10))):
        url = params.get(f"MediaUrl{index}")
        if url:
            items.append(Media(url, params.get(f"MediaContentType{index}", "")))
    return tuple(items)


class _End:
    """The type of END: the sentinel that ends a conversation."""

    _instance: _End | None = None

    def __new__(cls) -> _End:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "END"


END = _End()
"""Return ``Reply(..., state=END)`` to end the contact's conversation."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What textback answers: text, optional picture URLs, and the conversation state to enter.

    ``Reply("")`` (or a handler returning None) sends no message at all: an empty ``<Response/>``.
    ``state`` is None to leave the contact's state as it is, a string to move them into that state
    (see ``@bot.on(state=...)``), or END to end their conversation.
    """

    text: str = ""
    media: tuple[str, ...] = ()
    state: str | _End | None = None

    def __init__(
        self,
        text: str = "",
        media: Iterable[str] = (),
        *,
        state: str | _End | None = None,
    ) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "media", tuple(media))
        object.__setattr__(self, "state", state)

    @property
    def is_empty(self) -> bool:
        """True when no message is sent."""
        return not self.text and not self.media
