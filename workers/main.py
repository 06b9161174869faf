"""The module ``celery worker`` and ``celery beat`` point at::

    celery -A workers.main worker
    celery -A workers.main beat

Importing it builds the Flask app from the environment; nothing else does.
"""

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
