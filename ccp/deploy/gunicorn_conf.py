"""gunicorn settings for CCP's web process: ``gunicorn --config python:ccp.deploy.gunicorn_conf 'ccp.app:create_app()'``
(what ccp-web.service and the container run). Loaded by module name, so a pip install carries it.

Environment (all optional):
  CCP_WEB_BIND        addresses to listen on, comma-separated (default 127.0.0.1:8000; the container: 0.0.0.0:8000)
  CCP_WEB_WORKERS     worker processes (default 2 x CPUs + 1, at most 8); each serves CCP_WEB_THREADS requests
  CCP_WEB_THREADS     threads per worker (default 4: the UI's status widgets poll)
  CCP_WEB_TIMEOUT     seconds before a stuck request's worker is restarted (default 60; long work runs as jobs)
  CCP_CONTROL_SOCKET  gunicornc's control socket (default $CCP_INSTANCE_DIR/gunicorn.ctl, mode 0600; gunicorn
                      before 25.1 has none and ignores these two settings)

Proxy headers are the app's business alone (CCP_PROXY_HOPS, werkzeug's ProxyFix): gunicorn trusts no
X-Forwarded-* from anyone, so a client that reaches it directly cannot claim https or another address.
"""
import os

bind = [b.strip() for b in os.environ.get("CCP_WEB_BIND", "127.0.0.1:8000").split(",") if b.strip()]
workers = int(os.environ.get("CCP_WEB_WORKERS") or min(2 * (os.cpu_count() or 1) + 1, 8))
worker_class = "gthread"
threads = int(os.environ.get("CCP_WEB_THREADS") or 4)
timeout = int(os.environ.get("CCP_WEB_TIMEOUT") or 60)
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = ""
accesslog = "-"
errorlog = "-"
control_socket = os.environ.get("CCP_CONTROL_SOCKET") or os.path.join(
    os.environ.get("CCP_INSTANCE_DIR") or "instance", "gunicorn.ctl")
control_socket_mode = 0o600
