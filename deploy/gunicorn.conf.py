"""gunicorn settings for the web process; the values come from the service settings."""

from rlvr.db.settings import load_settings

_settings = load_settings()

bind = _settings.web_bind
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.web_threads
# The access log on stdout is for a person watching `make up`; keep it short.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
