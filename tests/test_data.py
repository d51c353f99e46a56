"""Expectations on the real data: the raw table as pinned, and the prepared splits."""
import hashlib

import numpy as np
import pandas as pd

from src.features import GROUP_COLUMN
from src.prepare import split_by_group


def test_raw_table_is_the_pinned_vega_datasets_movies(raw_path, raw_table, params, spec):
    assert hashlib.sha256(raw_path.read_bytes()).hexdigest() == params["data"]["sha256"]
    assert len(raw_table) == 3201
    assert set(spec.raw_names.values()) <= set(raw_table.columns)


def test_prepared_rows_are_valid(prepared, spec):
    train, test, report = prepared
    for frame in (train, test):
        assert frame[spec.target].notna().all()
        for column, bounds in spec.ranges.items():
            values = frame[column].dropna()
            assert (values >= bounds.get("min", -np.inf)).all(), column
            assert (values <= bounds.get("max", np.inf)).all(), column
        assert not frame.duplicated(subset=[GROUP_COLUMN, *spec.features, spec.target]).any()
    assert report["rows_train"] + report["rows_test"] + report["rows_dropped"] == report["rows_raw"]
    assert report["dropped_fraction"] < 0.05


def test_dates_are_parsed_and_two_digit_years_fixed(prepared, spec):
    train, test, report = prepared
    years = pd.concat([train, test])["release_date_year"]
    assert years.between(1900, 2012).all()
    assert report["dates_century_fixed"] > 0
    months = pd.concat([train, test])["release_date_month"]
    assert set(months.unique()) <= set(range(1, 13))


def test_split_keeps_each_film_on_one_side(prepared):
    train, test, report = prepared
    assert report["groups_in_both_splits"] == 0
    assert not set(train[GROUP_COLUMN]) & set(test[GROUP_COLUMN])
    # Remakes share a title: they are one group, so all of them land on the same side.
    remakes = pd.concat([train.assign(side="train"), test.assign(side="test")]).groupby(GROUP_COLUMN)["side"]
    assert (remakes.nunique() == 1).all()
    assert 0.15 < len(test) / (len(train) + len(test)) < 0.25


def test_split_is_seeded_and_stable_when_data_grows():
    groups = pd.Series([f"film {i}" for i in range(2000)])
    first = split_by_group(groups, 0.2, seed=7)
    grown = split_by_group(pd.concat([groups, pd.Series([f"new {i}" for i in range(500)])], ignore_index=True), 0.2, seed=7)
    assert first.equals(grown.iloc[:2000])
    assert not first.equals(split_by_group(groups, 0.2, seed=8))
