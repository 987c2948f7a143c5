"""Bot: the registry of Python handlers and the dispatch of a message to the first that matches.

No Flask and no I/O here: ``Bot.dispatch`` takes plain values and returns plain values, so a bot
is tested by calling it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

from textback.core.conversation import Conversation
from textback.core.matchers import Match
from textback.core.matchers import Matcher
from textback.core.matchers import matcher_for
from textback.core.message import Inbound
from textback.core.message import Reply

DEFAULT_REPLY = "Hi! Not quite sure what you meant, but okay."

ReplyLike = str | Reply | None
Handler = Callable[..., ReplyLike]
H = TypeVar("H", bound=Handler)

_INJECTABLE = ("match", "conversation")


@dataclass(frozen=True, slots=True)
class Route:
    """One way of answering: a matcher (or a conversation state) and the handler behind it."""

    name: str
    handler: Handler
    matcher: Matcher | None = None
    state: str | None = None
    wants: tuple[str, ...] = ()

    def call(self, msg: Inbound, match: Match | None, conversation: Conversation) -> Reply:
        """Run the handler with the arguments it asked for and make its answer a Reply."""
        available: dict[str, Any] = {
            "match": match.regex if match is not None and match.regex is not None else match,
            "conversation": conversation,
            "rule_match": match,
        }
        return as_reply(self.handler(msg, **{name: available[name] for name in self.wants}))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What dispatch decided: the reply (empty for none) and which rule or handler gave it."""

    reply: Reply
    source: str


def as_reply(value: ReplyLike) -> Reply:
    """A handler's return value as a Reply: a str is its text, None is no reply."""
    if value is None:
        return Reply("")
    if isinstance(value, str):
        return Reply(value)
    if isinstance(value, Reply):
        return value
    raise TypeError(f"a handler must return str, Reply or None, not {type(value).__name__}")


def injected_parameters(handler: Handler) -> tuple[str, ...]:
    """The names a handler asks for after the message; fails early on a name textback can't give."""
    parameters = list(inspect.signature(handler).parameters.values())
    if not parameters:
        raise TypeError(f"handler {handler.__name__!r} must take the message as first parameter")
    wants = []
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name not in _INJECTABLE:
            raise TypeError(
                f"handler {handler.__name__!r}: unknown parameter {parameter.name!r}; "
                f"after the message a handler may ask for {', '.join(_INJECTABLE)}"
            )
        wants.append(parameter.name)
    return tuple(wants)


class Bot:
    """Python handlers for what a rules file can't say.

    Handlers are tried in the order they were registered, before the rules file's rules; the first
    whose trigger matches answers. A contact in a conversation state goes to that state's handler
    first.
    """

    def __init__(self, *, default_reply: str = DEFAULT_REPLY) -> None:
        self.routes: list[Route] = []
        self.state_routes: dict[str, Route] = {}
        self.default_reply = default_reply
        self.fallback_route: Route | None = None

    def on(
        self,
        trigger: str | re.Pattern[str] | Iterable[str] | None = None,
        *,
        state: str | None = None,
        name: str | None = None,
    ) -> Callable[[H], H]:
        """Register a handler for a keyword, a compiled regex, or a conversation state.

        Example::

            @bot.on("hello")
            def hello(msg):
                return "Hello back to you!"

        A str (or list of str) is a keyword matched against the whole message, ignoring case,
        spacing and punctuation; ``re.compile(...)`` is searched in the message and the handler
        may ask for ``match``; ``state="order.size"`` answers contacts in that state. Besides the
        message a handler may ask for ``match`` and ``conversation`` by naming them. It returns
        a str, a Reply, or None for no reply. The function is returned unchanged.
        """
        if (trigger is None) == (state is None):
            raise TypeError("bot.on() takes a trigger or state=..., exactly one of them")

        def register(handler: H) -> H:
            route = Route(
                name=name or handler.__name__,
                handler=handler,
                matcher=matcher_for(trigger) if trigger is not None else None,
                state=state,
                wants=injected_parameters(handler),
            )
            if state is not None:
                self.state_routes[state] = route
            else:
                self.routes.append(route)
            return handler

        return register

    def fallback(self, handler: H) -> H:
        """Register the handler that answers when nothing else matched.

        Example::

            @bot.fallback
            def anything(msg):
                return f"You said {msg.body!r}."
        """
        self.fallback_route = Route(
            name=handler.__name__, handler=handler, wants=injected_parameters(handler)
        )
        return handler

    def dispatch(
        self,
        msg: Inbound,
        *,
        conversation: Conversation | None = None,
        rules: Sequence[Route] = (),
        default: Route | None = None,
    ) -> Outcome:
        """Answer ``msg``: its state's handler, then handlers, then ``rules``, then the default.

        ``default`` (a rules file's ``[default]``) replaces the bot's own default text; a
        ``@bot.fallback`` handler comes before both.
        """
        conversation = conversation if conversation is not None else Conversation()
        return (
            self.dispatch_state(msg, conversation)
            or self.dispatch_handlers(msg, conversation)
            or self.dispatch_rules(msg, conversation, rules=rules, default=default)
        )

    def dispatch_state(self, msg: Inbound, conversation: Conversation) -> Outcome | None:
        """The answer of the handler registered for the conversation's state, if there is one."""
        if conversation.state is not None and conversation.state in self.state_routes:
            route = self.state_routes[conversation.state]
            return Outcome(route.call(msg, None, conversation), f"state {route.name}")
        return None

    def dispatch_handlers(self, msg: Inbound, conversation: Conversation) -> Outcome | None:
        """The answer of the first trigger handler that matches ``msg``, if any."""
        for route in self.routes:
            assert route.matcher is not None
            match = route.matcher.match(msg.body)
            if match is not None:
                return Outcome(route.call(msg, match, conversation), f"handler {route.name}")
        return None

    def dispatch_rules(
        self,
        msg: Inbound,
        conversation: Conversation,
        *,
        rules: Sequence[Route] = (),
        default: Route | None = None,
    ) -> Outcome:
        """The first of ``rules`` that matches, else the fallback handler or the default."""
        for route in rules:
            assert route.matcher is not None
            match = route.matcher.match(msg.body)
            if match is not None:
                return Outcome(route.call(msg, match, conversation), route.name)
        if self.fallback_route is not None:
            route = self.fallback_route
            return Outcome(route.call(msg, None, conversation), f"handler {route.name}")
        if default is not None:
            return Outcome(default.call(msg, None, conversation), default.name)
        return Outcome(Reply(self.default_reply), "default")
