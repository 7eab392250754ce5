"""The ``paretolab`` command: run a campaign, look at its state."""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paretolab.flows.commands import command

__all__ = ["app"]

app = typer.Typer(
    help=(
        "paretolab: multi-objective discovery campaigns (propose → measure → track the "
        "Pareto front), orchestrated by Prefect and logged to MLflow.\n\n"
        "Start with: paretolab init branin_currin && paretolab run branin_currin.yaml"
        " (paretolab examples lists the example configs)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: a message is one line however long its paths are (the terminal may fold it;
# a log file or a pipe gets it whole); tables still fit the width
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _version(value: bool) -> None:
    if value:
        import importlib.metadata

        console.print(f"paretolab {importlib.metadata.version('paretolab')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """paretolab: multi-objective discovery campaigns."""


def _quiet_logs(verbose: bool) -> None:
    # Must happen before prefect and mlflow are imported: they configure logging at import.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        for name in ("mlflow", "alembic", "prefect"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # GP numerics (jitter added to a Cholesky factor) are routine, not news.
        warnings.filterwarnings("ignore", message="A not p.d., added jitter")


def _warnings_only_from_us(record: logging.LogRecord) -> bool:
    """The terminal's filter: paretolab's own records from WARNING up; others as they are."""
    return record.levelno >= logging.WARNING or not record.name.startswith("paretolab")


class _ProgressHandler(logging.Handler):
    """Turns the campaign's progress events into a rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress
        self.task = progress.add_task("starting (Prefect, MLflow)…", total=None)
        self.last = ""
        self.current = 0

    def emit(self, record: logging.LogRecord) -> None:
        event: dict[str, Any] = getattr(record, "paretolab", {})
        kind = event.get("event")
        if kind == "start":
            self.progress.update(
                self.task,
                total=event["total"],
                completed=event["done"],
                description=f"campaign in {event['campaign_dir']}",
            )
        elif kind == "round_start":
            self.current = event["round"]
        elif kind == "step":
            step = event["step"].replace("_", " ")
            self.progress.update(self.task, description=f"round {self.current}: {step}…  {self.last}")
        elif kind == "round":
            r, hv, calls = event["round"], event["hypervolume"], int(event["oracle_calls"])
            self.last = f"round {r}/{event['total']}  hypervolume {hv:.4g}  oracle calls {calls}"
            self.progress.update(self.task, completed=r, description=self.last)
            if not self.progress.console.is_terminal:  # a log file or pipe: one line per round
                self.progress.console.print(f"{self.last}  ({event['seconds']:.1f} s)", highlight=False)


def _pareto_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    if not rows:
        table.add_column("no valid measurement yet")
        return table
    for column in rows[0]:
        table.add_column(str(column), justify="right" if column != "candidate" else "left")
    for row in rows:
        table.add_row(*(f"{v:.5g}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


@app.command()
def run(
    config: Annotated[
        Path,
        typer.Argument(
            help="campaign YAML, e.g. campaigns/branin_currin.yaml, or the directory of an existing campaign"
        ),
    ],
    campaign_dir: Annotated[
        Path | None, typer.Option("--dir", help="campaign directory (default: runs/<name>)")
    ] = None,
    force_new: Annotated[
        bool,
        typer.Option(
            "--force-new",
            help="start over even if DIR holds a campaign with another config "
            "(the old one is kept beside it)",
        ),
    ] = False,
    rounds_per_run: Annotated[
        int | None,
        typer.Option(
            "--rounds-per-run",
            min=1,
            help="stop after closing this many rounds (for schedules; `rounds` stays the total)",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show Prefect's logs")] = False,
) -> None:
    """Run a campaign to its end (or for --rounds-per-run rounds); an existing campaign
    directory is resumed where it stopped."""
    _quiet_logs(verbose)
    from paretolab.data.store import StoreError
    from paretolab.flows.campaign_dir import prepare, stored_config_path
    from paretolab.flows.config import ConfigError
    from paretolab.flows.runtime import configure_environment

    configure_environment()
    try:
        if config.is_dir():  # a campaign directory: its own config
            campaign_dir = campaign_dir or config
            config = stored_config_path(config)
        prepared = prepare(config, campaign_dir, force_new)
    except (ConfigError, StoreError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    result = _run_with_progress(
        config, prepared.campaign_dir, campaign_dir, force_new, verbose, rounds_per_run
    )
    _print_result(result)


def _run_with_progress(
    config: Path,
    directory: Path,
    campaign_dir: Path | None,
    force_new: bool,
    verbose: bool,
    rounds_per_run: int | None = None,
) -> dict[str, Any]:
    """Run the campaign flow with a progress bar fed by its progress events; a failure
    exits with a one-line reason and how to resume."""
    from paretolab.data.store import StoreError
    from paretolab.flows.campaign import PROGRESS_LOGGER, run_campaign
    from paretolab.flows.prefect_server import ServerStartError, start_temporary_server

    if not verbose:  # a failing run's traceback goes to its Prefect logs, not the terminal
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).propagate = False
        for handler in logging.getLogger().handlers:  # our INFO lines go to Prefect, not here
            handler.addFilter(_warnings_only_from_us)

    progress_logger = logging.getLogger(PROGRESS_LOGGER)
    progress_logger.setLevel(logging.INFO)
    progress_logger.propagate = False
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        handler = _ProgressHandler(progress)
        progress_logger.addHandler(handler)
        try:
            start_temporary_server()
        except ServerStartError as exc:
            errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
        ctrl_c: list[int] = []

        def on_sigint(signum: int, frame: Any) -> None:
            ctrl_c.append(signum)
            if not verbose:  # MLflow's thread may fail on a transaction the interrupt cut (e.g.
                # sqlite "database is locked"): a rerun publishes those rounds again, so the
                # user sees the one line that says how to resume, not that noise
                for name in ("mlflow", "paretolab.flows.tracking"):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
            raise KeyboardInterrupt

        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
        try:
            state = run_campaign(str(config), str(directory), force_new, rounds_per_run, return_state=True)
            result = None if state.is_cancelled() else state.result()  # a failed run raises here
        except StoreError as exc:
            errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
        except KeyboardInterrupt:
            _interrupted(progress, config, campaign_dir)
        except Exception as exc:
            if ctrl_c:  # the interrupt surfaced wrapped (e.g. by SQLAlchemy inside MLflow)
                _interrupted(progress, config, campaign_dir)
            errors.print(
                f"[red]campaign stopped:[/] {type(exc).__name__}: {escape(str(exc))}\n"
                f"Everything measured so far is kept in {directory}; "
                f"rerun [bold]{command('paretolab')} run {config}"
                f"{' --dir ' + str(campaign_dir) if campaign_dir else ''}[/] to resume "
                "(the traceback: add -v, or see the flow run's logs in the Prefect UI).",
                highlight=False,
            )
            raise typer.Exit(EXIT_FAILED) from None
        finally:
            progress_logger.removeHandler(handler)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
    if result is None:  # cancelled: another process holds the campaign
        errors.print(f"[red]error:[/] {escape(str(state.message))}", highlight=False)
        raise typer.Exit(EXIT_FAILED)
    return result


def _interrupted(progress: Progress, config: Path, campaign_dir: Path | None) -> None:
    """Ctrl-C: one line saying how to resume, exit 130 (128 + SIGINT, as shells report it)."""
    progress.stop()
    errors.print(
        f"interrupted; everything measured so far is kept: {command('paretolab')} run {config}"
        f"{' --dir ' + str(campaign_dir) if campaign_dir else ''} resumes",
        highlight=False,
    )
    raise typer.Exit(EXIT_INTERRUPTED) from None


def _print_result(result: dict[str, Any]) -> None:
    """What a finished (or waiting) run shows: what is awaited, the front, where things are."""
    hv = result["hypervolume"]
    if result.get("awaiting"):
        wait = result["awaiting"]
        console.print(
            f"[bold]waiting for {wait['from']}[/]: round {wait['round']} sent "
            f"{wait['requested']} candidate(s), "
            f"{wait['pending']} still pending.\n"
            f"  request files: {wait['request_dir']}\n"
            f"  send results:  {command('paretolab')} submit {result['campaign_dir']} RESULTS.csv   "
            f"(or drop the file into {wait['inbox_dir']}, or Campaign.tell in Python)\n"
            f"  then continue: {command('paretolab')} run {result['campaign_dir']}",
            highlight=False,
        )
    if not hv:
        return
    console.print(_pareto_table(result["pareto_front"], "Pareto front (measured)"))
    console.print(
        f"rounds done: {result['rounds_done']} (stopped by {result['stopped_by']})   "
        f"oracle calls: {result['oracle_calls']}   "
        f"hypervolume: {hv[0]:.4g} (initial design) → {hv[-1]:.4g}"
    )
    console.print(f"campaign directory: {result['campaign_dir']}")
    console.print(f"MLflow run: {result['mlflow_run_id']} at {result['mlflow_tracking_uri']}")
    console.print(f"open the MLflow UI: [bold]{result['mlflow_ui']}[/]", highlight=False)


@app.command()
def deploy(
    config: Annotated[Path, typer.Argument(help="campaign YAML to deploy")],
    cron: Annotated[
        str | None, typer.Option("--cron", help='schedule, e.g. "0 2 * * *" (02:00 every night)')
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="the schedule's time zone")] = "UTC",
    rounds_per_run: Annotated[
        int, typer.Option("--rounds-per-run", min=1, help="rounds each scheduled or triggered run closes")
    ] = 1,
    pool: Annotated[str, typer.Option("--pool", help="process work pool (created if missing)")] = "paretolab",
    name: Annotated[
        str | None, typer.Option("--name", help="deployment name (default: the campaign's)")
    ] = None,
    campaign_dir: Annotated[
        Path | None, typer.Option("--dir", help="campaign directory (default: runs/<name>)")
    ] = None,
) -> None:
    """Deploy a campaign to the Prefect server at PREFECT_API_URL: optional cron schedule,
    one run at a time (an overlapping run is cancelled, never failed), a process worker."""
    _quiet_logs(False)
    from paretolab.flows.campaign_dir import default_campaign_dir
    from paretolab.flows.config import ConfigError, load_config
    from paretolab.flows.deploy import NoServerError, deploy_campaign

    try:
        loaded = load_config(config)
        if cron is not None:
            from prefect.client.schemas.schedules import CronSchedule

            CronSchedule(cron=cron, timezone=timezone)
        deployed = deploy_campaign(
            config,
            name=name or loaded.name,
            campaign_dir=campaign_dir or default_campaign_dir(loaded),
            work_pool=pool,
            cron=cron,
            timezone=timezone,
            rounds_per_run=rounds_per_run,
        )
    except (ConfigError, NoServerError) as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except ValueError as exc:  # pydantic: a cron expression or time zone it cannot read
        problem = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        errors.print(f"[red]error:[/] --cron/--timezone: {escape(problem)}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    when = f"on schedule {deployed.cron} ({timezone})" if deployed.cron else "when triggered"
    console.print(
        f"deployed paretolab-campaign/{deployed.name}: {rounds_per_run} round(s) per run, {when}, "
        f"one run at a time, on work pool '{deployed.work_pool}'\n"
        f"  start a worker:  prefect worker start --pool {deployed.work_pool}\n"
        f"  run it now:      prefect deployment run paretolab-campaign/{deployed.name}",
        highlight=False,
    )


@app.command()
def status(
    campaign_dir: Annotated[Path, typer.Argument(help="campaign directory, e.g. runs/branin_currin")],
) -> None:
    """Rounds done, oracle calls used, hypervolume history and the current Pareto set."""
    from paretolab.data.objectives import Objective
    from paretolab.data.store import CampaignStore, StoreError
    from paretolab.flows.engine import pareto_table
    from paretolab.flows.lab import lab_rounds

    try:
        with CampaignStore.open(campaign_dir, lock=False) as store:
            rounds = store.read("rounds")
            requests = store.read("requests")
            objectives = [Objective(*spec) for spec in store.meta["objectives"]]
            front = pareto_table(store, objectives)
            meta = store.meta
            lab = lab_rounds(store)
    except StoreError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    history = Table(title=f"campaign {meta.get('name')} ({campaign_dir})")
    for column in ("round", "hypervolume", "Pareto points", "measured", "oracle calls", "completed"):
        history.add_column(column, justify="right")
    for row in rounds.itertuples():
        history.add_row(
            str(row.round),
            f"{row.hypervolume:.5g}",
            str(row.n_pareto),
            str(row.n_observations),
            str(row.oracle_calls),
            row.completed_at[:19],
        )
    console.print(history)
    done = int(rounds["round"].max()) if len(rounds) else None
    console.print(
        f"rounds done: {'none' if done is None else done} (round 0 = the first batch)   "
        f"oracle calls used: {len(requests)}   reference point: {_raw_ref_point(meta, objectives)}"
    )
    for r, progress in lab:
        if progress.pending:
            console.print(
                f"lab: round {r} has {progress.pending} of {progress.requested} result(s) pending"
                f"{' (round closed without them)' if progress.continued else ''}; request sent "
                f"{progress.submitted_at:%Y-%m-%d %H:%M} UTC",
                highlight=False,
            )
    console.print(_pareto_table(front.to_dict("records"), "current Pareto set"))
    if meta.get("mlflow_run_id"):
        console.print(f"MLflow run {meta['mlflow_run_id']} at {meta.get('mlflow_tracking_uri')}")


@app.command()
def ui(
    where: Annotated[
        Path | None,
        typer.Argument(help="campaign directory, or a folder with mlflow.db (default: runs/mlflow.db)"),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="port on 127.0.0.1")] = 5000,
) -> None:
    """Start the MLflow UI for a local store on 127.0.0.1 and print the address of the
    campaign's run in the runs view ("Model training"); Ctrl-C stops it."""
    from paretolab.flows.mlflow_ui import UiError, find_target, start_ui, ui_url

    try:
        target = find_target(where)
        process = start_ui(target, port=port)
    except UiError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a service manager's stop ends the UI too
    try:
        url = ui_url(f"http://127.0.0.1:{port}", target.tracking_uri, target.run_id)
        console.print(
            f"MLflow UI for {target.tracking_uri}\n  open: {url}\n  (Ctrl-C stops it)", highlight=False
        )
        console.file.flush()  # a pipe or a log file sees the address now, not at exit
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except Exception:  # subprocess.TimeoutExpired: it would not stop
            process.kill()
    if process.returncode not in (0, -15, None):
        errors.print(f"[red]error:[/] mlflow ui ended with exit code {process.returncode}")
        raise typer.Exit(EXIT_FAILED)


def _example_configs() -> dict[str, Any]:
    """The example configs shipped inside the package, by name (file stem)."""
    from importlib.resources import files

    folder = files("paretolab.campaigns")
    return {p.name.removesuffix(".yaml"): p for p in folder.iterdir() if p.name.endswith(".yaml")}


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


@app.command()
def examples() -> None:
    """List the example campaign configs that ship with paretolab (see `paretolab init`)."""
    table = Table(title="example campaigns (paretolab init NAME writes NAME.yaml here)")
    table.add_column("name")
    table.add_column("about", overflow="fold")
    for name, path in sorted(_example_configs().items()):
        table.add_row(name, _first_line(path.read_text()))
    console.print(table)


@app.command()
def init(
    name: Annotated[
        str, typer.Argument(help="an example config, e.g. branin_currin (see `paretolab examples`)")
    ],
    directory: Annotated[Path, typer.Option("--to", help="folder to write NAME.yaml into")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="overwrite NAME.yaml if it exists")] = False,
) -> None:
    """Write an example campaign config into a folder, to run or edit it."""
    configs = _example_configs()
    if name.removesuffix(".yaml") not in configs:
        errors.print(
            f"[red]error:[/] no example config {name!r}; choose one of: {', '.join(sorted(configs))}",
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    name = name.removesuffix(".yaml")
    target = directory / f"{name}.yaml"
    if target.exists() and not force:
        errors.print(f"[red]error:[/] {target} exists; pass --force to overwrite it", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(configs[name].read_text())
    console.print(f"wrote {target}\nrun it with: {command('paretolab')} run {target}", highlight=False)


oracles_app = typer.Typer(help="Oracles: built-in, installed plug-ins.", no_args_is_help=True)
app.add_typer(oracles_app, name="oracles")


@oracles_app.command("list")
def oracles_list() -> None:
    """Every oracle a campaign can name (built-in and installed plug-ins) with its objectives."""
    from paretolab.oracles.registry import ENTRY_POINT_GROUP, describe_oracles

    table = Table(title="oracles (oracle: {name: NAME} in a campaign config)")
    for column in ("name", "source", "class", "objectives", "about"):
        table.add_column(column, overflow="fold" if column == "class" else "ellipsis")
    for info in describe_oracles():
        table.add_row(info.name, info.source, info.target, info.objectives, info.summary)
    # a pipe or file has no width: give the table room rather than break words at 80
    out = console if console.is_terminal else Console(width=max(console.width, 200), soft_wrap=True)
    out.print(table)
    console.print(
        f"Plug-ins register under the entry-point group '{ENTRY_POINT_GROUP}'; any Oracle subclass "
        "can also be named by import path: oracle: {target: 'package.module:Class'}.",
        highlight=False,
    )


@app.command()
def submit(
    campaign_dir: Annotated[Path, typer.Argument(help="campaign directory, e.g. runs/lab_example")],
    results: Annotated[Path, typer.Argument(help="filled-in request file (.csv or .parquet)")],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="replace values already measured (the old ones stay in the history)"),
    ] = False,
    replicates: Annotated[
        bool,
        typer.Option("--replicates", help="rows naming one candidate are replicates, each recorded"),
    ] = False,
) -> None:
    """Record a lab's results for a waiting campaign, then resume its suspended flow run.

    The whole file is checked first; a file with any problem records nothing.
    """
    _quiet_logs(False)
    from paretolab.data.results import ResultsError
    from paretolab.data.store import CampaignLockedError, CampaignStore, StoreError
    from paretolab.flows.ingest import ingest_file
    from paretolab.flows.lab import SUSPENDED_META, lab_rounds

    try:
        store = CampaignStore.open(campaign_dir)
    except CampaignLockedError as exc:
        errors.print(
            f"[red]error:[/] {escape(str(exc))}. Nothing was recorded; drop the file into the "
            f"campaign's inbox folder instead ({campaign_dir}/lab/inbox unless lab.inbox_dir says "
            "otherwise): the next run takes it in.",
            highlight=False,
        )
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except StoreError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    with store:
        try:
            outcome = ingest_file(store, results, replace=replace, replicates=replicates)
        except ResultsError as exc:
            errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        console.print(outcome.describe(), highlight=False)
        for r, progress in lab_rounds(store):
            if progress.pending:
                console.print(
                    f"round {r}: {progress.pending} of {progress.requested} candidate(s) still pending"
                )
        suspended = store.meta.get(SUSPENDED_META) if outcome.recorded else None
    if suspended:
        from paretolab.flows.waiting import resume_suspended

        try:
            console.print(f"resumed flow run {resume_suspended(suspended)}", highlight=False)
            return
        except Exception as exc:  # already resumed, API unreachable, ...
            errors.print(
                f"[yellow]warning:[/] could not resume flow run {suspended['flow_run_id']} "
                f"({type(exc).__name__}: {escape(str(exc))}); the results are recorded: resume it in "
                "the Prefect UI or run the campaign again",
                highlight=False,
            )
    console.print(f"continue the campaign: {command('paretolab')} run {campaign_dir}", highlight=False)


def _raw_ref_point(meta: dict[str, Any], objectives: list[Any]) -> str:
    import torch

    from paretolab.data.objectives import to_max_space

    if "ref_point" not in meta:
        return "not fixed yet"
    raw = to_max_space(torch.tensor(meta["ref_point"], dtype=torch.double), objectives)
    return ", ".join(f"{o.name} {v:.4g}" for o, v in zip(objectives, raw.tolist(), strict=True))


def main() -> None:
    """Entry point of the ``paretolab`` script."""
    app()
