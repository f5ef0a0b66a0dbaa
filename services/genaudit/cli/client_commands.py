"""Client commands (datasets, jobs, results, schedules, screen) talking gRPC to a gateway.

This module only declares the commands: grpc, the stubs and the transfer code are imported inside the
command bodies, so ``genaudit --help`` and the server commands do not pay for them. Every command takes
``--target`` (GENAUDIT_TARGET) and ``--api-key`` (GENAUDIT_API_KEY); output conventions and exit codes
are described in genaudit.cli.grpc_client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from genaudit.cli.grpc_client import Connection, Stubs

TargetOption = Annotated[str | None, typer.Option(
    "--target", envvar="GENAUDIT_TARGET", help="Gateway address host:port (default localhost:50051).")]
ApiKeyOption = Annotated[str | None, typer.Option(
    "--api-key", envvar="GENAUDIT_API_KEY", help="API key of your tenant.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
SpecOption = Annotated[str | None, typer.Option("--spec", help="The job type's fields as a JSON object.")]
SpecFileOption = Annotated[Path | None, typer.Option("--spec-file", help="A file holding the --spec JSON.")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="key=value of one spec field (repeatable); lists comma-separated: ids=a,b.")]
PageSizeOption = Annotated[int, typer.Option("--page-size", help="Records per page (0 = server default).")]
PageTokenOption = Annotated[str, typer.Option("--page-token", help="Continue from this page token.")]
AllPagesOption = Annotated[bool, typer.Option("--all", help="Follow every page, not just the first.")]

datasets_app = typer.Typer(help="Create datasets and upload images into them.", no_args_is_help=True)
jobs_app = typer.Typer(help="Submit, watch, cancel and list jobs.", no_args_is_help=True)
results_app = typer.Typer(help="List and download the artifacts of a job.", no_args_is_help=True)
schedules_app = typer.Typer(help="Cron schedules that submit jobs.", no_args_is_help=True)


def _connect(target: str | None, api_key: str | None) -> Connection:
    from genaudit.cli.grpc_client import Connection

    return Connection.from_options(target, api_key)


def _pages(fetch, page_size: int, page_token: str, all_pages: bool) -> tuple[list, str]:
    """Records of one page (or of every page with ``all_pages``) and the token of the next one."""
    records: list = []
    while True:
        items, page_token = fetch(page_size, page_token)
        records.extend(items)
        if not all_pages or not page_token:
            return records, page_token


def _note_next_page(token: str) -> None:
    from genaudit.cli.grpc_client import say

    if token:
        say(f"more results: --page-token {token}  (or --all)")


# --- datasets -------------------------------------------------------------------------------------------


@datasets_app.command("create")
def datasets_create(name: Annotated[str, typer.Argument(help="Name of the new dataset.")],
                    target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """Create an empty dataset and print its id."""
    from genaudit.api.v1 import datasets_pb2 as dpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, print_json, rpc_errors

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        dataset = stubs.datasets.CreateDataset(dpb.CreateDatasetRequest(name=name), metadata=conn.metadata,
                                               timeout=UNARY_TIMEOUT_S).dataset
    if json_out:
        print_json(dataset)
    else:
        typer.echo(dataset.id)


def _target_dataset(stubs: Stubs, conn: Connection, dataset_id: str | None, name: str) -> str:
    from genaudit.api.v1 import datasets_pb2 as dpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S

    if dataset_id:  # checked before any byte moves: NOT_FOUND for an unknown or foreign id
        stubs.datasets.GetDataset(dpb.GetDatasetRequest(dataset_id=dataset_id), metadata=conn.metadata,
                                  timeout=UNARY_TIMEOUT_S)
        return dataset_id
    return stubs.datasets.CreateDataset(dpb.CreateDatasetRequest(name=name), metadata=conn.metadata,
                                        timeout=UNARY_TIMEOUT_S).dataset.id


@datasets_app.command("upload")
def datasets_upload(
    folder: Annotated[Path, typer.Argument(help="Folder whose image files (recursively) are uploaded.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Upload into this existing dataset.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of a new dataset (default: folder name).")] = None,
    target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False,
) -> None:
    """Upload the images of FOLDER (presigned URLs, else the UploadImages stream) and print the dataset id."""
    from genaudit.cli.audit import image_files
    from genaudit.cli.grpc_client import err_console, print_json, rpc_errors, say, to_dict
    from genaudit.cli.uploads import PRESIGNED, PRESIGNED_THEN_STREAM, plan_files, reason_label, upload_files

    if dataset and name:
        raise typer.BadParameter("give --dataset (an existing one) or --name (a new one), not both")
    folder = folder.resolve()
    files, rejected_here = plan_files(folder, image_files(folder))
    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        dataset_id = _target_dataset(stubs, conn, dataset, name or folder.name or "dataset")
        report = upload_files(stubs, conn.metadata, dataset_id, files, err_console)
    report.rejected[:0] = rejected_here
    path = {PRESIGNED: "presigned URLs", PRESIGNED_THEN_STREAM: "presigned URLs, then the UploadImages stream"}.get(
        report.method, "the UploadImages stream")
    stored = sum(a.size_bytes for a in report.accepted)
    say(f"uploaded through {path}: {len(report.accepted)} accepted ({stored} bytes), {len(report.rejected)} rejected")
    for r in report.rejected:
        say(f" {r.filename} ({reason_label(r.reason)}): {r.message.removeprefix(f'{r.filename}: ')}",
            prefix="  rejected", style="yellow")
    say(f"dataset {dataset_id}: {report.dataset.image_count} images, {report.dataset.total_bytes} bytes")
    if json_out:
        print_json({"dataset": to_dict(report.dataset), "method": report.method,
                    "accepted": [to_dict(a) for a in report.accepted],
                    "rejected": [{**to_dict(r), "reason": reason_label(r.reason)} for r in report.rejected]})
    else:
        typer.echo(dataset_id)
    if not report.accepted:
        say(": no file was accepted", prefix="error", style="red")
        raise typer.Exit(1)


@datasets_app.command("list")
def datasets_list(page_size: PageSizeOption = 0, page_token: PageTokenOption = "", all_pages: AllPagesOption = False,
                  target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """List your datasets, newest first."""
    from genaudit.api.v1 import datasets_pb2 as dpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, out_console, print_json, rpc_errors, to_dict
    from genaudit.cli.views import datasets_table

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        def fetch(size: int, token: str):
            reply = stubs.datasets.ListDatasets(dpb.ListDatasetsRequest(page_size=size, page_token=token),
                                                metadata=conn.metadata, timeout=UNARY_TIMEOUT_S)
            return list(reply.datasets), reply.next_page_token

        datasets, token = _pages(fetch, page_size, page_token, all_pages)
    if json_out:
        print_json({"datasets": [to_dict(d) for d in datasets], "next_page_token": token})
    else:
        out_console().print(datasets_table(datasets))
        _note_next_page(token)


@datasets_app.command("get")
def datasets_get(dataset_id: Annotated[str, typer.Argument(metavar="ID", help="Dataset id.")],
                 target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """Show one dataset."""
    from genaudit.api.v1 import datasets_pb2 as dpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, out_console, print_json, rpc_errors
    from genaudit.cli.views import datasets_table

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        dataset = stubs.datasets.GetDataset(dpb.GetDatasetRequest(dataset_id=dataset_id), metadata=conn.metadata,
                                            timeout=UNARY_TIMEOUT_S).dataset
    if json_out:
        print_json(dataset)
    else:
        out_console().print(datasets_table([dataset]))


# --- jobs -----------------------------------------------------------------------------------------------


def _show_job(job, json_out: bool) -> None:
    from genaudit.cli.grpc_client import out_console, print_json
    from genaudit.cli.views import job_details

    if json_out:
        print_json(job)
    else:
        out_console().print(job_details(job))


def _finish_watch(job, json_out: bool) -> None:
    """Print the outcome of a watched job; exit 1 unless it succeeded."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import print_json, say
    from genaudit.cli.views import state_name

    if json_out:
        print_json(job)
    if job.state == jpb.JOB_STATE_SUCCEEDED:
        say(f"; artifacts: {', '.join(job.artifact_names)}", prefix=f"job {job.id} SUCCEEDED", style="green")
        return
    say(f": {job.error or job.message or 'no error given'}", prefix=f"job {job.id} {state_name(job)}", style="red")
    raise typer.Exit(1)


