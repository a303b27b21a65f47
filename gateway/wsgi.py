"""WSGI entry point for servers other than ``gateway serve``: ``gunicorn gateway.wsgi:app``."""

from .app import create_app

app = create_app()
