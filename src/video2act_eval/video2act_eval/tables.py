"""Result tables in the docs are written by the tools that measure them: the
block between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in a
Markdown file is replaced by a tool's `--docs FILE` option (the benchmark's
and the evaluation's), headed by the command that made it and the date, so
a changed result replaces its table rather than being copied by hand."""

from __future__ import annotations

import datetime
import shlex
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- results:{name} -->", f"<!-- /results:{name} -->"


def write_block(path: Path, name: str, body: str, command: list[str]) -> None:
    """Replace block `name` of the Markdown file at `path` with `body`,
    headed by the `command` that measured it and today's date.

    Raises:
        ValueError: the file has no such block, naming the markers to add.
    """
    begin, end = markers(name)
    text = path.read_text()
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"{path} needs one block `{begin}` ... `{end}` for the table")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    made = f"Written by `{shlex.join(command)}` on {datetime.date.today().isoformat()}."
    path.write_text(f"{head}{begin}\n{made}\n\n{body.strip()}\n{end}{tail}")
