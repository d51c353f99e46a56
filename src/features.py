"""The feature spec: which raw columns become which model features. Derived from params.yaml only,
so prepare, train, evaluate and export cannot disagree about it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from src.common import snake_case

GROUP_COLUMN = "group_key"  # rows sharing it are one film: always on the same side of a split


@dataclass(frozen=True)
class FeatureSpec:
    target: str
    id: str
    date: str | None
    numeric: tuple[str, ...]  # model features, snake_case, including the derived date parts
    categorical: tuple[str, ...]
    raw_names: dict[str, str] = field(default_factory=dict)  # snake_case -> raw column name
    ranges: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_params(cls, schema: dict[str, Any]) -> "FeatureSpec":
        raw_columns = [schema["target"], schema["id"], *schema["numeric"], *schema["categorical"]]
        if schema.get("date"):
            raw_columns.append(schema["date"])
        raw_names = {snake_case(name): name for name in raw_columns}
        if len(raw_names) != len(raw_columns):
            raise ValueError(f"params.yaml schema: columns collide after snake_case: {raw_columns}")
        date = snake_case(schema["date"]) if schema.get("date") else None
        numeric = [snake_case(name) for name in schema["numeric"]]
        if date:
            numeric += [f"{date}_year", f"{date}_month"]
        return cls(
            target=snake_case(schema["target"]),
            id=snake_case(schema["id"]),
            date=date,
            numeric=tuple(numeric),
            categorical=tuple(snake_case(name) for name in schema["categorical"]),
            raw_names=raw_names,
            ranges=dict(schema.get("ranges") or {}),
        )

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def model_frame(table, spec: FeatureSpec):
    """The exact frame the sklearn pipeline is fitted and scored on: float numbers, and object
    categories whose only missing marker is NaN (the imputers do not see None)."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(index=table.index)
    for column in spec.numeric:
        frame[column] = pd.to_numeric(table[column]).astype(np.float64)
    for column in spec.categorical:
        frame[column] = table[column].astype(object).where(table[column].notna(), np.nan)
    return frame
