"""Running generated examples against the server: explicit cases, then hypothesis.

Each example gets a fresh :class:`~conformance.generation.scenario.Runner` and a fresh
transcript, so the evidence of a failure is the shrunk example alone. A failure becomes a
:class:`GeneratedFailure`: the original finding plus the seed, the shrunk example and a
replay file (the runner's steps) that ``rep-conformance replay`` re-runs.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from hypothesis import given
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument
from hypothesis.internal.conjecture import engine
from hypothesis.reporting import default as default_reporter
from hypothesis.reporting import with_reporter
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from conformance.failures import ConformanceFailure
from conformance.generation import settings as run_settings
from conformance.generation.scenario import Runner
from conformance.harness import Harness
from conformance.http import HttpClient
from conformance.redact import redact, redact_data
from conformance.transcript import Transcript

T = TypeVar("T")
REPLAY_FORMAT = 1
_counter = itertools.count(1)


class GeneratedFailure(ConformanceFailure):
    """A finding of a generated check, with what it takes to reproduce it."""

    def __init__(
        self,
        found: ConformanceFailure,
        *,
        example: str,
        seed: int | None,
        replay_file: Path | None,
        note: str | None = None,
    ) -> None:
        super().__init__(
            found.requirement_ids,
            expected=found.expected,
            received=found.received,
            sent=found.sent,
            transcript=found.transcript,
        )
        self.example = example
        self.seed = seed
        self.replay_file = replay_file
        self.note = note

    def __str__(self) -> str:
        lines = [super().__str__()]
        if self.note:
            lines.append(self.note)
        if self.seed is not None:
            lines.append(f"hypothesis seed: {self.seed} (rerun with --seed {self.seed})")
        lines.append(f"shrunk example: {self.example}")
        if self.replay_file is not None:
            target = run_settings.OPTIONS.target_path or "TARGET.yaml"
            lines.append(
                f"replay file: {self.replay_file} "
                f"(rep-conformance replay {self.replay_file} --target {target})"
            )
        return redact("\n".join(lines))


def shrinking_wait(rep: Harness) -> float:
    """How long expectations wait while hypothesis shrinks a failure it already found.

    A missing message costs a whole wait, and shrinking tries dozens of failing variants,
    so they wait less; the final replay of the shrunk example waits the full answer timeout,
    so a slow but correct server is never blamed (hypothesis reports it as flaky instead).
    """
    return min(rep.timeouts.answer, max(0.3, 2 * rep.timeouts.silence))


@contextlib.contextmanager
def bounded_shrinking(seconds: float) -> Iterator[None]:
    """Shrink for at most ``seconds``, then report the smallest failure found so far.

    Hypothesis stops shrinking after ``MAX_SHRINKING_SECONDS`` (five minutes), an engine
    constant with no setting; an example here costs network round trips, so the profile's
    budget replaces it while this exploration runs, and the engine's warning about slow
    shrinking (which asks users to report a hypothesis problem) is left out.
    """
    previous = engine.MAX_SHRINKING_SECONDS
    engine.MAX_SHRINKING_SECONDS = max(1, int(seconds))

    def reporter(text: object) -> None:
        if not str(text).startswith("WARNING: Hypothesis has spent more than"):
            default_reporter(text)

    try:
        with with_reporter(reporter):
            yield
    finally:
        engine.MAX_SHRINKING_SECONDS = previous


def note_failure(last: dict[str, Any], runner: Runner, title: str) -> None:
    """Remember the failing runner (its steps become the replay file)."""
    last["failed"], last["failed_title"], last["found"] = runner, title, True


@contextlib.contextmanager
def program_end(last: dict[str, Any], runner: Runner, title: str) -> Iterator[None]:
    """A stateful program's teardown: note a failure, count the program, close its clients."""
    try:
        yield
    except ConformanceFailure:
        note_failure(last, runner, title)
        raise
    finally:
        last["steps"] = last.get("steps", 0) + len(runner.steps)
        last["programs"] = last.get("programs", 0) + 1
        runner.close_all()


def _is_final() -> bool:
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:
        return True


def start_example(rep: Harness, title: str, last: dict[str, Any] | None = None) -> Runner:
    """A runner with a fresh transcript: a failure's transcript shows its example only.

    With ``last`` (the exploration's record), a runner started after a failure was found
    waits only :func:`shrinking_wait`, except for hypothesis' final replay.
    """
    rep.transcript = Transcript()
    rep.http = HttpClient(rep.target.node.http_url, rep.transcript, rep.timeouts.answer)
    rep.transcript.note(title)
    runner = Runner(rep)
    if last is not None and last.get("found") and not _is_final():
        runner.within = shrinking_wait(rep)
    return runner


