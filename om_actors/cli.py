"""The ``om-actors`` command: a thin layer of click and rich over the public API.

Exit statuses are part of the interface, so scripts can rely on them:
0 when the outcome is what the scenario expects (success, without
``expect``), 1 when it is not, 2 for input we could not use.

Each command imports what it runs inside its own function, and the
options' choices and defaults come from modules that import nothing heavy,
so ``--help``, ``--version`` and every TAB of shell completion cost little
more than click itself: trio, rich, numpy and the network stack load only
for a command that uses them.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import click

from . import __version__
from .guarded_stdout import GuardedStdout
from .limits import (
    ADVERSARIES,
    BATCHED_ABOVE,
    COMPARE_BUDGET,
    DEFAULT_MAX_MESSAGES,
    LIMIT_VARIABLE,
    VERIFY_BUDGET,
)
from .registry import DEFAULT_ALGORITHM, REGISTRY
from .terminal import markup, printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from .compare import Row
    from .errors import OmActorsError
    from .log import LogLine, ReadProgress
    from .orchestrator import Mode, ProgressHandler
    from .replay import Divergence
    from .scenario import Scenario
    from .verify import Adversary, CaseReport, Counts, Executor, Tally

PROGRESS_ABOVE = {"per-message": 20_000, "batched": 1_000_000}
"""Messages above which a run shows a progress bar on a terminal, by mode: a few tenths of a second."""
READ_PROGRESS_ABOVE = 2_000_000
"""Bytes of log above which reading it (replay, a page) shows a progress bar on a terminal: about a second."""
BIG_LOG_MESSAGES = 1_000_000
BYTES_PER_LOGGED_MESSAGE = 105
MEMORY_PER_LOGGED_MESSAGE = 350
"""Bytes a batched run's message takes while its round waits to be logged in order."""
"""Above this many messages, logging every one earns a warning of the file's size."""


STDIN = "-"
"""``run -`` reads the scenario from standard input; ``--log -`` writes the log to standard output."""
JSON_COMMANDS = frozenset({"run", "cluster", "verify", "compare"})
"""The commands whose ``--json`` promises one JSON object, errors included."""
INSTALL = {
    "numpy": "'om_actors[fast]'",
    "httpx": "'om_actors[net]'",
    "cryptography": "cryptography",
    "hypercorn": "'om_actors[net]'",
    "trio_parallel": "trio-parallel",
    "distributed": "'om_actors[dask]'",
    "dask": "'om_actors[dask]'",
}
"""What to install for each package only some commands import, and only when they run."""


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _LogFile:
    """The ``--log`` file: opened at the run's first event, its failures a :class:`CannotWrite`.

    Opened by the run, not before it, so a scenario whose strategies cannot
    be built leaves an existing log as it was, as :func:`simulate` promises
    for a log it opens itself.  The first failure is raised; once the run
    is ending for it, later writes and the final close are not tried again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._failed = False

    @classmethod
    @contextmanager
    def writing(cls, path: Path | None) -> Iterator[IO[bytes] | None]:
        """A binary file for :func:`simulate`'s ``log``, closed afterwards; ``None`` without a path."""
        if path is None or str(path) == STDIN:
            yield None
            return
        log = cls(path)
        try:
            yield cast(IO[bytes], log)  # write, writelines and flush are all a log writer calls
        finally:
            log.close()

    def write(self, data: bytes) -> int:
        self._attempt(lambda file: file.write(data))
        return len(data)

    writes_lines_as_write = True
    """For :class:`~om_actors.log.LogWriter`, which writes a round's lines in one call where it may."""

    def writelines(self, lines: Iterable[bytes]) -> None:
        """A round's lines in one attempt, each as :meth:`write` would write it."""
        self._attempt(lambda file: file.writelines(lines))

    def flush(self) -> None:
        if self._file is not None:
            self._attempt(lambda file: file.flush())

    def close(self) -> None:
        """Close the file; the failure to flush its last lines is raised, unless an earlier one was."""
        file = self._file
        if file is None:
            return
        try:
            self._attempt(lambda file: file.close())
        finally:
            with suppress(OSError):  # after a failure, or when closing failed: let go of the descriptor
                file.close()
            self._file = None

    def _attempt(self, action: Callable[[IO[bytes]], object]) -> None:
        if self._failed:
            return
        try:
            if self._file is None:
                self._file = open(self.path, "wb")  # noqa: SIM115 -- closed by close()
            action(self._file)
        except OSError as exc:
            from .errors import CannotWrite

            self._failed = True
            raise CannotWrite(f"the log {self.path}", exc) from None


class _JsonError(click.ClickException):
    """Unusable input under ``--json``: the error object on stdout, exit status 2, nothing else."""

    exit_code = 2

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error["error"]))
        self.error = error

    def show(self, file: Any = None) -> None:
        click.echo(json.dumps(self.error, indent=2))


@contextmanager
def _click_errors_as_json(wanted: bool) -> Iterator[None]:
    """Click's own errors (usage, bad values) as the JSON error object, when ``--json`` was asked for."""
    try:
        yield
    except click.ClickException as exc:
        if wanted and not isinstance(exc, _JsonError):
            raise _JsonError(_error_object(exc)) from None
        raise


class _MissingDependency(click.ClickException):
    """A package a command imports as it runs, not installed: one line naming what to install, exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _Command(click.Command):
    """A command whose dependencies, imported as it runs, are named when missing instead of a traceback.

    Ctrl-C ends any command with ``interrupted`` and exit status 130, as
    a shell expects; click alone says ``Aborted!`` and exits 1.  Commands
    with more to say on it (run, verify, cluster) say it first.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _Terminated as exc:
            click.echo("terminated", err=True)
            sys.exit(128 + exc.signal_number)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in INSTALL:
                raise
            needs = f"om-actors {ctx.info_name} needs {missing}"
            raise _MissingDependency(
                f"{needs}, which is not installed: pip install {INSTALL[missing]}"
            ) from None


class _JsonCommand(_Command):
    """A command whose ``--json`` keeps its promise even for click's own usage errors."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _click_errors_as_json("--json" in args):  # looked for before parsing: parsing is what failed
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        with _click_errors_as_json(bool(ctx.params.get("as_json"))):
            return super().invoke(ctx)


class _Cli(click.Group):
    """The ``om-actors`` group: stdout failures end politely, and ``--json`` errors stay JSON."""

    command_class = _Command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        guard = GuardedStdout.install()
        try:
            return super().main(*args, **kwargs)
        except SystemExit as exit:
            status = exit.code
            raise SystemExit(guard.finish(status) if isinstance(status, int) else status) from None
        finally:
            guard.flush()
            guard.uninstall()

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """The group's own options; a bad one is JSON too when a command that promises JSON follows."""
        with _click_errors_as_json("--json" in args and not JSON_COMMANDS.isdisjoint(args)):
            return super().parse_args(ctx, args)


