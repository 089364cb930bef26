"""The flags `serve up`, `serve update` and `serve validate` share, spelled as `sky serve up`
spells them; each command gathers the resource ones into a `ResourceFlags`, and what they do
to the YAML is `controller.spec.overrides`."""

from __future__ import annotations

from typing import Annotated

import typer

PANEL = "Resource overrides (over the YAML, in every any_of/ordered candidate)"
RESET = "'none' removes the YAML's value"

Infra = Annotated[
    str | None,
    typer.Option(
        "--infra",
        help="where replicas run: CLOUD, CLOUD/REGION or CLOUD/REGION/ZONE ('*' for any "
        "part), e.g. aws/us-east-1 or gcp/*/us-central1-a; sets cloud, region and zone "
        "together (a part left out is cleared); not with --cloud/--region/--zone",
        rich_help_panel=PANEL,
    ),
]
Cloud = Annotated[
    str | None,
    typer.Option("--cloud", help=f"resources.cloud ({RESET}, as does '*')", rich_help_panel=PANEL),
]
Region = Annotated[
    str | None,
    typer.Option(
        "--region", help=f"resources.region ({RESET}, as does '*')", rich_help_panel=PANEL
    ),
]
Zone = Annotated[
    str | None,
    typer.Option("--zone", help=f"resources.zone ({RESET}, as does '*')", rich_help_panel=PANEL),
]
Gpus = Annotated[
    str | None,
    typer.Option(
        "--gpus",
        help=f"resources.accelerators, e.g. A100:4 or L4 (one); {RESET}",
        rich_help_panel=PANEL,
    ),
]
Cpus = Annotated[
    str | None,
    typer.Option(
        "--cpus",
        help=f"vCPUs per replica: 4 (exactly) or 4+ (at least); {RESET}",
        rich_help_panel=PANEL,
    ),
]
Memory = Annotated[
    str | None,
    typer.Option(
        "--memory",
        help=f"GiB per replica: 16 (exactly) or 16+ (at least); {RESET}",
        rich_help_panel=PANEL,
    ),
]
UseSpot = Annotated[
    bool | None,
    typer.Option(
        "--use-spot/--no-use-spot",
        help="resources.use_spot in every candidate",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]

ENV_HELP = "KEY=VALUE, or KEY to take its value from your environment (repeatable)"
Envs = Annotated[
    list[str] | None,
    typer.Option("--env", help=f"an env for the replicas: {ENV_HELP}", rich_help_panel=PANEL),
]
Secrets = Annotated[
    list[str] | None,
    typer.Option("--secret", help=f"a secret for the replicas: {ENV_HELP}", rich_help_panel=PANEL),
]
