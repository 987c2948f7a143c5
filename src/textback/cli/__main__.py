"""``python -m textback.cli``: the same as the ``textback`` command."""

from textback.cli import main

main()