WatchTimeoutOption = Annotated[float | None, typer.Option("--timeout", help="Give up watching after S seconds.")]


@jobs_app.command("submit")
def jobs_submit(
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="Job type: feature_extraction, metrics, ...")],
    spec: SpecOption = None, spec_file: SpecFileOption = None, assignments: SetOption = None,
    idempotency_key: Annotated[str, typer.Option("--idempotency-key", help="Makes retries safe.")] = "",
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job until it finishes.")] = False,
    timeout: WatchTimeoutOption = None,
    target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False,
) -> None:
    """Submit a job of TYPE and print its id (with --watch: follow it; exit 1 unless it SUCCEEDED)."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, err_console, print_json, rpc_errors, say
    from genaudit.cli.job_specs import build_spec
    from genaudit.cli.views import watch_job

    job_spec = build_spec(job_type, spec, spec_file, assignments)
    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        reply = stubs.jobs.SubmitJob(jpb.SubmitJobRequest(idempotency_key=idempotency_key, spec=job_spec),
                                     metadata=conn.metadata, timeout=UNARY_TIMEOUT_S)
        if not reply.created:
            say(f"idempotency key {idempotency_key!r} was used before: this is job {reply.job.id}")
        if not watch:
            if json_out:
                print_json(reply.job)
            else:
                typer.echo(reply.job.id)
            return
        if not json_out:  # with --json, stdout gets only the final job
            typer.echo(reply.job.id)
        job = watch_job(stubs, conn.metadata, reply.job.id, err_console, timeout)
    _finish_watch(job, json_out)


@jobs_app.command("get")
def jobs_get(job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
             target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """Show one job."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, rpc_errors

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        job = stubs.jobs.GetJob(jpb.GetJobRequest(job_id=job_id), metadata=conn.metadata,
                                timeout=UNARY_TIMEOUT_S).job
    _show_job(job, json_out)