def _set_max_messages(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """The limit for this command and every process it starts; the previous one is back afterwards.

    The environment is what node and worker processes inherit, and what
    :func:`om_actors.limits.max_messages` reads.
    """
    if value is None:
        return
    previous = os.environ.get(LIMIT_VARIABLE)
    os.environ[LIMIT_VARIABLE] = str(value)
    ctx.call_on_close(partial(_restore_environment, LIMIT_VARIABLE, previous))


def _restore_environment(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="om-actors")
@click.option(
    "--max-messages",
    type=click.IntRange(min=1),
    callback=_set_max_messages,
    expose_value=False,
    metavar="N",
    help=f"Refuse runs that would send more than N messages (default ${LIMIT_VARIABLE}, else "
    f"{DEFAULT_MAX_MESSAGES:,}).",
)
def main() -> None:
    """Simulate Byzantine agreement: the oral-messages algorithm OM(m), signed messages SM(m), or your own."""


_log_option = click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="Write every event as JSON lines to this file; - for stdout (the report then goes to stderr).",
)
_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of the report."
)


@main.command(cls=_JsonCommand)
@click.argument("scenario_file", metavar="[SCENARIO]", required=False)
@_log_option
@_json_option
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; the exit status tells the outcome.")
@click.option(
    "--mode",
    type=click.Choice(["per-message", "batched", "auto"]),
    default="auto",
    show_default=True,
    help=f"Batch each round's messages per sender and receiver; auto batches above {BATCHED_ABOVE:,}.",
)
@click.option("--log-messages", is_flag=True, help="In batched mode, log every message too (a big file).")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write a self-contained HTML report of the run (as `om-actors report` draws it) to this file.",
)
def run(
    scenario_file: str | None,
    log_file: Path | None,
    as_json: bool,
    quiet: bool,
    mode: Mode,
    log_messages: bool,
    html_file: Path | None = None,
) -> None:
    """Run SCENARIO: a YAML file, a shipped scenario's name, or - for stdin.

    Without SCENARIO, the seven generals with traitors 0 and 5; `om-actors
    scenarios` lists the shipped ones.

    Exits 0 when the outcome is what the scenario expects, 1 when not, and 2
    when the input cannot be used.
    """
    import trio
    from rich.console import Console

    from .orchestrator import resolve_mode, simulate
    from .report import report

    log_to_stdout = _log_to_stdout(log_file, as_json=as_json)
    # soft_wrap: a line is one line in a pipe or a file, and a terminal wraps it anyway.
    out = Console(quiet=quiet or as_json, stderr=log_to_stdout, highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    log_kept = log_file is not None
    with _reporting_errors(err, as_json=as_json), _html_log(html_file, log_file) as log_file:
        scenario, path = _load(scenario_file)
        _refuse_overwriting(log_file, path, from_stdin=scenario_file == STDIN)
        _refuse_overwriting(html_file, path, from_stdin=scenario_file == STDIN, what="--html")
        resolved = resolve_mode(mode, scenario)
        log_messages = log_messages or html_file is not None  # the report draws every message
        if not quiet:
            warnings = [*scenario.warnings, *_mode_warnings(scenario, mode, resolved, log_file, log_messages)]
            for warning in [*warnings, *_log_warnings(scenario, resolved, log_file, log_messages)]:
                err.print(f"[yellow]warning:[/] {markup(warning)}")
        with _progress(out, scenario, resolved) as on_progress, _LogFile.writing(log_file) as log:
            simulation = partial(
                simulate,
                scenario,
                log=sys.stdout.buffer if log_to_stdout else log,
                on_progress=on_progress,
                mode=resolved,
                log_messages=log_messages,
            )
            result = trio.run(simulation)  # Ctrl-C leaves the bar first: the command then says "interrupted"
        if html_file is not None and log_file is not None:
            from .html_report import write_html_report

            with _reading_progress(out, log_file, "drawing the page") as on_read:
                write_html_report(log_file, html_file, kept=log_kept, on_read=on_read)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        report(out, result)
        if html_file is not None:
            out.print(f"HTML report: {markup(str(html_file))}")
    sys.exit(0 if not result.unmet_expectations() else 1)


@contextmanager
def _html_log(html_file: Path | None, log_file: Path | None) -> Iterator[Path | None]:
    """The log ``run --html`` reports from: ``--log``'s file, or a temporary one removed afterwards.

    The report is built from a log, as ``om-actors report`` builds it, so
    the two commands give the same page; a temporary file keeps memory
    flat however many messages the run sends.  ``--log -`` goes to stdout,
    which cannot be read back: refused with ``--html``.
    """
    if html_file is not None:
        _check_page(html_file, "'--html'")
    if html_file is None or (log_file is not None and str(log_file) != STDIN and _regular(log_file)):
        if html_file is not None and log_file is not None and _same_path(html_file, log_file):
            raise click.BadParameter("the HTML report would overwrite the log", param_hint="'--html'")
        yield log_file
        return
    if log_file is not None:  # stdout, a pipe: the page could not read it back
        raise click.BadParameter("needs the log in a file: --log FILE, or no --log", param_hint="'--html'")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="om-actors-") as folder:
        yield Path(folder) / "run.log"


def _regular(path: Path) -> bool:
    """Whether ``path`` is, or will be, a plain file that can be read back: not a pipe or a device."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # not there yet: it will be made a file


def _plain_file(path: Path) -> bool:
    """Whether ``path`` is a file itself, not a link (``/dev/stdin``) or a pipe: a default goes beside it."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return True  # not there: reading it is what fails, with its own message


def _check_page(html_file: Path, option: str) -> None:
    """Refuse ``-`` as the page: click would make a file named ``-``, and a page is no stream anyway."""
    if str(html_file) == STDIN:
        raise click.BadParameter(
            "the page is written to a file: name one (- is not standard output here)", param_hint=option
        )


def _same_path(one: Path, other: Path) -> bool:
    with suppress(OSError):
        return one.resolve() == other.resolve() or os.path.samefile(one, other)
    return False


@main.command("report")
@click.argument("log", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    "html_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The HTML file to write.  [default: LOG with .html in place of its suffix]",
)
def report_command(log: Path, html_file: Path | None) -> None:
    """Write LOG's run as one self-contained HTML page: verdict, counts, a space-time diagram, every tree.

    Nothing in the page is fetched, so it opens from disk in any browser.
    `om-actors run SCENARIO --html FILE` writes the same page straight away.
    """
    from .html_report import write_html_report
    from .terminal import markup

    out, err = _consoles()
    if html_file is None and (str(log) == STDIN or not _plain_file(log)):
        raise click.BadParameter(
            "LOG is standard input, a link, a pipe or a device, not a plain file, so no LOG.html beside it: "
            "give --output",
            param_hint="'--output'",
        )
    target = html_file if html_file is not None else log.with_suffix(".html")
    _check_page(target, "'--output'")
    if _same_path(target, log):
        raise click.BadParameter("the HTML report would overwrite the log", param_hint="'--output'")
    named = log.name  # the page says where its log came from
    if _streamed(log):
        named = "standard input" if str(log) in (STDIN, "/dev/stdin") else str(log)
    with (
        _reporting_errors(err),
        _read_again(log) as readable,
        _reading_progress(out, readable, "drawing the page") as on_read,
    ):
        write_html_report(readable, target, named=named, on_read=on_read)
    out.print(f"HTML report: {markup(str(target))}")


