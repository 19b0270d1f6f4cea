"""Settings, read once from `FHIR_*` environment variables and passed down explicitly.

Every variable is listed in README.md's configuration table; keep the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server configuration. Unset `mongodb_uri` means: start the embedded store under `data_dir`."""

    model_config = SettingsConfigDict(env_prefix="FHIR_", frozen=True)

    mongodb_uri: str | None = None
    database: str = "fhir"
    data_dir: Path = Path(".fhir-data")
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_json_depth: int = 64
    default_page_size: int = 50
    max_page_size: int = 1000
    max_bundle_entries: int = 10_000
    delete_missing_status: int = 204
    embedded_port: int = 27117
    log_level: str = "info"
    seed_demo: bool = False
    export_file_max_bytes: int = 64 * 1024 * 1024
    export_retention_seconds: int = 24 * 3600
    export_stale_seconds: int = 30
    # SMART on FHIR (docs/smart.md). `off` serves every request unauthenticated: for local development only.
    auth: Literal["on", "off"] = "on"
    access_token_seconds: int = 3600
    refresh_token_seconds: int = 30 * 24 * 3600
    backend_token_seconds: int = 300
    group_export_user_scopes: bool = False
    auth_cache_seconds: float = 2.0
    login_max_failures: int = 5
    login_lockout_seconds: int = 30 * 60
    login_attempts_per_minute: int = 20
