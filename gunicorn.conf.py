"""gunicorn settings for Baton. Override any of them with GUNICORN_CMD_ARGS or flags."""
import multiprocessing

bind = "127.0.0.1:8000"
# Sync workers: each handles one request at a time with one pooled connection.
workers = max(2, min(4, multiprocessing.cpu_count() * 2))
worker_class = "sync"
keepalive = 5
timeout = 30
graceful_timeout = 10
accesslog = None  # Baton logs its own request lines


def on_starting(server):
    """Hold the embedded database (if used) for the master's lifetime, so it outlives workers."""
    import config

    try:
        settings = config.load_settings()
    except config.ConfigurationError:
        return  # each worker reports it in one line and exits 3 (wsgi.py)
    if settings.allow_embedded_database and settings.sqlalchemy_database_uri is None:
        from app.embedded_db import embedded_database_url

        embedded_database_url(settings.embedded_pgdata)