@jobs_app.command("watch")
def jobs_watch(job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")], timeout: WatchTimeoutOption = None,
               target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """Follow a job until it finishes: exit 0 if it SUCCEEDED, 1 if it FAILED or was CANCELLED."""
    from genaudit.cli.grpc_client import err_console, rpc_errors
    from genaudit.cli.views import watch_job

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        job = watch_job(stubs, conn.metadata, job_id, err_console, timeout)
    _finish_watch(job, json_out)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
                target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """Request cancellation (a queued job stops at once, a running one when its worker notices)."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, rpc_errors

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        job = stubs.jobs.CancelJob(jpb.CancelJobRequest(job_id=job_id), metadata=conn.metadata,
                                   timeout=UNARY_TIMEOUT_S).job
    _show_job(job, json_out)


def _state_values(states: list[str]) -> list[int]:
    from genaudit.api.v1 import jobs_pb2 as jpb

    values = []
    for state in states:
        name = state.strip().upper().removeprefix("JOB_STATE_")
        names = list(jpb.JobState.keys())  # an EnumTypeWrapper is not a dict: `in` needs the key list
        if name == "UNSPECIFIED" or f"JOB_STATE_{name}" not in names:
            known = [k.removeprefix("JOB_STATE_").lower() for k in names if not k.endswith("UNSPECIFIED")]
            raise typer.BadParameter(f"unknown state {state!r}; known: {', '.join(known)}")
        values.append(jpb.JobState.Value(f"JOB_STATE_{name}"))
    return values


@jobs_app.command("list")
def jobs_list(
    state: Annotated[list[str] | None, typer.Option("--state", help="Only jobs in this state (repeatable).")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")] = None,
    page_size: PageSizeOption = 0, page_token: PageTokenOption = "", all_pages: AllPagesOption = False,
    target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False,
) -> None:
    """List your jobs, newest first."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, out_console, print_json, rpc_errors, to_dict
    from genaudit.cli.job_specs import job_type_enum
    from genaudit.cli.views import jobs_table

    states = _state_values(state or [])
    type_value = job_type_enum(job_type) if job_type else jpb.JOB_TYPE_UNSPECIFIED
    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        def fetch(size: int, token: str):
            reply = stubs.jobs.ListJobs(jpb.ListJobsRequest(page_size=size, page_token=token, states=states,
                                                            job_type=type_value),
                                        metadata=conn.metadata, timeout=UNARY_TIMEOUT_S)
            return list(reply.jobs), reply.next_page_token

        jobs, token = _pages(fetch, page_size, page_token, all_pages)
    if json_out:
        print_json({"jobs": [to_dict(j) for j in jobs], "next_page_token": token})
    else:
        out_console().print(jobs_table(jobs))
        _note_next_page(token)


# --- results --------------------------------------------------------------------------------------------


@results_app.command("list")
def results_list(job_id: Annotated[str, typer.Argument(help="Job id.")],
                 target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """List the artifacts of a job (empty until it has succeeded)."""
    from genaudit.cli.downloads import list_artifacts
    from genaudit.cli.grpc_client import out_console, print_json, rpc_errors
    from genaudit.cli.views import artifacts_table

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        listing = list_artifacts(stubs, conn.metadata, job_id)
    if json_out:
        print_json(listing)
    else:
        out_console().print(artifacts_table(list(listing.artifacts)))


@results_app.command("fetch")
def results_fetch(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    names: Annotated[list[str] | None, typer.Argument(help="Artifact names (default: all).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder to write the artifacts into.")] = Path("."),
    target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False,
) -> None:
    """Download artifacts of a job into --out (presigned URL when offered, else the FetchArtifact stream)."""
    from genaudit.cli.downloads import fetch_artifacts
    from genaudit.cli.grpc_client import err_console, print_json, rpc_errors

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        written = fetch_artifacts(stubs, conn.metadata, job_id, names or [], out, err_console)
    if json_out:
        print_json({a.name: {"path": str(p), "size_bytes": a.size_bytes, "via": via} for a, p, via in written})
    else:
        for _, path, _ in written:
            typer.echo(str(path))


# --- schedules ------------------------------------------------------------------------------------------


@schedules_app.command("create")
def schedules_create(
    cron: Annotated[str, typer.Argument(help='Five-field cron expression in UTC, e.g. "0 3 * * *".')],
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="Job type: feature_extraction, metrics, ...")],
    spec: SpecOption = None, spec_file: SpecFileOption = None, assignments: SetOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Schedule name (default: TYPE and CRON).")] = None,
    target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False,
) -> None:
    """Create a schedule submitting a TYPE job of the given spec at every CRON time; print its id."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, print_json, rpc_errors
    from genaudit.cli.job_specs import build_spec

    job_spec = build_spec(job_type, spec, spec_file, assignments)
    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        request = jpb.CreateScheduleRequest(name=name or f"{job_type} {cron}", cron=cron, spec=job_spec)
        schedule = stubs.schedules.CreateSchedule(request, metadata=conn.metadata, timeout=UNARY_TIMEOUT_S).schedule
    if json_out:
        print_json(schedule)
    else:
        typer.echo(schedule.id)


@schedules_app.command("list")
def schedules_list(target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False) -> None:
    """List your schedules."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, out_console, print_json, rpc_errors
    from genaudit.cli.views import schedules_table

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        reply = stubs.schedules.ListSchedules(jpb.ListSchedulesRequest(), metadata=conn.metadata,
                                              timeout=UNARY_TIMEOUT_S)
    if json_out:
        print_json(reply)
    else:
        out_console().print(schedules_table(list(reply.schedules)))


