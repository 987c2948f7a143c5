"""Bot: the registry of Python handlers and the dispatch of a message to the first that matches.

No Flask and no I/O here: ``Bot.dispatch`` takes plain values and returns plain values, so a bot
is tested by calling it.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TypeVar
from typing import overload

from textback.core.body_length import too_long
from textback.core.conversation import Conversation
from textback.core.matchers import Match
from textback.core.matchers import Matcher
from textback.core.matchers import matcher_for
from textback.core.message import END
from textback.core.message import Inbound
from textback.core.message import Reply
from textback.core.profile import ContactProfile
from textback.errors import ConfigError
from textback.errors import HandlerError
from textback.errors import InvalidHandler

DEFAULT_REPLY = "Hi! Not quite sure what you meant, but okay."

ReplyLike = str | Reply | None
Handler = Callable[..., ReplyLike]
H = TypeVar("H", bound=Handler)

_INJECTABLE = ("match", "conversation", "contact")


@dataclass(frozen=True, slots=True)
class Route:
    """One way of answering: a matcher (or a conversation state) and the handler behind it."""

    name: str
    handler: Handler
    matcher: Matcher | None = None
    state: str | None = None
    wants: tuple[str, ...] = ()
    slow: bool = False
    ack: str = ""

    def call(
        self,
        msg: Inbound,
        match: Match | None,
        conversation: Conversation,
        *,
        source: str,
        contact: ContactProfile | None = None,
    ) -> Reply:
        """Run the handler with the arguments it asked for and make its answer a Reply.

        Whatever goes wrong in the handler is raised as HandlerError naming ``source`` (how the
        message log names this route), with the handler's own exception as its cause. A
        handler asking for ``contact`` gets ``contact``, or a profile with only the number.
        """
        available: dict[str, Any] = {
            "match": match.regex if match is not None and match.regex is not None else match,
            "conversation": conversation,
            "rule_match": match,
        }
        if "contact" in self.wants:
            available["contact"] = contact if contact is not None else ContactProfile(msg.from_)
        try:
            value = self.handler(msg, **{name: available[name] for name in self.wants})
        except Exception as exc:
            raise HandlerError(source, f"{type(exc).__name__}: {exc}") from exc
        try:
            return as_reply(value)
        except TypeError as exc:
            raise HandlerError(source, str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Outcome:
    """What dispatch decided: the reply (empty for none) and which rule or handler gave it.

    ``deferred`` is True when the route is a slow handler: it was not called, ``reply`` is its
    acknowledgement, and a worker calls it later (see docs/slow-handlers.md).
    """

    reply: Reply
    source: str
    deferred: bool = False


def as_reply(value: ReplyLike) -> Reply:
    """A handler's return value as a Reply: a str is its text, None is no reply."""
    if value is None:
        return Reply("")
    if isinstance(value, str):
        return Reply(value)
    if isinstance(value, Reply):
        # Reply takes anything at run time; what is not text would fail later, in the TwiML.
        if not isinstance(value.text, str):
            raise TypeError(f"Reply text must be a str, not {type(value.text).__name__}")
        for url in value.media:
            if not isinstance(url, str):
                raise TypeError(f"Reply media must be URLs (str), not {type(url).__name__}")
        if not (value.state is None or value.state is END or isinstance(value.state, str)):
            raise TypeError(f"Reply state must be a str or END, not {type(value.state).__name__}")
        return value
    raise TypeError(f"a handler must return str, Reply or None, not {type(value).__name__}")


def describe_handler(handler: Handler) -> str:
    """A handler as a person finds it: ``handler 'order' (mybot.py:12)``."""
    name = getattr(handler, "__name__", type(handler).__name__)
    code = getattr(handler, "__code__", None)
    if code is None:
        return f"handler {name!r}"
    path = Path(code.co_filename)
    with contextlib.suppress(ValueError):  # a file outside this folder keeps its whole path
        path = path.relative_to(Path.cwd())
    return f"handler {name!r} ({path}:{code.co_firstlineno})"


def injected_parameters(handler: Handler) -> tuple[str, ...]:
    """The names a handler asks for after the message.

    Fails when the handler is registered, not when a message comes, with InvalidHandler naming
    the handler, the parameter and what may be asked for.
    """
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError) as exc:
        raise InvalidHandler(f"{describe_handler(handler)} is not a function: {exc}") from None
    if not parameters:
        raise InvalidHandler(
            f"{describe_handler(handler)} must take the message as its first parameter"
        )
    wants = []
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name not in _INJECTABLE:
            raise InvalidHandler(
                f"{describe_handler(handler)}: unknown parameter {parameter.name!r}; "
                f"after the message a handler may ask for {', '.join(_INJECTABLE[:-1])} "
                f"and {_INJECTABLE[-1]}"
            )
        wants.append(parameter.name)
    return tuple(wants)


