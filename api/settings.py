"""Deployment configuration: environment variables only (params.yaml configures the pipeline)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    model_dir: Path = Path("model")
    max_batch_size: int = 1000
    max_body_bytes: int = 1_000_000

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            model_dir=Path(os.environ.get("MODEL_DIR", cls.model_dir)),
            max_batch_size=int(os.environ.get("MAX_BATCH_SIZE", cls.max_batch_size)),
            max_body_bytes=int(os.environ.get("MAX_BODY_BYTES", cls.max_body_bytes)),
        )
