"""The ``genaudit`` command line: servers (serve, worker, beat), the embedded audit, and gRPC clients.

Heavy modules (torch, celery, grpc stubs) are imported inside the commands, so ``genaudit --help`` is
fast and the worker can set up Prometheus' multiprocess directory before anything imports the client.
"""

from __future__ import annotations

import typer

from genaudit.cli import audit, client_commands, forensics_commands, server_commands, single_image_commands

app = typer.Typer(
    name="genaudit", help="Audit generative image models: rarity, set metrics, deepfake screening.",
    no_args_is_help=True, pretty_exceptions_show_locals=False,
)
server_commands.register(app)
audit.register(app)
client_commands.register(app)
forensics_commands.register(app)
single_image_commands.register(app)
