"""`ml service ...`: see, call, change and delete deployed services (`az ml service`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mlcli.cli.deploy import (
    DEPLOYMENT_NAMES,
    TABLE_COLUMNS,
    deployment_options,
    deployment_overrides,
    inference_config,
    inference_options,
    model_refs,
    roll_out,
)
from mlcli.cli.options import (
    OUTPUT_FORMATS,
    common_options,
    global_options,
    parse_pairs,
    workspace_name,
    workspace_options,
)
from mlcli.cli.output import emit, warn
from mlcli.errors import ConfigError

_NAME = click.option("-n", "--name", required=True, help="Service name.")


@click.group()
def service() -> None:
    """List, show, call, update and delete services; read their logs and keys."""


@service.command("list")
@click.option(
    "-c",
    "--compute-type",
    type=click.Choice(["PROCESS", "LOCAL", "ACI", "AKS"], case_sensitive=False),
    help="Only this computeType.",
)
@click.option("--model-name", help="Only services running a version of this model.")
@click.option("--model-id", metavar="NAME:N", help="Only services running this model version.")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", help="Having this tag.")
@click.option(
    "--property", "properties", multiple=True, metavar="KEY[=VALUE]", help="Having this property."
)
@common_options
def list_(
    compute_type: str | None,
    model_name: str | None,
    model_id: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    output: str,
    query: str | None,
) -> None:
    """List services with their real state (each server is probed).

    \b
    Example:
        ml service list -o table
        ml service list --model-name sentiment --query "[].scoringUri" -o tsv
    """
    from mlcli.deploy import list_services

    documents = list_services(
        workspace=workspace_name(),
        compute_type=compute_type,
        model_name=model_name,
        model_id=model_id,
        tags=parse_pairs(tags, "--tag", value_required=False),
        properties=parse_pairs(properties, "--property", value_required=False),
    )
    for document in documents:
        if document.get("state") == "Unhealthy":
            name = document.get("name")
            warn(f"{name} is Unhealthy (its server is down): `ml service restart -n {name}`")
    emit(documents, output, query, columns=TABLE_COLUMNS)


@service.command("show")
@_NAME
@common_options
def show(name: str, output: str, query: str | None) -> None:
    """Show a service: state (probed now), scoring URI, models, settings.

    \b
    Example:
        ml service show -n sentiment-svc --query scoringUri -o tsv
    """
    from mlcli.deploy import show as show_service

    emit(show_service(name, workspace=workspace_name()), output, query, columns=TABLE_COLUMNS)


@service.command("get-logs")
@_NAME
@click.option(
    "-l", "--num_lines", "--num-lines", "num_lines", type=click.IntRange(1), help="Last N lines."
)
@click.option("-i", "--init", is_flag=True, help="The deploy log (environment build, start-up).")
@click.option("--follow", is_flag=True, help="Keep printing new lines while the server runs.")
@click.option(
    "--readable/--raw",
    default=None,
    help="One readable line per record (the default on a terminal), or the server's JSON "
    "lines as they are (the default in a pipe).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
    help="Lines when omitted; json, yaml... give {name, logs: [lines]}.",
)
@click.option("--query", metavar="JMESPATH", help="JMESPath query (with -o).")
@workspace_options
@global_options
def get_logs(
    name: str,
    num_lines: int | None,
    init: bool,
    follow: bool,
    readable: bool | None,
    output: str | None,
    query: str | None,
) -> None:
    """Print a service's log: the scoring server's output (init(), prints, requests).

    \b
    Example:
        ml service get-logs -n sentiment-svc -l 50
        ml service get-logs -n sentiment-svc --follow
        ml service get-logs -n sentiment-svc --raw | jq .message
    """
    from mlcli.deploy import logs

    lines = logs(name, tail=num_lines, follow=follow, init=init, workspace=workspace_name())
    if output is None and query is None:
        if readable is None:
            readable = sys.stdout.isatty()
        if readable:
            from mlcli.cli.logs import readable as as_readable

            lines = (as_readable(line) for line in lines)
        for line in lines:
            click.echo(line)
        return
    if follow:
        raise ConfigError("--follow prints plain text.", where="--follow", fix="Drop -o/--query.")
    emit({"name": name, "logs": list(lines)}, output or "json", query)


@service.command("delete")
@_NAME
@click.option(
    "--purge",
    is_flag=True,
    help="Also remove what no other service uses: LOCAL/ACI the service's images (never the "
    "base image), PROCESS its model environment. Listed under purged, with what stayed and why.",
)
@common_options
def delete(name: str, purge: bool, output: str, query: str | None) -> None:
    """Stop a service's server and remove the service.

    \b
    Example:
        ml service delete -n sentiment-svc
        ml service delete -n sentiment-svc --purge --query purged -o table
    """
    from mlcli.deploy import delete as delete_service

    document = delete_service(name, purge=purge, workspace=workspace_name())
    emit(document, output, query, columns=TABLE_COLUMNS)


@service.command("run")
@_NAME
@click.option(
    "-d",
    "--input-data",
    required=True,
    help="The request body (JSON), or @FILE to read it from a file, or - for stdin.",
)
@common_options
def run(name: str, input_data: str, output: str, query: str | None) -> None:
    """Call a service's scoring URI with a request body; print the answer.

    \b
    Example:
        ml service run -n sentiment-svc -d '{"data": [[1, 2, 3, 4]]}'
        ml service run -n sentiment-svc -d @request.json
    """
    from mlcli.deploy import run as run_service

    streamed = []

    def show(piece: str) -> None:  # a streamed answer is printed as its pieces arrive
        streamed.append(piece)
        click.echo(piece, nl=False)

    answer = run_service(name, _body(input_data), workspace=workspace_name(), on_piece=show)
    if streamed:
        if not answer.endswith("\n"):
            click.echo()
        return
    emit(answer, output, query)


@service.command("update")
@_NAME
@click.option("-m", "--model", "models", multiple=True, metavar="NAME:N", help="Repeatable.")
@click.option("-f", "--model-metadata-file", type=click.Path(path_type=Path, dir_okay=False))
@inference_options
@deployment_options
@click.option("--add-tag", "add_tags", multiple=True, metavar="KEY=VALUE", help="Add a tag.")
@click.option("--remove-tag", "remove_tags", multiple=True, metavar="KEY", help="Remove a tag.")
@click.option(
    "--add-property", "add_properties", multiple=True, metavar="KEY=VALUE", help="Add a property."
)
@click.option("--description", help="New description.")
@click.option("--no-wait", is_flag=True, help="Return once the new server is started.")
@common_options
def update(
    name: str,
    models: tuple[str, ...],
    model_metadata_file: Path | None,
    add_tags: tuple[str, ...],
    remove_tags: tuple[str, ...],
    add_properties: tuple[str, ...],
    description: str | None,
    no_wait: bool,
    output: str,
    query: str | None,
    **flags: Any,
) -> None:
    """Change a service: new models or configs roll out with no failed request, same URI.

    \b
    Example:
        ml service update -n sentiment-svc -m sentiment:2
        ml service update -n sentiment-svc --add-tag stage=prod
    """
    from mlcli import config
    from mlcli.deploy import UpdateRequest
    from mlcli.deploy import update as update_service

    dc_file = flags.pop("dc")
    request = UpdateRequest(
        name=name,
        models=model_refs(models, model_metadata_file),
        inference=inference_config(flags),
        deployment=config.load_deployment_config(dc_file) if dc_file else None,
        overrides=deployment_overrides(flags),
        override_names=DEPLOYMENT_NAMES,
        add_tags=parse_pairs(add_tags, "--add-tag"),
        remove_tags=remove_tags,
        add_properties=parse_pairs(add_properties, "--add-property"),
        description=description,
        wait=not no_wait,
    )
    roll_out(f"Updating {name}", update_service, request, output, query, on_warning=warn)


@service.command("restart")
@_NAME
@click.option(
    "--no-wait", is_flag=True, help="Return at once; the restart finishes in the background."
)
@common_options
def restart(name: str, no_wait: bool, output: str, query: str | None) -> None:
    """Start a service's current revision again: same models, configs and URI, a new server.

    For a server that died (killed, out of memory, the machine rebooted): `ml service list`
    shows it Unhealthy. No request is dropped if the old server still answers.

    \b
    Example:
        ml service restart -n sentiment-svc
    """
    from mlcli.deploy import restart as restart_service

    roll_out(f"Restarting {name}", restart_service, name, output, query, wait=not no_wait)


@service.command("get-keys")
@_NAME
@common_options
def get_keys(name: str, output: str, query: str | None) -> None:
    """Print a service's primary and secondary keys (services with authEnabled).

    \b
    Example:
        ml service get-keys -n sentiment-svc --query primaryKey -o tsv
    """
    from mlcli.deploy import get_keys as read_keys

    emit(read_keys(name, workspace=workspace_name()), output, query)


@service.command("regen-key")
@_NAME
@click.option(
    "-k",
    "--key",
    required=True,
    type=click.Choice(["Primary", "Secondary"], case_sensitive=False),
    help="Which key to replace.",
)
@click.option("-s", "--set-key", help="Use this value instead of a random one.")
@common_options
def regen_key(name: str, key: str, set_key: str | None, output: str, query: str | None) -> None:
    """Replace a key; the running server takes it at once (no redeploy).

    \b
    Example:
        ml service regen-key -n sentiment-svc -k Secondary
    """
    from mlcli.deploy import regen_key as regenerate

    emit(regenerate(name, key, value=set_key, workspace=workspace_name()), output, query)


@service.command("get-access-token")
@_NAME
@common_options
def get_access_token(name: str, output: str, query: str | None) -> None:
    """Token auth (AKS tokenAuthEnabled) is not available; services use keys.

    \b
    Example:
        ml service get-keys -n sentiment-svc
    """
    raise ConfigError(
        f"service {name!r}: token authentication is an AKS feature mlcli does not provide.",
        where="get-access-token",
        fix="Deploy with --ae true and call with `Authorization: Bearer <key>` "
        "(see `ml service get-keys`).",
    )


@service.command("collected-data")
@_NAME
@click.option(
    "--designation",
    type=click.Choice(["inputs", "predictions", "labels", "signals", "general"]),
    default="inputs",
    show_default=True,
    help="What ModelDataCollector was told the data is.",
)
@click.option("--since", metavar="WHEN", help="Only rows since: 30m, 12h, 1d, 2w or a date.")
@click.option("--model", "model_name", metavar="NAME", help="Only this model's rows.")
@click.option(
    "-o",
    "--output",
    type=click.Choice((*OUTPUT_FORMATS, "csv"), case_sensitive=False),
    default="json",
    show_default=True,
    help="Output format; csv writes the rows with a header line.",
)
@click.option("--query", metavar="JMESPATH", help='JMESPath query on the rows, e.g. "[].feat1".')
@workspace_options
@global_options
def collected_data(
    name: str,
    designation: str,
    since: str | None,
    model_name: str | None,
    output: str,
    query: str | None,
) -> None:
    """Print the rows a service's ModelDataCollector collected (collectModelData).

    \b
    Example:
        ml service collected-data -n sentiment-svc --since 1d -o table
        ml service collected-data -n sentiment-svc --designation predictions -o csv > p.csv
    """
    from mlcli.collected import parse_since, read_collected
    from mlcli.paths import Workspace

    data = read_collected(
        name,
        designation=designation,
        since=parse_since(since) if since else None,
        model=model_name,
        workspace=Workspace.named(workspace_name()),
    )
    if not data.rows:
        warn(
            f"service {name!r} has no {designation} rows"
            + (f" since {since}" if since else "")
            + " (is collectModelData on, and does its entry script collect this designation?)."
        )
    if output.lower() == "csv":
        _emit_csv(data.columns, data.rows, query)
    else:
        emit(data.rows, output, query)


@service.command("metrics")
@_NAME
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Read /metrics twice, this far apart, and report the requests in between "
    "(default: everything since the server started).",
)
@common_options
def metrics(name: str, interval: float | None, output: str, query: str | None) -> None:
    """Requests, errors, latency percentiles, throughput, batch sizes, collection drops.

    Read from the service's own Prometheus /metrics.

    \b
    Example:
        ml service metrics -n sentiment-svc -o table
        ml service metrics -n sentiment-svc --interval 10 --query latencyMs.p99
    """
    from mlcli.service_metrics import as_rows, service_metrics

    document = service_metrics(name, interval_s=interval, workspace=workspace_name())
    if output.lower() == "table" and not query:
        emit(as_rows(document), output)
    else:
        emit(document, output, query)


def _emit_csv(columns: tuple[str, ...], rows: list[dict[str, Any]], query: str | None) -> None:
    import csv

    from mlcli.cli.output import apply_query

    if query:
        rows = apply_query(rows, query)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ConfigError(
                "-o csv needs the query to give a list of rows (objects).",
                where="--query",
                fix='Select rows, e.g. "[?feat1 > `2`]", or use -o json.',
            )
        columns = tuple(dict.fromkeys(key for row in rows for key in row))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row.get(column, "") for column in columns] for row in rows)


def _body(input_data: str) -> bytes:
    if input_data == "-":
        return sys.stdin.buffer.read()
    if input_data.startswith("@"):
        path = Path(input_data[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}.",
                where="-d/--input-data",
                fix="Give the request body, or @FILE naming a readable file.",
            ) from exc
    return input_data.encode("utf-8")
