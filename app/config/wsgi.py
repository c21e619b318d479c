"""WSGI entry point: gunicorn runs config.wsgi:application with app/ as working directory."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
