"""gunicorn settings for Baton. Override any of them with GUNICORN_CMD_ARGS or flags."""
import multiprocessing
import os
import shutil
import tempfile

bind = "127.0.0.1:8000"
# Sync workers: each handles one request at a time with one pooled connection.
workers = max(2, min(4, multiprocessing.cpu_count() * 2))
worker_class = "sync"
keepalive = 5
timeout = 30
graceful_timeout = 10
accesslog = None  # Baton logs its own request lines
# gunicorn's control socket (for `gunicornc`, gunicorn 25+) sits at one path per user by
# default, so two servers on one machine take it from each other. Baton does not use it;
# to, set `control_socket` to a path of this server's own and this to False.
control_socket_disable = True


def on_starting(server):
    """Prepare the metrics directory; hold the embedded database (if used) for the master's
    lifetime, so it outlives workers."""
    import config

    _prepare_metrics_dir()

    try:
        settings = config.load_settings()
    except config.ConfigurationError:
        return  # each worker reports it in one line and exits 3 (wsgi.py)
    if settings.allow_embedded_database and settings.sqlalchemy_database_uri is None:
        from app.embedded_db import embedded_database_url

        embedded_database_url(settings.embedded_pgdata)


def _prepare_metrics_dir() -> None:
    """prometheus_client's multiprocess directory: set and emptied before any worker starts.

    An operator may name it (PROMETHEUS_MULTIPROC_DIR, e.g. on a tmpfs); it is emptied here,
    because files left by an earlier run would be summed into this one's counters. Otherwise
    the master makes a private temporary directory and removes it at exit. Workers inherit
    the variable, so prometheus_client starts in multiprocess mode in each of them.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="baton-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _owned_dirs.append(path)


_owned_dirs: list[str] = []


def child_exit(server, worker):
    """A dead worker's live gauges must not be summed any more."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for path in _owned_dirs:
        shutil.rmtree(path, ignore_errors=True)
