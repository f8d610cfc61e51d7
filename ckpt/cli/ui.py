"""The web dashboard: ``ui``."""

from __future__ import annotations

import os
import sys

import click

from ckpt.cli import output as out
from ckpt.cli.context import settings


def _can_open_a_browser() -> bool:
    """False where a browser would take over the terminal (no display on Linux)."""
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


@click.command("ui")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; one that is not loopback needs --allow-remote.",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host that other machines can reach: anyone who reaches it reads the "
    "whole store (there is no authentication).",
)
@click.option(
    "--open/--no-open",
    "open_browser",
    default=None,
    help="Open the dashboard in a web browser (default: when there is a display).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between looks at the store for live updates.",
)
def ui(
    host: str, port: int, allow_remote: bool, open_browser: bool | None, interval: float
) -> None:
    """Serve a live web dashboard of the store until Ctrl-C.

    It shows jobs, history graphs, costs, values, diffs and verify, updated
    live while jobs run in other processes.

    The dashboard only reads the store.  It listens on loopback (127.0.0.1)
    unless --host names another address, which also needs --allow-remote:
    there is no authentication, so anyone who can reach the port can read
    every job and value.  The pages are described in docs/ui.md, and their
    JSON API (the documents of the --json options) in docs/cli.md.
    """
    from ckpt.ui.server import Dashboard, is_loopback

    if not is_loopback(host) and not allow_remote:
        raise click.UsageError(
            f"--host {host} is not loopback: the dashboard has no authentication, so anyone "
            "who can reach it reads the whole store; add --allow-remote to serve it anyway"
        )
    dashboard = Dashboard(
        settings().store, host=host, port=port, interval=interval, allow_remote=allow_remote
    )
    if not is_loopback(host):
        out.echo(
            out.style("Warning:", fg="red", bold=True)
            + f" serving on {host} with no authentication: anyone who can reach port "
            f"{dashboard.port} can read every job and value in the store.",
            err=True,
        )
    out.echo(f"Serving {dashboard.location} at {dashboard.url} (Ctrl-C to stop)")
    sys.stdout.flush()
    if open_browser or (open_browser is None and _can_open_a_browser()):
        import webbrowser

        webbrowser.open(dashboard.url)
    try:
        dashboard.serve_forever()
    except KeyboardInterrupt:
        out.echo("Stopped.")
    finally:
        dashboard.shutdown()