@main.command("scenarios")
def scenarios_command() -> None:
    """List the scenarios that ship with om-actors, each with its algorithm and what it shows.

    `om-actors run NAME` runs one; a file of the same name in the working
    folder wins over it.
    """
    from .catalog import shipped_scenarios

    _, err = _consoles()
    with _reporting_errors(err):  # each is loaded, so a limit set wrong is refused here too
        shipped = shipped_scenarios()
    width = max((len(scenario.name) for scenario in shipped), default=0)
    titles = max((len(scenario.algorithm) for scenario in shipped), default=0)
    for scenario in shipped:
        click.echo(f"{scenario.name:<{width}}  {scenario.algorithm:<{titles}}  {scenario.summary}".rstrip())


@main.command("node")
@click.option(
    "--id", "me", type=click.IntRange(min=0), required=True, metavar="ID", help="This general's id."
)
@click.option("--cluster", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              metavar="FILE", help="The cluster file: every general's address and public key.")  # fmt: skip
@click.option("--key", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
              required=True, metavar="FILE",
              help="This general's Ed25519 private key, PEM; - reads it from standard input.")  # fmt: skip
@click.option("--listen", "listen_on", metavar="HOST:PORT",
              help="Listen here, not at the cluster file's address; port 0 picks a free one.")  # fmt: skip
@click.option("--allow-strategy", "allowed", multiple=True, metavar="MODULE:CLASS",
              help="A traitor strategy of your own this node may run; may be repeated.")  # fmt: skip
@click.option("--strategy-folder", type=click.Path(exists=True, file_okay=False, path_type=Path),
              metavar="DIRECTORY",
              help="Also look for the allowed strategies' modules in this folder.")  # fmt: skip
@click.option("--exit-with-stdin", is_flag=True,
              help="Stop when standard input closes: no node outlives om-actors cluster.")  # fmt: skip
def node_command(
    me: int,
    cluster: Path,
    key: Path,
    listen_on: str | None,
    allowed: tuple[str, ...],
    strategy_folder: Path | None,
    exit_with_stdin: bool,
) -> None:
    """Serve one general over HTTP at its address in the cluster file, until stopped.

    It prints one JSON line with the address it listens at, then runs what
    the driver named in the cluster file asks.  The only traitor strategies
    it runs are the built-in ones and those allowed with --allow-strategy
    (or under strategies: in the cluster file).
    """
    import trio

    from .cluster import serve_node

    _, err = _consoles()
    serving = partial(
        serve_node,
        me,
        cluster,
        key,
        listen_on=listen_on,
        allowed=allowed,
        strategy_folder=strategy_folder,
        exit_with_stdin=exit_with_stdin,
    )
    with _reporting_errors(err), suppress(KeyboardInterrupt):
        trio.run(serving)


@main.command("cluster", cls=_JsonCommand)
@click.argument("scenario_file", metavar="SCENARIO", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65000),
    help="General g listens on this port + g (default: each node picks a free port).",
)
@_log_option
@_json_option
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; the exit status tells the outcome.")
@click.option(
    "--nodes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Drive nodes already running, listed in this cluster file, instead of starting them here.",
)
@click.option("--driver-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --nodes: the driver's private key (default: its folder's driver.pem).")  # fmt: skip
def cluster_command(
    scenario_file: Path,
    base_port: int | None,
    log_file: Path | None,
    as_json: bool,
    quiet: bool,
    nodes: Path | None,
    driver_key: Path | None,
) -> None:
    """Run SCENARIO with every general its own process, over signed HTTP.

    By default it starts the nodes on 127.0.0.1 and stops them afterwards,
    also when it is stopped by Ctrl-C, SIGTERM or SIGHUP.  Output, log and
    exit status are those of `om-actors run`; a crashed node or a message
    that was not delivered is named in a warning (on stderr with --json).
    """
    import trio

    from .cluster import Stopped, run_cluster, stoppable
    from .report import assumption_warnings, report

    log_to_stdout = _log_to_stdout(log_file, as_json=as_json)
    out, err = _consoles()
    if as_json or quiet:
        out.quiet = True
    if log_to_stdout:
        out.file = sys.stderr  # the log has stdout, as in run
    if driver_key is not None and nodes is None:
        raise click.UsageError(
            "--driver-key is the key for the nodes of --nodes: without --nodes, the driver makes its own"
        )
    with _reporting_errors(err, as_json=as_json):
        scenario, path = _load(str(scenario_file))
        _refuse_overwriting(log_file, path, from_stdin=str(scenario_file) == STDIN)
        for warning in [] if quiet else scenario.warnings:
            err.print(f"[yellow]warning:[/] {markup(warning)}")
        try:
            with _LogFile.writing(log_file) as log:
                target = sys.stdout.buffer if log_to_stdout else log
                running = partial(
                    run_cluster, scenario, base_port=base_port, log=target, nodes=nodes, driver_key=driver_key
                )
                outcome = trio.run(partial(stoppable, running))
        except Stopped as stop:
            err.print(markup(str(stop)))
            sys.exit(stop.status)
        except KeyboardInterrupt:
            err.print("interrupted: every node process was stopped")
            sys.exit(130)
    result = outcome.result
    if as_json:
        for warning in assumption_warnings(result):  # the report says them otherwise
            err.print(f"[yellow]warning:[/] {markup(warning)}")
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        report(out, result)
    sys.exit(0 if not result.unmet_expectations() else 1)


@main.command("keys")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--addresses", required=True, help="host:port of general 0, 1, ..., separated by commas.")
def keys_command(folder: Path, addresses: str) -> None:
    """Write key pairs for every general and the driver, and the cluster file, into FOLDER.

    The cluster file names every public key, the driver's included: nodes
    obey only requests signed with the driver's private key, driver.pem,
    which `om-actors cluster --nodes` reads from the same folder.
    """
    from .cluster import DRIVER_KEY, write_keys

    out, err = _consoles()
    listed = [address.strip() for address in addresses.split(",")]
    if any(":" not in address for address in listed):
        raise click.BadParameter("write each address as host:port", param_hint="--addresses")
    with _reporting_errors(err):
        folder.mkdir(parents=True, exist_ok=True)
        cluster = write_keys(folder, dict(enumerate(listed)))
    out.print(
        f"wrote {cluster} and {len(listed)} private keys, general-0.pem to general-{len(listed) - 1}.pem, "
        f"and the driver's private key {folder / DRIVER_KEY}: keep it where you run om-actors cluster --nodes"
    )


def _path_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """``0,3`` as the path ``(0, 3)``."""
    if value is None:
        return None
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a path: write general ids separated by commas, like 0,3"
        ) from None


