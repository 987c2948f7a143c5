"""The ``textback`` command group, and the one place a TextbackError becomes a clean exit."""

from __future__ import annotations

from typing import Any

import click

from textback.errors import TextbackError


class TextbackGroup(click.Group):
    """A click group whose commands end with one clear line, never a traceback, when the
    user's configuration, rules file or input is wrong (any TextbackError)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TextbackError as exc:
            click.echo(f"textback: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=TextbackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textback")
def main() -> None:
    """textback: answer SMS text messages from a rules file or Python, securely."""
