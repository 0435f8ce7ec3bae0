"""The WSGI entry point: Django's application behind the security handler.

Run it from this directory, after ``python manage.py migrate`` (which
creates the user table that ``RemoteUserBackend`` fills). Every path that
needs a password demands HTTPS, so give gunicorn a certificate (README.md,
"The examples under gunicorn" makes one)::

    gunicorn -k gthread -b 127.0.0.1:8000 \
        --certfile cert.pem --keyfile key.pem wsgi:application

or run it behind a front end that terminates TLS and sets
``X-Forwarded-Proto``, as Cloud Run's does.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.wsgi import get_wsgi_application

import securityhandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_site.settings")

application = securityhandler.secure(
    get_wsgi_application(), Path(__file__).resolve().parent / "security.yaml"
)
