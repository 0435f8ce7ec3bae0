# The Flask example behind securityhandler, served by gunicorn, for Cloud Run.
#
#   docker build -t securityhandler-demo .
#   docker run --rm -p 8080:8080 securityhandler-demo
#
# Your own application instead of the example:
#   1. Copy your code in place of examples/ (the COPY line marked below), and
#      add its requirements to the dependency layer (or to pyproject.toml).
#   2. Give gunicorn your WSGI callable: change the last word of CMD, for
#      example "myproject.wsgi:application" (Django) or "myapp:app" (Flask),
#      or leave this file alone and pass it at deploy time:
#        gcloud run deploy --command gunicorn \
#          --args=-c,python:securityhandler.gunicorn,myapp:app
#   Keep "-c python:securityhandler.gunicorn": it binds $PORT, sizes workers
#   and threads, fits the graceful timeout in Cloud Run's 10 s SIGTERM window
#   and writes JSON logs. Its environment variables (WEB_CONCURRENCY,
#   GUNICORN_THREADS, GUNICORN_GRACEFUL_TIMEOUT, LOG_LEVEL, ...) are listed in
#   securityhandler/gunicorn.py. Set GOOGLE_CLOUD_PROJECT so that Cloud
#   Logging groups each request's lines under its trace.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PORT=8080

# A dedicated user without a login shell or home: the server runs as it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

# Dependencies in their own layer: it is rebuilt only when pyproject.toml
# changes, not on every edit of the source. The runtime dependencies and the
# Flask extra come straight from pyproject.toml.
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['flask']))" > requirements.txt \
    && pip install -r requirements.txt

# The library itself, installed as a user would install it; the source tree
# goes away so that nothing imports it by accident.
COPY README.md ./
COPY securityhandler/ securityhandler/
RUN pip install --no-deps . && rm -rf /src

# The application: replace this line with your own code.
WORKDIR /app
COPY examples/ examples/

USER 10001:10001
EXPOSE 8080

# Exec form: gunicorn is PID 1 in the foreground and receives Cloud Run's
# SIGTERM itself. The working directory /app is on gunicorn's import path.
CMD ["gunicorn", "-c", "python:securityhandler.gunicorn", "examples.flask_app.app:app"]
