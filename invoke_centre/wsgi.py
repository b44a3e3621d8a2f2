"""The WSGI entry point for gunicorn: ``gunicorn invoke_centre.wsgi:application``."""

import os

from invoke_centre.gateway import configure_logging, create_app

configure_logging(os.environ.get("ICS_LOG_LEVEL"))
application = create_app()
# gunicorn imports this module in each worker after the fork: connect now, not on the
# first request, so the rollcall answers are in before traffic arrives
application.centre.start()
