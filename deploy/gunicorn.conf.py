"""gunicorn settings for the web process; the values come from the service settings."""

from service.settings import load_settings

_settings = load_settings()

bind = _settings.web_bind
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.web_threads
# No access log: polling clients would fill it, and each line costs the server a write and
# honcho a relay. Errors still go to stderr.
