"""``textback init [FOLDER]``: a project of one's own, from the files in ``textback/project``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import click

from textback.cli.group import main
from textback.errors import TextbackError

# (where it goes in the project, the packaged file it comes from). Templates of Python files and
# dotfiles are stored under other names, so that neither our lint nor the packaging treat them
# as part of textback.
PROJECT_FILES = (
    ("textback.toml", "textback.toml"),
    ("bot.py", "bot.py.txt"),
    ("tests/test_bot.py", "test_bot.py.txt"),
    ("pyproject.toml", "pyproject.toml.txt"),
    (".env.example", "env.example"),
    (".gitignore", "gitignore.txt"),
    ("README.md", "README.md"),
)
NAME_MARK = "PROJECT_NAME"


class ProjectExists(TextbackError):
    """``textback init`` found files of a project where it would write one."""


def write_project(folder: Path) -> list[Path]:
    """Write a new project into ``folder`` (made if missing); the files written, in order.

    All or nothing: if any of the files is already there, nothing is written, because the
    project's tests expect its own rules file and bot.
    """
    existing = [name for name, _ in PROJECT_FILES if (folder / name).exists()]
    if existing:
        where = "" if folder == Path() else f"{folder}: "
        raise ProjectExists(
            f"{where}{', '.join(existing)} already {'exists' if len(existing) == 1 else 'exist'}"
            "; textback init never overwrites a file: give it a new folder"
        )
    templates = files("textback") / "project"
    name = folder.resolve().name
    written = []
    for target, source in PROJECT_FILES:
        path = folder / target
        text = (templates / source).read_text(encoding="utf-8").replace(NAME_MARK, name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # "x": a file that appeared since the check above is still never overwritten
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise ProjectExists(
                f"{path} already exists; textback init never overwrites a file"
            ) from None
        except OSError as exc:
            raise TextbackError(f"cannot write {path}: {exc.strerror}") from exc
        written.append(path)
    return written


@main.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(folder: Path) -> None:
    """Write a new project into FOLDER [.]: rules, a bot, tests, settings, next steps."""
    for path in write_project(folder):
        click.echo(f"created {path}")
    where = "" if folder == Path() else f"cd {folder} && "
    click.echo(f"next: {where}textback run   (README.md has the next steps)")