@contextmanager
def _reporting_errors(err: Console, *, as_json: bool = False) -> Iterator[None]:
    """Our errors as one line on stderr and exit status 2, never a traceback.

    Under ``--json`` the same errors are the one JSON object on stdout
    instead (:func:`_error_object`).  A reader that leaves stdout early is
    not an error here: :class:`GuardedStdout` sees to that.
    """
    from rich.markup import escape

    from .errors import OmActorsError

    try:
        yield
    except (OmActorsError, OSError) as exc:
        if as_json:
            click.echo(json.dumps(_error_object(exc), indent=2))
        else:
            err.print(escape(_error_text(exc)))
        sys.exit(2)


def _error_text(exc: OmActorsError | OSError) -> str:
    """The error's lines for a terminal, each with its control characters escaped.

    A scenario's problems are one line each, so a line break inside one --
    in a key the scenario spells, say -- is escaped rather than taken for
    the start of another.
    """
    from .errors import CannotWrite, ScenarioError

    if isinstance(exc, ScenarioError):
        return "\n".join(printable(problem.render(exc.source)) for problem in exc.problems)
    text = f"error: {exc}" if isinstance(exc, (OSError, CannotWrite)) else str(exc)
    return "\n".join(map(printable, text.split("\n")))


def _error_object(exc: Exception) -> dict[str, Any]:
    """``{"error", "source", "problems": [{"line", "column", "message"}]}`` for input we cannot use.

    A scenario's problems keep their lines and columns, a log's its line;
    anything else is one problem with neither.
    """
    from .errors import LogError, Problem, ScenarioError

    source: str | None = None
    problems = [Problem(str(exc))]
    if isinstance(exc, click.ClickException):
        problems = [Problem(exc.format_message())]
    elif isinstance(exc, ScenarioError):
        source, problems = exc.source, exc.problems
    elif isinstance(exc, LogError):
        source, problems = exc.source, [Problem(exc.message, exc.line)]
    return {
        "error": problems[0].message if isinstance(exc, click.ClickException) else str(exc),
        "source": source,
        "problems": [{"line": p.line, "column": p.column, "message": p.message} for p in problems],
    }


def _consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles; in a pipe, lines as long as they need to be."""
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out.width = 1000
    return out, Console(stderr=True, highlight=False, soft_wrap=True)


@main.command("replay")
@click.argument("log", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--rerun", "again", is_flag=True, help="Also run the scenario again and compare event by event."
)
@click.option(
    "--trust-strategies",
    is_flag=True,
    help="With --rerun: import and run the module:Class strategies the log names. Only for logs you trust.",
)
def replay_command(log: Path, again: bool, trust_strategies: bool) -> None:
    """Check LOG against the protocol: recompute every relay, decision and the verdict.

    Replay never imports the strategies a log names; --rerun runs the
    scenario again, so a log naming a module:Class strategy needs
    --trust-strategies too.  Exits 0 when everything matches, 1 on the
    first mismatch, and 2 for a log that cannot be read or is not trusted.
    """
    if trust_strategies and not again:
        raise click.UsageError("--trust-strategies only matters with --rerun")
    from .replay import SUMMARY_ONLY, replay_log, rerun_log

    out, err = _consoles()
    with _reporting_errors(err), _read_again(log) as copy:
        rerun = rerun_log(copy, trust_strategies=trust_strategies) if again else None
        with _reading_progress(out, copy, "replaying") as on_read:
            report = replay_log(copy, on_read=on_read)
        if report.summary_only:
            err.print(f"replay skipped: {SUMMARY_ONLY}")
            if not again:
                sys.exit(2)
        elif report.ok:
            out.print(f"replay OK: {report.messages:,} messages, decisions and verdict match")
        else:
            first, *others = report.inconsistencies
            out.print(f"[bold red]replay MISMATCH:[/] {markup(str(first))}")
            if others:
                more = "1 more inconsistency" if len(others) == 1 else f"{len(others)} more inconsistencies"
                out.print(f"({more} after it)")
        for loss in report.losses():
            out.print(f"[yellow]{markup(loss)}[/]")
        matched = report.ok or report.summary_only
        if rerun is not None:
            matched = _report_rerun(out, *rerun) and matched
    sys.exit(0 if matched else 1)


@contextmanager
def _read_again(log: Path) -> Iterator[Path]:
    """``log`` as a file that can be read by name and more than once, as every log reader needs.

    Replay passes over a log two or three times; ``show``, ``explain`` and
    ``report`` open it by name.  A pipe, ``/dev/stdin`` or ``-`` is copied
    to a temporary file first, and an error in the copy names what the
    user gave.  Each line is read as a log line before it is copied, so an
    endless stream of anything else stops at its first such line instead
    of filling the disk; SIGTERM and SIGHUP end the command as Ctrl-C
    does, and the copy goes with it.
    """
    import tempfile

    from .errors import LogError

    if not _streamed(log):
        yield log
        return
    with _terminated_cleanly(), tempfile.TemporaryDirectory(prefix="om-actors-log-") as folder:
        copy = Path(folder) / "log.jsonl"
        with open(copy, "wb") as spool, _opened_for_reading(log) as source:
            _copy_log(str(log), source, spool)
        try:
            yield copy
        except LogError as exc:
            raise LogError(str(log), exc.line, exc.message) from None


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while a command holds a temporary copy: it ends as Ctrl-C does, copy removed."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.signal_number = signal_number


@contextmanager
def _terminated_cleanly() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`_Terminated` here instead of ending the process where it stands."""
    import signal

    def terminated(number: int, frame: object) -> None:
        raise _Terminated(number)

    wanted = (signal.SIGTERM, signal.SIGHUP)
    try:
        before = {number: signal.signal(number, terminated) for number in wanted}
    except ValueError:  # not the main thread: a library caller's own business
        yield
        return
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def _streamed(log: Path) -> bool:
    """Whether ``log`` is standard input or a pipe or device rather than a file."""
    import stat

    if str(log) == "-":
        return True
    try:
        return not stat.S_ISREG(log.stat().st_mode)
    except OSError:
        return False  # the reader says why it cannot be read


@contextmanager
def _opened_for_reading(log: Path) -> Iterator[IO[bytes]]:
    if str(log) == "-":
        if sys.stdin is None:
            from .errors import LogError

            raise LogError("-", None, "standard input is closed")
        yield sys.stdin.buffer
        return
    with open(log, "rb") as source:
        yield source


def _copy_log(name: str, source: IO[bytes], spool: IO[bytes]) -> None:
    """Copy a streamed log line by line, each read as a log line first: the first that is not one stops it.

    So garbage, or a stream that never ends with a log in it, fills no disk:
    ``yes |`` stops at line 1.
    """
    from .log import read_log_stream

    for line in read_log_stream(name, source):
        spool.write(line.raw)


def _report_rerun(out: Console, compared: int, divergence: Divergence | None) -> bool:
    """Print what ``rerun_log`` found; whether the rerun matched the log."""
    if divergence is None:
        out.print(f"rerun OK: all {compared:,} events match the log")
        return True
    out.print(f"[bold red]rerun DIFFERS[/] at line {divergence.line}:")
    out.print(f"  log:   {markup(divergence.logged or '(the log ends here)')}")
    out.print(f"  rerun: {markup(divergence.rerun or '(the rerun ends here)')}")
    return False