@schedules_app.command("delete")
def schedules_delete(schedule_id: Annotated[str, typer.Argument(metavar="ID", help="Schedule id.")],
                     target: TargetOption = None, api_key: ApiKeyOption = None) -> None:
    """Stop and remove a schedule."""
    from genaudit.api.v1 import jobs_pb2 as jpb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, rpc_errors, say

    conn = _connect(target, api_key)
    with rpc_errors(), conn.stubs() as stubs:
        stubs.schedules.DeleteSchedule(jpb.DeleteScheduleRequest(schedule_id=schedule_id), metadata=conn.metadata,
                                       timeout=UNARY_TIMEOUT_S)
    say(f"schedule {schedule_id} deleted")


# --- screen ---------------------------------------------------------------------------------------------


def screen(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Image files to screen.")],
    target: TargetOption = None, api_key: ApiKeyOption = None, json_out: JsonOption = False,
) -> None:
    """Is each IMAGE generated by a CNN? Prints probability, label, threshold and model version.

    A file the gateway refuses (not an image, over a limit) is reported and the others are still
    screened (exit 2 at the end); any other error stops at once.
    """
    import grpc

    from genaudit.api.v1 import screening_pb2 as spb
    from genaudit.cli.grpc_client import UNARY_TIMEOUT_S, out_console, print_json, rpc_errors, say, to_dict
    from genaudit.cli.views import screen_table

    conn = _connect(target, api_key)
    rows, failed = [], 0
    with rpc_errors(), conn.stubs() as stubs:
        for path in images:
            try:
                data = path.read_bytes()
            except OSError as exc:
                say(f" {path}: cannot read: {exc.strerror}", prefix="error", style="red")
                failed += 1
                continue
            try:
                reply = stubs.screening.Screen(spb.ScreenRequest(image=data, filename=path.name),
                                               metadata=conn.metadata, timeout=UNARY_TIMEOUT_S)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                say(f" INVALID_ARGUMENT {path}: {exc.details()}", prefix="error", style="red")
                failed += 1
                continue
            rows.append((str(path), reply))
    if json_out:
        print_json([{"image": name, **to_dict(reply)} for name, reply in rows])
    elif rows:
        out_console().print(screen_table(rows))
    if failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(results_app, name="results")
    app.add_typer(schedules_app, name="schedules")
    app.command()(screen)
