"""Code shared by the apps: the API base, the error root, health checks, the in-process scheduler,
the navigation, the Redis channel layer. It sits below every app and imports none of them; the project configuration
(settings, urls, asgi, celery, routing) stays in `fleet/` itself.
"""
