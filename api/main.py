"""The serving app: `create_app()` builds it from the exported model directory; gunicorn calls
`serve()` in each worker (see initializer.sh), so importing this module loads no model."""

import logging
from typing import Any

import orjson
from fastapi import Body, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError

from api.model_store import SCHEMA_FILE, ModelNotReady, ServedModel, load_model, read_json
from api.observability import MODEL_INFO, PREDICTED, MetricsMiddleware, exposition
from api.schemas import BatchPrediction, Prediction, build_models
from api.settings import Settings

log = logging.getLogger("api")


def _json(payload: Any, status_code: int = 200) -> Response:
    # Returning a Response skips FastAPI's response-model validation: the payload is ours.
    return Response(orjson.dumps(payload, default=str), status_code=status_code, media_type="application/json")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    served: ServedModel | None = None
    schema: dict[str, Any] | None = None
    failure = ""
    try:
        schema = read_json(settings.model_dir / SCHEMA_FILE)
        served = load_model(settings.model_dir, schema)
        MODEL_INFO.labels(served.md5, str(served.provenance.get("git", {}).get("commit"))).set(1)
        log.info("serving model %s from %s", served.md5, settings.model_dir)
    except ModelNotReady as error:
        failure = str(error)
        log.error("model not ready: %s", failure)

    app = FastAPI(
        title="Worldwide gross of a film",
        version=served.md5 if served else "unavailable",
        description="Predicts a film's worldwide gross (US dollars) with the model the DVC pipeline exported.",
        max_body_size=settings.max_body_bytes,  # 413 past it, announced or streamed
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> Response:
        # loc, type and msg name what is wrong; echoing the input back could be huge or not
        # representable in JSON (NaN, integers past 64 bits).
        details = [{key: value for key, value in item.items() if key != "input"} for item in error.errors()]
        return _json({"detail": jsonable_encoder(details)}, status_code=422)

    def not_ready() -> Response:
        return _json({"detail": f"model not ready: {failure}"}, status_code=503)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """The process is alive (says nothing about the model)."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], responses={503: {"description": "model not loaded or not verified"}})
    async def ready() -> Response:
        """The model is loaded, its md5 matches the pipeline's record and its fast path is verified."""
        if served is None:
            return not_ready()
        return _json({"status": "ready", "model_version": served.md5})

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @app.get("/v1/model", tags=["model"], responses={503: {"description": "model not ready"}})
    async def model_info() -> Response:
        """Provenance of the model being served: md5 of the loaded file, git commit, params,
        metrics, training data hash, the feature schema and an example request."""
        if served is None:
            return not_ready()
        record = {key: value for key, value in served.provenance.items() if key != "reference"}
        return _json({**record, "model_md5": served.md5, "feature_schema": served.schema, "example": served.schema["example"]})

    body_errors = {
        400: {"description": "body is not text (FastAPI cannot decode it)"},
        413: {"description": f"body larger than {settings.max_body_bytes} bytes"},
        503: {"description": "model not ready"},
    }
    if schema is not None:
        features_model, batch_model = build_models(schema, settings.max_batch_size)
        names = [entry["name"] for entry in schema["features"]]

        @app.post("/v1/predict", tags=["model"], response_model=Prediction, responses=body_errors)
        async def predict(film: features_model = Body(...)) -> Response:  # type: ignore[valid-type]
            """Predicted worldwide gross of one film."""
            if served is None:
                return not_ready()
            value = float(served.pipeline.predict([[getattr(film, name) for name in names]])[0])
            PREDICTED.observe(value)
            return _json({"prediction": value, "model_version": served.md5})

        @app.post(
            "/v1/predict/batch",
            tags=["model"],
            response_model=BatchPrediction,
            responses=body_errors,
            description=f"Predictions for up to {settings.max_batch_size} films, in request order.",
        )
        async def predict_batch(batch: batch_model = Body(...)) -> Response:  # type: ignore[valid-type]
            if served is None:
                return not_ready()
            rows = [[getattr(film, name) for name in names] for film in batch.instances]
            values = served.pipeline.predict(rows).tolist()
            for value in values:
                PREDICTED.observe(value)
            return _json({"predictions": values, "model_version": served.md5})

    app.add_middleware(MetricsMiddleware)
    return app


def serve() -> FastAPI:
    """The app factory gunicorn runs: logging for the worker, settings from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app()
