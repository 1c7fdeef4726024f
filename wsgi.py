"""gunicorn entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""
import sys

from app import create_app
from config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as exc:
    print(f"baton: configuration error: {exc}", file=sys.stderr)
    # 3 is gunicorn's WORKER_BOOT_ERROR: the master stops instead of respawning.
    sys.exit(3)