def save_replay(
    runner: Runner, failure: ConformanceFailure, *, check: str, seed: int | None, example: str
) -> Path:
    steps, placeholders = runner.recorded()
    document = {
        "format": REPLAY_FORMAT,
        "check": check,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "requirements": list(failure.requirement_ids),
        "failure": failure.summary(),
        "seed": seed,
        "example": example,
        "placeholders": placeholders,
        "steps": steps,
    }
    directory = run_settings.replay_dir()
    directory.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", check.split("::")[-1]).strip("-")[:72]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = directory / f"{safe}-{stamp}-{next(_counter)}.json"
    # Steps name users by placeholder and replays mint fresh tokens: a credential in the
    # file could only be one a frame carried, and it must not leave the run.
    path.write_bytes(orjson.dumps(redact_data(document), option=orjson.OPT_INDENT_2))
    return path


def first_failure(exc: BaseException) -> ConformanceFailure | None:
    """The conformance finding inside whatever hypothesis raised (plain, grouped, flaky)."""
    if isinstance(exc, ConformanceFailure):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_failure(inner)
            if found is not None:
                return found
    context = exc.__cause__ or exc.__context__
    return first_failure(context) if context is not None else None


def _notes(exc: BaseException) -> str:
    return "\n".join(str(n).rstrip() for n in getattr(exc, "__notes__", []) if n)


def run_cases(
    rep: Harness,
    *,
    check: str,
    cases: Iterable[T],
    body: Callable[[Runner, T], None],
    describe: Callable[[T], str] = repr,
) -> int:
    """Explicit cases (the boundary phase) in order; the first failure is reported as is."""
    count = 0
    for case in cases:
        count += 1
        title = describe(case)
        runner = start_example(rep, title)
        try:
            body(runner, case)
            problem = runner.frame_problems()
            if problem is not None:
                raise problem
        except ConformanceFailure as found:
            path = save_replay(runner, found, check=check, seed=None, example=title)
            raise GeneratedFailure(found, example=title, seed=None, replay_file=path) from found
        finally:
            runner.close_all()
    return count


def explore(
    rep: Harness,
    *,
    check: str,
    strategy: st.SearchStrategy[T],
    body: Callable[[Runner, T], None],
    max_examples: int,
    describe: Callable[[T], str] = repr,
) -> None:
    """Random examples from ``strategy`` (seeded), shrunk on failure, saved for replay."""
    seed = run_settings.run_seed()
    last: dict[str, Any] = {}

    @hypothesis_seed(seed)
    @run_settings.hypothesis_settings(max_examples)
    @given(strategy)
    def example(case: T) -> None:
        title = describe(case)
        runner = start_example(rep, title, last)
        last["runner"], last["title"] = runner, title
        try:
            body(runner, case)
            problem = runner.frame_problems()
            if problem is not None:
                raise problem
        except ConformanceFailure:
            note_failure(last, runner, title)
            raise
        finally:
            runner.close_all()

    try:
        with bounded_shrinking(run_settings.budget().shrink_seconds):
            example()
    except BaseException as exc:
        _report(exc, last, check=check, seed=seed)
        raise


def explore_machine(
    rep: Harness,
    *,
    check: str,
    machine: type[RuleBasedStateMachine],
    max_examples: int,
    last: dict[str, Any],
) -> None:
    """Run a state machine (seeded); ``last`` is where the machine leaves its runner."""
    seed = run_settings.run_seed()
    hypothesis_seed(seed)(machine)
    try:
        with bounded_shrinking(run_settings.budget().shrink_seconds):
            run_state_machine_as_test(
                machine, settings=run_settings.hypothesis_settings(max_examples)
            )
    except BaseException as exc:
        _report(exc, last, check=check, seed=seed)
        raise


def run_finding(
    found: ConformanceFailure, *, runner: Runner, check: str, example: str, note: str
) -> GeneratedFailure:
    """A finding judged over a whole run rather than one example (timing pooled from every
    program): the run's seed repeats it, and ``runner``'s steps are saved as the replay
    file that comes closest; ``note`` says what a replay of it does not repeat."""
    seed = run_settings.run_seed()
    path = save_replay(runner, found, check=check, seed=seed, example=example)
    return GeneratedFailure(found, example=example, seed=seed, replay_file=path, note=note)


def _report(exc: BaseException, last: dict[str, Any], *, check: str, seed: int) -> None:
    """Turn what hypothesis raised into a GeneratedFailure (raised from here)."""
    found = first_failure(exc)
    if found is None or isinstance(found, GeneratedFailure):
        return
    runner: Runner | None = last.get("failed") or last.get("runner")
    title = str(last.get("failed_title") or last.get("title") or "")
    notes = _notes(found) or _notes(exc)
    example = notes or title
    flaky = last.get("failed") is not last.get("runner")
    note = (
        "the failure did not repeat when hypothesis replayed it (timing-dependent?); "
        "the replay file holds the last failing example"
        if flaky
        else None
    )
    path = (
        save_replay(runner, found, check=check, seed=seed, example=example)
        if runner is not None
        else None
    )
    raise GeneratedFailure(found, example=example, seed=seed, replay_file=path, note=note) from exc
