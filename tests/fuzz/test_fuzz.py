"""The short fuzzing run: mutated files end rendered or rejected, never worse.

Through the engine, every input of a few hundred either renders with both
presets or is refused with a documented code, within a generous time bound.
Through the service (submit, then the worker's Processor), a sample of them
ends COMPLETE or REJECTED after one attempt: never FAILED, never retried.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import ImageRejected
from app.extension import ImagePipeline
from app.processing import Outcome, Result
from tests.fuzz.judge import AVATAR, DEFAULT, PER_INPUT_SECONDS, judge
from tests.fuzz.mutate import Mutation, apply, mutations_strategy, random_mutations
from tests.fuzz.seeds import all_seeds

SEEDS = all_seeds()
SERVICE_SAMPLE = 24


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(seed=st.sampled_from(sorted(SEEDS)), mutations=mutations_strategy())
def test_mutated_files_render_or_are_rejected_with_a_known_code(
    seed: str, mutations: list[Mutation]
) -> None:
    data = apply(SEEDS[seed], mutations)
    for preset in (DEFAULT, AVATAR):
        verdict = judge(data, preset)
        assert verdict.seconds < PER_INPUT_SECONDS, (seed, preset.name, verdict)


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_every_seed_renders_unmutated(seed: str) -> None:
    assert judge(SEEDS[seed], DEFAULT).outcome == "rendered"


def test_mutated_uploads_end_complete_or_rejected_after_one_attempt(
    pipeline: ImagePipeline, run_jobs: Callable[[], list[Result]]
) -> None:
    rng = random.Random(20261203)
    names = sorted(SEEDS)
    job_ids = []
    for index in range(SERVICE_SAMPLE):
        name = names[index % len(names)]
        data = apply(SEEDS[name], random_mutations(rng))
        try:
            job_ids.append(pipeline.submit(data, ("gallery", "avatar")[index % 2], "f"))
        except ImageRejected as refused:
            assert refused.code in {"empty_file", "unsupported_format"}

    results = run_jobs()

    assert len(results) == len(job_ids) >= SERVICE_SAMPLE // 2
    assert {r.outcome for r in results} <= {Outcome.COMPLETE, Outcome.REJECTED}
    for job_id in job_ids:
        record = pipeline.get_status(job_id)
        assert record is not None
        assert record.status.value in {"COMPLETE", "REJECTED"}
        assert record.attempts == 1