def _depth_option(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """A number of levels, or ``all`` (``None``: no limit)."""
    if value == "all":
        return None
    if not value.lstrip("-").isdecimal():
        raise click.BadParameter(f"{value!r} is neither a number of levels nor all")
    depth: int = click.IntRange(min=0).convert(int(value), param, ctx)
    return depth


@main.command("explain")
@click.argument("log", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--general", "-g", required=True, type=int, help="The general whose decision to explain.")
@click.option("--path", "start", callback=_path_option, help="Start at this subtree, e.g. 0,3.")
@click.option(
    "--depth",
    default="2",
    show_default=True,
    callback=_depth_option,
    metavar="N|all",
    help="Show at most this many levels below the start; all shows every level.",
)
@click.option(
    "--instance", type=int, default=0, show_default=True, help="The consensus instance, if several."
)
@click.option(
    "--format", "form", type=click.Choice(["text", "dot", "mermaid"]), default="text", show_default=True
)
@click.pass_context
def explain_command(
    ctx: click.Context,
    log: Path,
    general: int,
    start: tuple[int, ...] | None,
    depth: int | None,
    instance: int,
    form: str,
) -> None:
    """Show how GENERAL reached its decision in LOG, as its algorithm reasons.

    For OM(m) the recursive majority, vote by vote (--path starts at a
    subtree); for SM(m) the set of values V it held, round by round; for
    Phase King its value phase by phase.  Two levels by default, which is
    all of most trees: the note below one that is cut says how to see more.
    --format dot writes Graphviz (render it with `dot -Tsvg`); --format
    mermaid a Mermaid flowchart, which GitHub draws in a ```mermaid block.
    """
    from click.core import ParameterSource
    from rich.markup import escape

    from .explain import depth_note, dot_graph, explain, mermaid_graph, mermaid_problem, open_view, text_tree

    out, err = _consoles()
    with (
        _reporting_errors(err),
        _read_again(log) as readable,
        _reading_progress(out, readable, "reading") as on_read,
    ):
        view = open_view(readable, general, instance, on_read=on_read)
        node = explain(view, path=start, depth=depth)
    defaulted = ctx.get_parameter_source("depth") is ParameterSource.DEFAULT
    note = depth_note(node, depth) if defaulted and depth is not None else None
    if form == "text":
        out.print(text_tree(view, node))
        if note:
            out.print(escape(note))
        return
    graph = dot_graph(view, node) if form == "dot" else mermaid_graph(view, node)
    click.echo(graph, nl=False)
    if note:  # on stderr: the file on stdout stays a graph
        err.print(escape(note))
    problem = mermaid_problem(graph) if form == "mermaid" else None
    if problem:
        warning = f"warning: GitHub will not draw this graph: {problem}; cut it with --depth or --path"
        err.print(escape(warning))


@main.command("show")
@click.argument("log", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--round", "round_", type=int, help="Only events of this round.")
@click.option("--sender", type=int, help="Only messages from this general.")
@click.option("--receiver", type=int, help="Only messages to this general.")
@click.option(
    "--path-prefix", "prefix", callback=_path_option, help="Only paths starting like this, e.g. 0,5."
)
@click.option("--instance", type=int, help="Only events of this consensus instance.")
@click.option("--event", "events", multiple=True, help="Only events with this name; may be repeated.")
@click.option("--json", "as_json", is_flag=True, help="Pass the matching lines through unchanged.")
@click.option(
    "--format",
    "form",
    type=click.Choice(["table", "shiviz"]),
    default="table",
    show_default=True,
    help="shiviz: the whole run as a ShiViz input file, with vector clocks (see docs/log-format.md).",
)
def show_command(
    log: Path,
    round_: int | None,
    sender: int | None,
    receiver: int | None,
    prefix: tuple[int, ...] | None,
    instance: int | None,
    events: tuple[str, ...],
    as_json: bool,
    form: str,
) -> None:
    """Print the events of LOG that match every filter given, in log order."""
    from .log import Selection, read_selected

    out, err = _consoles()
    wanted = Selection(round_, sender, receiver, prefix, instance, frozenset(events))
    if form == "shiviz":
        if as_json or wanted != Selection():
            raise click.UsageError("--format shiviz writes the whole run: it takes no filters and no --json")
        _write_shiviz(log, err)
        return
    with _reporting_errors(err), _read_again(log) as readable:
        matching = read_selected(readable, wanted)  # refuses a path prefix on a log without paths
        if as_json:
            for line in matching:
                sys.stdout.buffer.write(line.raw if line.raw.endswith(b"\n") else line.raw + b"\n")
            return
        for table in _table(matching):
            out.print(table)


def _write_shiviz(log: Path, err: Console) -> None:
    """The ShiViz file on stdout, line by line as the log streams; a bad log stops it with one line."""
    from .shiviz import shiviz_lines

    with _reporting_errors(err), _read_again(log) as readable:
        for line in shiviz_lines(readable):
            sys.stdout.write(line + "\n")


SHOW_COLUMNS = ("line", "event", "round", "sender", "receiver", "path", "value", "detail")
SHOW_ROWS_PER_TABLE = 1000
"""``show`` prints its table in pieces of this many rows, as the log streams past.

A rich table is laid out whole, so one table for a log of millions of
lines would hold all of them in memory before printing the first.
"""


def _table(lines: Iterable[LogLine]) -> Iterator[Table]:
    """The lines as tables of :data:`SHOW_ROWS_PER_TABLE` rows that read as one.

    Only the first has the header, and each column is at least as wide as
    it was in the tables before, so the pieces line up unless a later value
    is wider than any before it.
    """
    from rich.cells import cell_len
    from rich.markup import escape
    from rich.table import Table

    widths = [cell_len(title) for title in SHOW_COLUMNS]
    rows = map(_show_row, lines)
    piece, header = list(islice(rows, SHOW_ROWS_PER_TABLE)), True
    while piece or header:
        widths = [max([width, *(cell_len(row[i]) for row in piece)]) for i, width in enumerate(widths)]
        table = Table(box=None, show_header=header)
        for title, width in zip(SHOW_COLUMNS, widths):
            table.add_column(title, min_width=width)
        for row in piece:
            table.add_row(*map(escape, row))
        yield table
        piece, header = list(islice(rows, SHOW_ROWS_PER_TABLE)), False


def _show_row(line: LogLine) -> list[str]:
    """One line's cells; ``path`` is the path the message's algorithm says it travelled (SM(m): its chain)."""
    fields = line.fields
    shown = {"event", "round", "sender", "receiver", "path", "value"}
    cells = [json.dumps(fields[k]) if k in fields else "" for k in ("round", "sender", "receiver")]
    pathless = line.path is None or (line.path == () and "path" not in fields)  # an algorithm without paths
    cells.append("" if pathless else json.dumps(line.path))
    cells.append(json.dumps(fields["value"]) if "value" in fields else "")
    detail = " ".join(f"{k}={json.dumps(v)}" for k, v in fields.items() if k not in shown)
    return [printable(cell) for cell in (str(line.number), line.event, *cells, detail)]


def _range_option(ctx: click.Context, param: click.Parameter, value: str) -> range:
    """``3..7`` as 3 to 7 inclusive, or a single number; a range, so ``3..10**30`` costs nothing yet."""
    low, dots, high = value.partition("..")
    try:
        numbers = range(int(low), int(high if dots else low) + 1)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a range: write 3..7, or a single number") from None
    if not numbers or numbers[0] < 0:
        raise click.BadParameter(f"{value!r} is an empty or negative range")
    return numbers


def _folder_option(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """A folder, or a name for one to be made; a device or anything else that exists is refused now.

    Click's own check only refuses a regular file, and finding out when
    the first violation is written would come after the whole run.
    """
    if value.exists() and not value.is_dir():
        raise click.BadParameter(f"{printable(str(value))} is not a folder")
    return value


def _traitors_option(ctx: click.Context, param: click.Parameter, value: str) -> Counts:
    """``upto-m``, ``exactly:K`` or ``upto:K`` as the traitor counts to try for a given m."""
    kind, _, number = value.partition(":")
    if kind == "upto-m" and not number:
        return lambda m: range(m + 1)
    if kind in ("exactly", "upto") and number.isdigit():
        k = int(number)
        return (lambda m: [k]) if kind == "exactly" else (lambda m: range(k + 1))
    raise click.BadParameter(f"{value!r}: use upto-m, exactly:K or upto:K")


@main.command("verify", cls=_JsonCommand)
@click.option(
    "--generals", "generals", default="3..7", show_default=True, callback=_range_option, help="Army sizes."
)
@click.option("--m", "ms", default="1..2", show_default=True, callback=_range_option, help="Values of m.")
@click.option("--traitors", "counts", default="upto-m", show_default=True, callback=_traitors_option,
              help="Traitor set sizes: upto-m, exactly:K or upto:K.")  # fmt: skip
@click.option("--algorithm", type=click.Choice(sorted(REGISTRY)), default=DEFAULT_ALGORITHM,
              show_default=True, help="The algorithm whose theorem is checked.")  # fmt: skip
@click.option("--adversary", type=click.Choice(ADVERSARIES), default="canonical", show_default=True)
@click.option(
    "--budget", type=click.IntRange(min=1), help="Adversaries per case at most (default by family)."
)
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="all cores",
              help="Local worker processes, without --scheduler.")  # fmt: skip
@click.option("--scheduler", metavar="ADDRESS|local:N",
              help="Run the cases on the Dask cluster of this scheduler (tcp://host:8786), or on a local "
              "one of N worker processes; needs the dask extra.")  # fmt: skip
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("violations"),
              callback=_folder_option,
              show_default=True, help="Where violations are written as scenario files.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of the table.")
def verify_command(
    generals: range,
    ms: range,
    counts: Counts,
    algorithm: str,
    adversary: Adversary,
    budget: int | None,
    jobs: int,
    scheduler: str | None,
    out_dir: Path,
    as_json: bool,
) -> None:
    """Check IC1 and IC2 for every traitor set, order and adversary of a family.

    Exits 0 when every violation found is one the algorithm's theorem
    allows (outside its bound: more than m traitors, or for OM(m) n <= 3m),
    1 when one contradicts it, 2 for bad arguments.
    """
    import trio

    from .report import VerifySummary, print_verify
    from .verify import Tally, cases, check_ranges, no_army, verify

    out, err = _consoles()
    if scheduler is not None and _given(click.get_current_context(), "jobs"):
        raise click.UsageError("give --jobs or --scheduler, not both: a cluster has its own workers")
    with _reporting_errors(err, as_json=as_json):
        check_ranges(generals, ms, counts, algorithm)
    all_cases = list(cases(generals, ms, counts, algorithm))
    if not all_cases:
        problem = no_army(generals, ms, algorithm) or "no army in these ranges has room for so many traitors"
        raise click.UsageError(problem)
    budget = budget or VERIFY_BUDGET[adversary]
    tally = Tally(algorithm)
    started = time.monotonic()
    seconds = None
    interrupted = False
    try:
        with _reporting_errors(err, as_json=as_json), _executor(scheduler, jobs) as (executor, jobs):
            started = time.monotonic()  # a cluster's start is not the sweep's time
            with _verify_progress(out, len(all_cases), quiet=as_json) as on_case:
                checking = partial(verify, all_cases, adversary, budget=budget, tally=tally, on_case=on_case)
                try:
                    trio.run(partial(checking, executor=executor))
                finally:
                    seconds = time.monotonic() - started
    except KeyboardInterrupt:
        interrupted = True
    seconds = time.monotonic() - started if seconds is None else seconds
    with _reporting_errors(err, as_json=as_json):
        files = _write_violations(tally, out_dir, adversary)
    summary = VerifySummary(tally, adversary, budget, jobs, seconds, files, len(all_cases), interrupted)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        print_verify(out, summary)
    if interrupted:
        err.print(f"interrupted: {summary.done} of {len(all_cases)} cases checked")
        sys.exit(130)
    sys.exit(1 if tally.contradictions or tally.mismatches else 0)


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the user gave the option, rather than its default standing."""
    source = ctx.get_parameter_source(name)
    return source not in (None, click.core.ParameterSource.DEFAULT)


@contextmanager
def _executor(scheduler: str | None, jobs: int) -> Iterator[tuple[Executor, int]]:
    """Where verify's batches run, and how many run at once: local processes, or a Dask cluster.

    Dask is imported only here, and only for ``--scheduler``.
    """
    from .verify import WorkerProcesses

    if scheduler is None:
        yield WorkerProcesses(jobs), jobs
        return
    from .dask_sweep import open_cluster

    with open_cluster(scheduler) as cluster:
        yield cluster, cluster.workers


def _algorithms_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    """``om,sm`` as the names ``("om", "sm")``; checked against the registry when the command runs."""
    if value is None:
        return None
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise click.BadParameter("name one or more algorithms, separated by commas, like om,sm")
    return names


def _sweep_option(ctx: click.Context, param: click.Parameter, value: str | None) -> range | None:
    """``generals=4..100`` as the army sizes 4 to 100; generals are all a sweep can vary."""
    if value is None:
        return None
    key, equals, sizes = value.partition("=")
    if key.strip() != "generals" or not equals:
        raise click.BadParameter(f"{value!r}: only generals can be swept: write generals=4..100")
    return _range_option(ctx, param, sizes.strip())


def _sweep_traitors(value: str | None) -> int | None:
    """``max`` (or nothing) as ``None``, the most each algorithm tolerates; ``K`` as K."""
    if value is None or value == "max":
        return None
    if value.isdigit():
        return int(value)
    raise click.BadParameter(f"{value!r}: use max or a number of traitors", param_hint="'--traitors'")


@main.command("compare", cls=_JsonCommand)
@click.argument("scenario_file", metavar="[SCENARIO]", required=False)
@click.option("--algorithms", "names", callback=_algorithms_option, metavar="NAME,...",
              help="The algorithms to compare, by name (default: every registered one).")  # fmt: skip
@click.option("--sweep", "sizes", callback=_sweep_option, metavar="generals=LOW..HIGH",
              help="Instead of one scenario, every army size in this range.")  # fmt: skip
@click.option("--traitors", "traitor_count", metavar="max|K",
              help="With --sweep: the most each algorithm tolerates (max, default), or K.")  # fmt: skip
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.svg|.png",
              help="With --sweep: draw messages against generals (needs the plot extra).")  # fmt: skip
@click.option("--budget-messages", "budget", type=click.IntRange(min=0), default=COMPARE_BUDGET,
              show_default=True, help="Not run over this many messages: computed.")  # fmt: skip
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="all cores",
              help="With --sweep: worker processes.")  # fmt: skip
@_json_option
def compare_command(
    scenario_file: str | None,
    names: tuple[str, ...] | None,
    sizes: range | None,
    traitor_count: str | None,
    plot_file: Path | None,
    budget: int,
    jobs: int,
    as_json: bool,
) -> None:
    """Run SCENARIO's army under each algorithm, one row each; or, with --sweep, every army size.

    SCENARIO is a file, a shipped scenario's name, or - for stdin; without
    it, the seven generals.  Every algorithm runs the same generals,
    commander, order and traitors; a strategy that means nothing to an
    algorithm becomes that algorithm's split, and a note says so.  Rows
    show rounds, messages, the bytes of the log's message lines,
    signatures verified, wall time, the verdict, and whether the theorem's
    bound holds: a failure where it does not is allowed.

    Exits 0 once every row has run, whatever the verdicts, and 2 for input
    that cannot be used.
    """
    import trio

    from .compare import algorithms_named, check_plot, compare, plot, sweep
    from .errors import CannotWrite

    out, err = _consoles()
    if sizes is not None and scenario_file is not None:
        raise click.UsageError("give a SCENARIO or --sweep, not both")
    if sizes is None:
        for given, option in ((traitor_count, "--traitors"), (plot_file, "--plot")):
            if given is not None:
                raise click.UsageError(f"{option} only matters with --sweep")
    traitors = _sweep_traitors(traitor_count)
    with _reporting_errors(err, as_json=as_json):
        algorithms = algorithms_named(names)
        if plot_file is not None:
            check_plot(plot_file)
        try:
            if sizes is None:
                scenario, _ = _load(scenario_file)
                rows = trio.run(partial(compare, scenario, algorithms, budget=budget))
            else:
                scenario = None
                with _sweep_progress(out, len(sizes) * len(algorithms), quiet=as_json) as on_row:
                    running = partial(
                        sweep, sizes, algorithms, traitors=traitors, budget=budget, jobs=jobs, on_row=on_row
                    )
                    rows = trio.run(running)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)
        if plot_file is not None:
            try:
                plot(rows, plot_file, budget=budget, traitors=traitors)
            except OSError as exc:
                raise CannotWrite(f"the chart {plot_file}", exc) from None
    if as_json:
        click.echo(json.dumps(_comparison_dict(scenario, rows, sizes, traitors, budget), indent=2))
    else:
        _print_comparison(out, scenario, rows, budget)
        if plot_file is not None:
            out.print(f"chart written to {markup(str(plot_file))}")
    sys.exit(0)


def _comparison_dict(
    scenario: Scenario | None, rows: list[Row], sizes: range | None, traitors: int | None, budget: int
) -> dict[str, Any]:
    from .compare import describe

    data: dict[str, Any] = {"budget_messages": budget}
    if scenario is not None:
        data["scenario"] = scenario.name
        data["generals"] = scenario.generals
        data["traitors"] = {str(g): describe(spec) for g, spec in scenario.traitors.items()}
    if sizes is not None:
        data["sweep"] = {
            "generals": [sizes[0], sizes[-1]],
            "traitors": "max" if traitors is None else traitors,
        }
    data["rows"] = [row.to_dict() for row in rows]
    return data


def _print_comparison(out: Console, scenario: Scenario | None, rows: list[Row], budget: int) -> None:
    """The table, then every note: fallbacks, refusals, and why a theorem makes no promise."""
    from rich import box
    from rich.table import Table

    from .compare import How, describe

    if scenario is not None:
        first = scenario.effective_instances[0]
        lying = ", ".join(f"{g} ({describe(spec)})" for g, spec in scenario.traitors.items()) or "none"
        out.print(
            f"[bold]{markup(scenario.name)}[/]: {scenario.generals} generals, m = {scenario.m}, "
            f'commander {first.commander} would order "{markup(first.order)}"; traitors: {markup(lying)}'
        )
    sweeping = scenario is None
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    headers = ["n"] if sweeping else []
    headers += ["algorithm", "traitors", "rounds", "messages", "bytes", "signatures", "seconds"]
    for header in headers:
        table.add_column(header, justify="left" if header == "algorithm" else "right")
    table.add_column("verdict")
    table.add_column("bound")
    previous = None
    for row in rows:
        if sweeping and previous is not None and row.generals != previous:
            table.add_section()
        previous = row.generals
        cells = [str(row.generals)] if sweeping else []
        cells += [
            markup(row.title),
            str(row.traitors),
            str(row.rounds),
            _number(row.messages),
            _number(row.bytes),
            _number(row.signatures),
            "" if row.seconds is None else f"{row.seconds:.3f}",
        ]
        table.add_row(*cells, _verdict_cell(row), "holds" if row.bound_holds else "does not hold")
    out.print(table)
    if any(row.how is How.COMPUTED for row in rows):
        out.print(
            f"computed: over the budget of {budget:,} messages, so not run; the count is the algorithm's "
            "closed form for a run with every general loyal (--budget-messages raises it)"
        )
    if not sweeping:
        out.print(
            "bytes: the run's message lines in its log; signatures: signatures verified; "
            "bound: whether the theorem promises agreement for these generals, m and traitors"
        )
        for row in rows:
            if not row.bound_holds and row.how is not How.REFUSED:
                for warning in REGISTRY[row.algorithm].warnings(row.generals, row.m, row.traitors):
                    out.print(f"{markup(row.title)}: {markup(warning)}")
    for row in rows:
        for note in row.notes:
            out.print(f"[yellow]note:[/] {markup(note)}")


def _number(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if value < 10**15 else f"{value:.3e}"


def _verdict_cell(row: Row) -> str:
    if row.verdict is None:
        return str(row.how)
    if row.verdict.success:
        return "[green]success[/]"
    if row.contradicts_theorem:
        return f"[bold red]{row.outcome}: CONTRADICTS THE THEOREM[/]"
    return f"[yellow]{row.outcome} (allowed)[/]"


@contextmanager
def _sweep_progress(out: Console, total: int, *, quiet: bool) -> Iterator[Callable[[Row], None] | None]:
    """A live bar of rows done, on a terminal."""
    if quiet or not out.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("compare"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("rows", total=total)
        yield lambda row: progress.advance(task)


def _write_violations(tally: Tally, out_dir: Path, adversary: Adversary) -> list[Path]:
    """Every violation as a scenario file in ``out_dir``; a failure names the folder and its reason."""
    from .errors import CannotWrite
    from .verify import write_violation

    try:
        return [write_violation(violation, out_dir, adversary) for violation in tally.violations]
    except OSError as exc:
        raise CannotWrite(f"the violations into --out-dir {out_dir}", exc) from None


@contextmanager
def _verify_progress(
    out: Console, total: int, *, quiet: bool
) -> Iterator[Callable[[CaseReport], None] | None]:
    """A live bar with cases per second and the time left, on a terminal."""
    if quiet or not out.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("verify"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} cases/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("cases", total=total, rate="-")

        def on_case(report: CaseReport) -> None:
            done = progress.tasks[0].completed + 1
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, rate=f"{rate:,.0f}")

        yield on_case


def _load(argument: str | None) -> tuple[Scenario, Path | None]:
    """The scenario SCENARIO names, and its file when it has one.

    ``-`` is standard input; a path that exists wins over a shipped scenario
    of the same name; anything else must be a shipped scenario's name.
    """
    from .catalog import find_scenario
    from .scenario import load_scenario

    if argument is None:
        from .scenario import SEVEN_GENERALS  # built on first use: under a lowered limit, only then refused

        return SEVEN_GENERALS, None
    if argument == STDIN:
        return _from_stdin(), None
    path = Path(argument)
    if not path.exists():
        path = find_scenario(argument)
    return load_scenario(path), path


def _from_stdin() -> Scenario:
    """The scenario piped in, read no further than a scenario file would be."""
    from .errors import Problem, ScenarioError
    from .scenario import parse_scenario, read_scenario_text

    source = "<stdin>"
    if sys.stdin is None:
        raise ScenarioError([Problem("standard input is closed")], source)
    return parse_scenario(read_scenario_text(sys.stdin.buffer, source=source), source=source, name="stdin")


def _log_to_stdout(log_file: Path | None, *, as_json: bool) -> bool:
    """Whether ``--log -`` asks for the log on stdout; refused beside ``--json``, which wants stdout too."""
    to_stdout = log_file is not None and str(log_file) == STDIN
    if to_stdout and as_json:
        raise click.UsageError("--json and --log - would both write to stdout: give --log a file name")
    return to_stdout


def _refuse_overwriting(
    log_file: Path | None, scenario_file: Path | None, *, from_stdin: bool = False, what: str = "--log"
) -> None:
    """Refuse a ``--log`` (or ``what``: ``--html``) that is the scenario file itself, by any name or link.

    A scenario read from standard input may be a file too (``run - < s.yaml``),
    and ``--log /dev/stdin`` would then overwrite it, so with ``from_stdin``
    a log that is the same file as descriptor 0 is refused as well.
    """
    if log_file is None or str(log_file) == STDIN:
        return
    written = "the log" if what == "--log" else "the HTML report"
    if from_stdin and _same_file_as_stdin(log_file):
        raise click.BadParameter(
            f"{printable(str(log_file))} is the standard input the scenario was read from: "
            f"{written} would overwrite it",
            param_hint=f"'{what}'",
        )
    if scenario_file is None:
        return
    with suppress(OSError):  # a log that does not exist yet cannot be the scenario
        if log_file.resolve() == scenario_file.resolve() or os.path.samefile(log_file, scenario_file):
            raise click.BadParameter(
                f"{printable(str(log_file))} is the scenario file {printable(str(scenario_file))}: "
                f"{written} would overwrite it",
                param_hint=f"'{what}'",
            )


def _same_file_as_stdin(path: Path) -> bool:
    """Whether ``path`` names the file standard input reads: the same device and inode."""
    try:
        stdin, log = os.fstat(sys.stdin.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):  # no stdin file, or no log yet: not one file
        return False
    return (stdin.st_dev, stdin.st_ino) == (log.st_dev, log.st_ino)


def _messages(scenario: Scenario) -> int:
    """Messages the run sends with every general loyal, as its algorithm counts them."""
    return scenario.rules.messages_sent(scenario.generals, scenario.m) * len(scenario.effective_instances)


def _log_warnings(scenario: Scenario, mode: str, log_file: Path | None, log_messages: bool) -> list[str]:
    total = _messages(scenario)
    if log_file is None or (mode == "batched" and not log_messages):
        return []
    if total <= BIG_LOG_MESSAGES:
        return []
    size = _size(total * BYTES_PER_LOGGED_MESSAGE)
    if mode != "batched":
        return [f"logging all {total:,} messages writes about {size} and takes long"]
    memory = _size(total * MEMORY_PER_LOGGED_MESSAGE)
    return [
        f"logging all {total:,} messages writes about {size}, takes long and may need up to "
        f"{memory} of memory: a round's messages wait there to be put in order"
    ]


def _mode_warnings(
    scenario: Scenario, mode: str, resolved: str, log_file: Path | None, log_messages: bool
) -> list[str]:
    """What ``auto`` did that its user did not ask for: batch a small run because a lowered limit said so."""
    total = _messages(scenario)
    if mode != "auto" or resolved != "batched" or total > BATCHED_ABOVE:
        return []
    why = "the message limit keeps them from per-message mode"
    if log_file is not None and not log_messages:
        why += ", so the log holds round summaries unless --log-messages"
    return [f"auto runs these {total:,} messages batched: {why}"]


def _size(byte_count: int) -> str:
    megabytes = byte_count / 1e6
    return f"{megabytes / 1000:,.1f} GB" if megabytes >= 1000 else f"{megabytes:,.1f} MB"


@contextmanager
def _reading_progress(out: Console, log: Path, doing: str) -> Iterator[ReadProgress | None]:
    """A progress bar on a terminal, by bytes, while a log big enough to take a while is read.

    A page of sixteen generals' four million messages takes minutes; a
    thirteen-generals log, a second or two.
    """
    try:
        size = log.stat().st_size
    except OSError:
        size = 0
    if out.quiet or not out.is_terminal or size <= READ_PROGRESS_ABOVE:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(doing),
        BarColumn(),
        DownloadColumn(),
        TextColumn("of the log, about"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task(doing, total=size)
        yield lambda read: progress.update(task, completed=read)


@contextmanager
def _progress(out: Console, scenario: Scenario, mode: str) -> Iterator[ProgressHandler | None]:
    """A progress bar on a terminal for runs long enough to notice."""
    total = _messages(scenario)
    if out.quiet or not out.is_terminal or total <= PROGRESS_ABOVE[mode]:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("round {task.fields[round]}/" + str(scenario.rounds)),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} messages sent"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("messages", total=total, round=1)

        def on_progress(round: int, sent: int) -> None:
            progress.update(task, completed=sent, round=round)

        yield on_progress