class Bot:
    """Python handlers for what a rules file can't say.

    Handlers are tried in the order they were registered, before the rules file's rules; the first
    whose trigger matches answers. A contact in a conversation state goes to that state's handler
    first. ``error_reply`` is sent when a handler fails (none by default; a rules file's
    ``[default] error_reply`` wins over it).
    """

    def __init__(self, *, default_reply: str = DEFAULT_REPLY, error_reply: str = "") -> None:
        self.routes: list[Route] = []
        self.state_routes: dict[str, Route] = {}
        self.default_reply = default_reply
        if too_long(error_reply):
            raise ConfigError(f"Bot(error_reply=...) is {too_long(error_reply)}")
        self.error_reply = error_reply
        self.fallback_route: Route | None = None

    @property
    def wants_contact(self) -> bool:
        """Whether a handler asks for ``contact`` (so the sender's profile must be loaded)."""
        routes = [*self.routes, *self.state_routes.values(), self.fallback_route]
        return any(route is not None and "contact" in route.wants for route in routes)

    def on(
        self,
        trigger: str | re.Pattern[str] | Iterable[str] | None = None,
        *,
        state: str | None = None,
        name: str | None = None,
        slow: bool = False,
        ack: str = "",
    ) -> Callable[[H], H]:
        """Register a handler for a keyword, a compiled regex, or a conversation state.

        Example::

            @bot.on("hello")
            def hello(msg):
                return "Hello back to you!"

        A str (or list of str) is a keyword matched against the whole message, ignoring case,
        spacing and punctuation; ``re.compile(...)`` is searched in the message and the handler
        may ask for ``match``; ``state="order.size"`` answers contacts in that state. Besides the
        message a handler may ask for ``match``, ``conversation`` and ``contact`` (the sender's
        ContactProfile: name, language, timezone, fields, groups) by naming them. It returns
        a str, a Reply, or None for no reply. The function is returned unchanged.

        ``slow=True`` makes it a slow handler: the webhook answers at once (with ``ack``, empty
        by default) and a worker calls the handler later, sending its reply through the outbox
        (docs/slow-handlers.md)::

            @bot.on("report", slow=True, ack="Working on it...")
            def report(msg):
                return build_report(msg.from_)  # may take minutes
        """
        if (trigger is None) == (state is None):
            raise InvalidHandler("bot.on() takes a trigger or state=..., exactly one of them")

        def register(handler: H) -> H:
            route = Route(
                name=name or handler.__name__,
                handler=handler,
                matcher=matcher_for(trigger) if trigger is not None else None,
                state=state,
                wants=injected_parameters(handler),
                **self._slowness(handler, slow, ack),
            )
            if slow:
                self._refuse_twin(
                    route, f"state {route.name}" if state else f"handler {route.name}"
                )
            if state is not None:
                self.state_routes[state] = route
            else:
                self.routes.append(route)
            return handler

        return register

    @overload
    def fallback(self, handler: H, /) -> H: ...

    @overload
    def fallback(
        self, handler: None = None, /, *, slow: bool = False, ack: str = ""
    ) -> Callable[[H], H]: ...

    def fallback(
        self, handler: H | None = None, /, *, slow: bool = False, ack: str = ""
    ) -> H | Callable[[H], H]:
        """Register the handler that answers when nothing else matched.

        Example::

            @bot.fallback
            def anything(msg):
                return f"You said {msg.body!r}."

        ``@bot.fallback(slow=True, ack="...")`` makes it a slow handler, as in ``bot.on``.
        """

        def register(handler: H) -> H:
            route = Route(
                name=handler.__name__,
                handler=handler,
                wants=injected_parameters(handler),
                **self._slowness(handler, slow, ack),
            )
            if slow:
                self._refuse_twin(route, f"handler {route.name}")
            self.fallback_route = route
            return handler

        return register(handler) if handler is not None else register

    @staticmethod
    def _slowness(handler: Handler, slow: bool, ack: str) -> dict[str, Any]:
        if ack and not slow:
            raise InvalidHandler(
                f"{describe_handler(handler)}: ack=... is the answer of a slow handler; "
                "add slow=True, or return the text from the handler"
            )
        if too_long(ack):
            raise InvalidHandler(f"{describe_handler(handler)}: its ack is {too_long(ack)}")
        return {"slow": slow, "ack": ack}

    def _refuse_twin(self, route: Route, source: str) -> None:
        """A worker finds a slow handler by its source: two routes may not share it."""
        for other_source, other in self.sources():
            if other_source == source and other.handler is not route.handler:
                raise InvalidHandler(
                    f"{describe_handler(route.handler)}: {source!r} is taken by "
                    f"{describe_handler(other.handler)}; a slow handler needs a name of its own "
                    "(give name=...)"
                )

    def sources(self) -> list[tuple[str, Route]]:
        """Every route with the source the message log names it by (``handler order``)."""
        found = [(f"handler {route.name}", route) for route in self.routes]
        found += [(f"state {route.name}", route) for route in self.state_routes.values()]
        if self.fallback_route is not None:
            found.append((f"handler {self.fallback_route.name}", self.fallback_route))
        return found

    @property
    def has_slow_handlers(self) -> bool:
        """Whether any handler is slow (then a worker must run: ``textback worker``)."""
        return any(route.slow for _, route in self.sources())

    def run_slow(
        self,
        source: str,
        msg: Inbound,
        conversation: Conversation,
        *,
        contact: ContactProfile | None = None,
    ) -> Outcome:
        """Call the slow handler named ``source`` (a deferred Outcome's source), as dispatch
        would have: with ``match`` found again in the message, ``conversation`` and ``contact``.

        Raises HandlerError when it fails, as dispatch does, and when no slow handler has that
        source any more (the bot changed since the message came).
        """
        route = next((r for s, r in self.sources() if s == source and r.slow), None)
        if route is None:
            raise HandlerError(source, "no slow handler of that name any more")
        match = None
        if route.matcher is not None:
            match = route.matcher.match(msg.body)
            if match is None:
                raise HandlerError(source, "its trigger no longer matches the message")
        return Outcome(route.call(msg, match, conversation, source=source, contact=contact), source)

    def dispatch(
        self,
        msg: Inbound,
        *,
        conversation: Conversation | None = None,
        rules: Sequence[Route] = (),
        default: Route | None = None,
        contact: ContactProfile | None = None,
    ) -> Outcome:
        """Answer ``msg``: its state's handler, then handlers, then ``rules``, then the default.

        ``default`` (a rules file's ``[default]``) replaces the bot's own default text; a
        ``@bot.fallback`` handler comes before both. A handler that raises, or returns something
        that is not a reply, raises HandlerError (its own exception is the ``__cause__``).
        ``contact`` is the sender's profile, for handlers and templates that use it.
        """
        conversation = conversation if conversation is not None else Conversation()
        return (
            self.dispatch_state(msg, conversation, contact=contact)
            or self.dispatch_handlers(msg, conversation, contact=contact)
            or self.dispatch_rules(msg, conversation, rules=rules, default=default, contact=contact)
        )

    def dispatch_state(
        self, msg: Inbound, conversation: Conversation, *, contact: ContactProfile | None = None
    ) -> Outcome | None:
        """The answer of the handler registered for the conversation's state, if there is one."""
        if conversation.state is not None and conversation.state in self.state_routes:
            route = self.state_routes[conversation.state]
            return self._answer(route, f"state {route.name}", msg, None, conversation, contact)
        return None

    def dispatch_handlers(
        self, msg: Inbound, conversation: Conversation, *, contact: ContactProfile | None = None
    ) -> Outcome | None:
        """The answer of the first trigger handler that matches ``msg``, if any."""
        for route in self.routes:
            assert route.matcher is not None
            match = route.matcher.match(msg.body)
            if match is not None:
                source = f"handler {route.name}"
                return self._answer(route, source, msg, match, conversation, contact)
        return None

    def dispatch_rules(
        self,
        msg: Inbound,
        conversation: Conversation,
        *,
        rules: Sequence[Route] = (),
        default: Route | None = None,
        contact: ContactProfile | None = None,
    ) -> Outcome:
        """The first of ``rules`` that matches, else the fallback handler or the default."""
        for route in rules:
            assert route.matcher is not None
            match = route.matcher.match(msg.body)
            if match is not None:
                return self._answer(route, route.name, msg, match, conversation, contact)
        if self.fallback_route is not None:
            route = self.fallback_route
            return self._answer(route, f"handler {route.name}", msg, None, conversation, contact)
        if default is not None:
            return self._answer(default, default.name, msg, None, conversation, contact)
        return Outcome(Reply(self.default_reply), "default")

    @staticmethod
    def _answer(
        route: Route,
        source: str,
        msg: Inbound,
        match: Match | None,
        conversation: Conversation,
        contact: ContactProfile | None,
    ) -> Outcome:
        if route.slow:  # a worker calls it (run_slow); the webhook answers with the ack
            return Outcome(Reply(route.ack), source, deferred=True)
        return Outcome(route.call(msg, match, conversation, source=source, contact=contact), source)
