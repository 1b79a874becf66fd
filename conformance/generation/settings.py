"""Run profiles of the generated checks: how many examples, which seed, where replays go.

``ci`` (the default) is small and seeded with a fixed seed, so a run is fast and two runs
against the same server try the same examples. ``thorough`` tries many more examples with
a fresh seed per run (printed with any failure). ``load`` runs the load check instead of
the conformance checks (the plugin selects it); its generated parts use ``ci`` budgets.
The hypothesis settings profiles are registered by name (``rep-ci``, ``rep-thorough``,
``rep-load``). The plugin calls :func:`configure` once per session; ``--seed`` fixes the
seed of any profile.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings

PROFILES = ("ci", "thorough", "load")
DEFAULT_PROFILE = "ci"
#: The seed of ``ci`` runs without ``--seed``: fixed, so CI runs are reproducible.
CI_SEED = 20_260_101


@dataclass(frozen=True)
class Budget:
    """Example counts of one profile, per generated check."""

    valid_examples: int
    invalid_examples_per_kind: int
    room_programs: int
    stream_programs: int
    data_programs: int
    program_steps: int
    shrink_seconds: float


BUDGETS = {
    "ci": Budget(
        valid_examples=26,
        invalid_examples_per_kind=3,
        room_programs=30,
        stream_programs=16,
        data_programs=30,
        program_steps=16,
        shrink_seconds=8.0,
    ),
    "thorough": Budget(
        valid_examples=400,
        invalid_examples_per_kind=60,
        room_programs=120,
        stream_programs=80,
        data_programs=120,
        program_steps=40,
        shrink_seconds=30.0,
    ),
}
BUDGETS["load"] = BUDGETS["ci"]

for _name in PROFILES:
    settings.register_profile(
        f"rep-{_name}",
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=False,
        report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
        suppress_health_check=(
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ),
        stateful_step_count=BUDGETS[_name].program_steps,
    )


@dataclass
class Options:
    profile: str = DEFAULT_PROFILE
    seed: int | None = None
    replay_dir: Path | None = None
    target_path: str | None = None


OPTIONS = Options()
_chosen_seed: dict[str, int] = {}


def configure(
    profile: str = DEFAULT_PROFILE,
    seed: int | None = None,
    replay_dir: Path | None = None,
    target_path: str | None = None,
) -> None:
    """Set the session's profile, seed and replay directory (the plugin calls this)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    OPTIONS.profile = profile
    OPTIONS.seed = seed
    OPTIONS.replay_dir = replay_dir
    OPTIONS.target_path = target_path
    _chosen_seed.clear()


def budget() -> Budget:
    return BUDGETS[OPTIONS.profile]


def run_seed() -> int:
    """The seed of this run: ``--seed``, else fixed for ``ci``, else drawn once per run."""
    if OPTIONS.seed is not None:
        return OPTIONS.seed
    if OPTIONS.profile != "thorough":
        return CI_SEED
    return _chosen_seed.setdefault("run", secrets.randbelow(2**32))


def hypothesis_settings(max_examples: int) -> settings:
    return settings(settings.get_profile(f"rep-{OPTIONS.profile}"), max_examples=max_examples)


def replay_dir() -> Path:
    """Where replay files go: the report directory's ``replays`` or a temporary folder."""
    if OPTIONS.replay_dir is not None:
        return OPTIONS.replay_dir
    return Path(tempfile.gettempdir()) / "rep-conformance-replays"
