"""Entry point of the ``ckpt`` command."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """ckpt: a content-addressed checkpoint store for long pipelines."""


def main() -> None:
    cli()
