"""Model behaviour (directional, invariance, minimum functionality) and the served fast path's
equivalence with the scikit-learn pipeline, for every model family params.yaml offers."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from api.fast_pipeline import FastPipeline
from src.features import FeatureSpec, model_frame
from src.train import log_space, r2_log, train

RELATIVE_TOLERANCE = 1e-6


def rows_of(frame: pd.DataFrame, features) -> list[list]:
    return [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in frame[list(features)].itertuples(index=False)]


def typical_film(prepared, spec) -> pd.DataFrame:
    train = prepared[0]
    film = {name: train[name].median() for name in spec.numeric}
    film.update({name: train[name].mode()[0] for name in spec.categorical})
    return pd.DataFrame([film])


def test_prediction_does_not_fall_as_the_budget_rises(exported_pipeline, prepared, spec):
    films = pd.concat([typical_film(prepared, spec)] * 6, ignore_index=True)
    films["production_budget"] = [1e6, 5e6, 2e7, 5e7, 1e8, 2e8]
    predictions = exported_pipeline.predict(model_frame(films, spec))
    # Boosted trees are piecewise constant: allow a 5 % dip between neighbours, demand a clear rise overall.
    assert (predictions[1:] >= predictions[:-1] * 0.95).all(), predictions
    assert predictions[-1] > 5 * predictions[0]


def test_title_does_not_change_the_prediction(exported_pipeline, prepared, spec):
    test = prepared[1].head(50)
    renamed = test.assign(title="A Completely Different Title")
    np.testing.assert_array_equal(
        exported_pipeline.predict(test.drop(columns=[spec.target])), exported_pipeline.predict(renamed.drop(columns=[spec.target]))
    )


def test_model_beats_predicting_the_median(exported_pipeline, prepared, spec, test_frame):
    train, test, _ = prepared
    actual = test[spec.target].to_numpy()
    baseline = np.full(len(actual), np.median(train[spec.target]))
    model_error = np.abs(log_space(actual) - log_space(exported_pipeline.predict(test_frame))).mean()
    baseline_error = np.abs(log_space(actual) - log_space(baseline)).mean()
    assert model_error < 0.8 * baseline_error
    assert r2_log(exported_pipeline, test_frame, actual) > 0.5


@pytest.fixture(scope="module")
def unseen_rows(prepared, spec):
    """Test rows with categories training never saw, missing values and infrequent categories."""
    frame = prepared[1].head(40).copy()
    frame.loc[frame.index[::2], "distributor"] = "A Distributor Nobody Has Heard Of"
    frame.loc[frame.index[1::3], "mpaa_rating"] = None
    frame.loc[frame.index[::5], "running_time_min"] = np.nan
    frame.loc[frame.index[::7], "source"] = "Based on Toy"  # seen once: pooled as infrequent
    return frame


@pytest.mark.parametrize("family", ["hist_gradient_boosting", "random_forest", "ridge"])
def test_fast_path_equals_sklearn_on_the_whole_test_split(family, prepared, spec, params, exported_pipeline, unseen_rows):
    if family == params["train"]["model"]:
        pipeline = exported_pipeline
    else:
        settings = {**params["train"], "model": family, "random_forest": {**params["train"]["random_forest"], "n_estimators": 40}}
        pipeline, _ = train(prepared[0], spec, settings)
    fast = FastPipeline(pipeline, spec.features)
    for frame in (prepared[1], unseen_rows):
        expected = pipeline.predict(model_frame(frame, spec))
        rows = rows_of(frame, spec.features)
        one_by_one = np.concatenate([fast.predict([row]) for row in rows])
        np.testing.assert_allclose(one_by_one, expected, rtol=RELATIVE_TOLERANCE, atol=0)
        np.testing.assert_allclose(fast.predict(rows), expected, rtol=RELATIVE_TOLERANCE, atol=0)


@pytest.mark.parametrize("kept", ["numeric", "categorical"])
def test_fast_path_with_only_one_kind_of_feature(kept, prepared, params):
    spec = FeatureSpec.from_params(params["schema"])
    spec = replace(spec, categorical=()) if kept == "numeric" else replace(spec, numeric=())
    pipeline, _ = train(prepared[0], spec, {**params["train"], "cv_folds": 2})
    frame = prepared[1]
    fast = FastPipeline(pipeline, spec.features)
    rows = rows_of(frame, spec.features)
    np.testing.assert_allclose(fast.predict(rows), pipeline.predict(model_frame(frame, spec)), rtol=RELATIVE_TOLERANCE, atol=0)
    np.testing.assert_allclose(fast.predict(rows[:1]), pipeline.predict(model_frame(frame.head(1), spec)), rtol=RELATIVE_TOLERANCE, atol=0)
