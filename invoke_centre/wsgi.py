"""The WSGI entry point for gunicorn: ``gunicorn invoke_centre.wsgi:application``."""

import os

from invoke_centre.gateway import configure_logging, create_app

configure_logging(os.environ.get("ICS_LOG_LEVEL", "INFO"))
application = create_app()
