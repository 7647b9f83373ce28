"""Celery workers: the app, thin tasks, and what each job kind runs.

Owns: queues, message sending and the markers that prove a message is in Redis, the job
runners. Does not own: the schema and transitions (`rlvr.db`) or judging code (`sandbox`).
"""
