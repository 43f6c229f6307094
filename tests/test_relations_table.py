"""The relations table bench/quality.py prints: the ground truth and every variant side by side."""

from __future__ import annotations

from hotdance_jax import evaluate


def test_relations_table_has_the_ground_truth_and_each_variant():
    def scores(truth, generated):
        return {"relations": {"knee_bent": {"ground_truth": truth, "generated": generated},
                              "feet_apart": {"ground_truth": truth / 2, "generated": 0.0}}}

    table = evaluate.relations_table({"full": scores(0.5, 0.25), "raw": scores(0.5, 0.125)})
    assert table.splitlines() == [
        "| relation (fraction of frames) | ground truth | full | raw |",
        "|---|---|---|---|",
        "| knee_bent | 0.500 | 0.250 | 0.125 |",
        "| feet_apart | 0.250 | 0.000 | 0.000 |",
    ]
