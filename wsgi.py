"""gunicorn entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""
import sys

try:
    from app import create_app

    app = create_app()
except RuntimeError as exc:
    # config.ConfigurationError, matched by name so this module imports nothing of its own first.
    if type(exc).__name__ != "ConfigurationError":
        raise
    print(f"baton: configuration error: {exc}", file=sys.stderr)
    # 3 is gunicorn's WORKER_BOOT_ERROR: the master stops instead of respawning.
    sys.exit(3)
