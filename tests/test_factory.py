"""The application factory, configuration checks and the error shape."""
from __future__ import annotations

import subprocess
import sys

import pytest

import config
from app import create_app
from tests.helpers import PROJECT_ROOT
from tests.plugins.database import make_app


def test_production_refuses_missing_secret():
    with pytest.raises(config.ConfigurationError, match="SECRET_KEY"):
        create_app(config.ProductionConfig, {"SECRET_KEY": None,
                                             "SQLALCHEMY_DATABASE_URI": "postgresql://x/y"})


def test_production_refuses_dev_secret():
    with pytest.raises(config.ConfigurationError, match="SECRET_KEY"):
        create_app(config.ProductionConfig, {"SECRET_KEY": config.INSECURE_DEV_SECRET,
                                             "SQLALCHEMY_DATABASE_URI": "postgresql://x/y"})


def test_production_refuses_missing_database():
    with pytest.raises(config.ConfigurationError, match="DATABASE_URL"):
        create_app(config.ProductionConfig, {"SECRET_KEY": "s" * 40,
                                             "SQLALCHEMY_DATABASE_URI": None})


def test_wsgi_startup_error_is_one_line():
    env = {"PATH": "/usr/bin:/bin", "BATON_ENV": "production"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SECRET_KEY" in lines[0], result.stderr


def test_plain_postgresql_url_uses_psycopg2():
    assert config.psycopg2_url("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert config.psycopg2_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("method, path, status, error", [
    ("GET", "/nowhere", 404, "not_found"),
    ("GET", "/v1/tenants/acme/token", 405, "method_not_allowed"),
    ("DELETE", "/healthz", 405, "method_not_allowed"),
    ("GET", "/v1/tenants/NOT_A_SLUG/jwks.json", 404, "not_found"),
])
def test_http_errors_are_json(client, method, path, status, error):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert body["error"] == error and body["error_description"]


def test_405_keeps_allow_header(client):
    response = client.get("/v1/tenants/acme/token")
    assert "POST" in response.headers["Allow"]


def test_413_body_too_large(client, tenant):
    response = client.post(f"/v1/tenants/{tenant}/token", data="a=" + "x" * 20000,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_too_large"


def test_415_unknown_content_type(client, tenant):
    response = client.post(f"/v1/tenants/{tenant}/token", data="grant_type=password",
                           content_type="text/plain")
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"


def test_500_is_json_without_internals(database_url, caplog):
    app = make_app(database_url)

    @app.get("/boom-for-test")
    def boom():
        raise RuntimeError("internal detail 1234")

    response = app.test_client().get("/boom-for-test")
    assert response.status_code == 500
    assert response.get_json()["error"] == "server_error"
    assert "1234" not in response.get_data(as_text=True)
    assert "internal detail 1234" in caplog.text  # logged server-side with the traceback


def test_bad_number_in_environment_is_one_line():
    env = {"PATH": "/usr/bin:/bin", "BATON_ENV": "development", "BATON_LOCK_TIMEOUT_MS": "soon"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "BATON_LOCK_TIMEOUT_MS" in lines[0], result.stderr
