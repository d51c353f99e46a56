"""Request and response models, generated from the feature schema that the export stage wrote:
the API has no field list of its own, so it cannot drift from what the model was trained on."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

# Integers are floats with multipleOf 1: JSON's 2001.0 is a whole number, while strings stay refused.
_PYTHON_TYPES = {"number": float, "integer": float, "category": str}


def _field(entry: dict[str, Any], example: Any) -> tuple[Any, Any]:
    kind = entry["type"]
    description = f"from column {entry['source_column']!r}"
    constraints: dict[str, Any] = {"strict": True, "examples": [example]}
    if kind == "category":
        shown = ", ".join(entry["categories"][:12])
        description += f"; known: {shown}{', ...' if len(entry['categories']) > 12 else ''} (unknown values are accepted)"
        constraints["min_length"] = 1
    else:
        constraints.update(ge=entry.get("minimum"), le=entry.get("maximum"))
        constraints["allow_inf_nan"] = False
        if kind == "integer":
            constraints["multiple_of"] = 1
        description += f"; seen in training {entry['observed_min']}..{entry['observed_max']}"
    annotation = _PYTHON_TYPES[kind]
    if entry["nullable"]:
        return Optional[annotation], Field(None, description=description + "; may be null", **constraints)
    return annotation, Field(..., description=description, **constraints)


def build_models(schema: dict[str, Any], max_batch_size: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """(one film's features, a batch of them) as pydantic models; unknown fields are refused."""
    fields = {entry["name"]: _field(entry, schema["example"][entry["name"]]) for entry in schema["features"]}
    config = ConfigDict(extra="forbid", json_schema_extra={"examples": [schema["example"]]})
    features = create_model("FilmFeatures", __config__=config, **fields)
    batch = create_model(
        "FilmBatch",
        __config__=ConfigDict(extra="forbid"),
        instances=(list[features], Field(..., min_length=1, max_length=max_batch_size)),
    )
    return features, batch


class Prediction(BaseModel):
    prediction: float = Field(description="predicted worldwide gross, US dollars")
    model_version: str = Field(description="md5 of the model.pkl that made the prediction")


class BatchPrediction(BaseModel):
    predictions: list[float]
    model_version: str
