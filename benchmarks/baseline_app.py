"""The two baselines `make bench-api` measures our API against, served the same way (gunicorn,
same workers, same request model):
- naive: the tutorial way, a pandas DataFrame per request into the sklearn pipeline;
- echo: validation and a JSON answer, no model at all: the framework's ceiling.
"""
import joblib
import numpy as np
import pandas as pd
from fastapi import Body, FastAPI

from api.model_store import SCHEMA_FILE, read_json
from api.schemas import build_models
from api.settings import Settings

settings = Settings.from_env()
schema = read_json(settings.model_dir / SCHEMA_FILE)
FilmFeatures, _ = build_models(schema, settings.max_batch_size)

naive = FastAPI()
pipeline = joblib.load(settings.model_dir / "model.pkl")


@naive.post("/v1/predict")
def naive_predict(film: FilmFeatures = Body(...)) -> dict:  # type: ignore[valid-type]
    frame = pd.DataFrame([film.model_dump()]).fillna(np.nan)
    return {"prediction": float(pipeline.predict(frame)[0])}


echo = FastAPI()


@echo.post("/v1/predict")
async def echo_predict(film: FilmFeatures = Body(...)) -> dict:  # type: ignore[valid-type]
    return film.model_dump()
