"""Ray token authentication for the CLIs that talk to an existing cluster (``tune --address``,
``submit``).

Ray 2.60 clusters started with ``ray start`` use token authentication when a token is
available (``RAY_AUTH_MODE=token``, or ``RAY_AUTH_MODE`` unset and a token found), but a
client given an explicit address only sends the token when ``RAY_AUTH_MODE=token`` is set in
its own environment (``ray.init`` auto-enables it for ``address="auto"`` only, and the Jobs SDK
only adds the ``Authorization`` header in token mode). These helpers probe the cluster first
and use the token only when the cluster asks for one, so nothing else has to be set.

The token is found the way Ray's own ``AuthenticationTokenLoader`` finds it (C++
``src/ray/rpc/authentication/authentication_token_loader.cc``; Python side
``ray/_private/authentication/authentication_token_setup.py``), first match wins:

1. ``RAY_AUTH_TOKEN`` (whitespace-trimmed, if not empty);
2. ``RAY_AUTH_TOKEN_PATH``: the first line of that file, trimmed (set but missing or empty is
   an error, as in Ray);
3. with Kubernetes token auth enabled (``is_k8s_token_auth_enabled()``), the pod's service
   account token;
4. ``~/.ray/auth_token`` (``$HOME/.ray/auth_token``): its first line, trimmed.

A missing or rejected token, or an unreachable cluster, raises :class:`RayAuthError` (a
``ValueError``) whose message is one line, for the CLIs to print and exit 2.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
K8S_SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
HOW_TO = ("set RAY_AUTH_TOKEN, point RAY_AUTH_TOKEN_PATH at a file holding it, or write it "
          "to ~/.ray/auth_token (`ray get-auth-token` on the head prints it)")


class RayAuthError(ValueError):
    """The cluster cannot be used: no token, a rejected token, or no answer (one line)."""


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it came from, for messages (never the token itself)

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


def _first_line(path: str | Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return ""


def default_token_path() -> Path:
    """``$HOME/.ray/auth_token`` (Ray reads ``HOME``, not the password database)."""
    home = os.environ.get("HOME")
    return (Path(home) if home else Path(".")) / ".ray" / "auth_token"


def _k8s_token_auth_enabled() -> bool:
    try:
        from ray._raylet import is_k8s_token_auth_enabled
    except ImportError:  # pragma: no cover - Ray without the native module
        return False
    try:
        return bool(is_k8s_token_auth_enabled())
    except Exception:  # pragma: no cover
        return False


def find_token() -> Token | None:
    """The token Ray's own CLI would use (see the module docstring), or None."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    if value:
        return Token(value, f"${TOKEN_ENV}")
    path = os.environ.get(TOKEN_PATH_ENV, "")
    if path:
        value = _first_line(path)
        if not value:
            raise RayAuthError(f"{TOKEN_PATH_ENV} is set but {path} cannot be read or is empty")
        return Token(value, f"{path} (${TOKEN_PATH_ENV})")
    if _k8s_token_auth_enabled():
        value = _first_line(K8S_SA_TOKEN_PATH)
        if value:
            return Token(value, K8S_SA_TOKEN_PATH)
    path = default_token_path()
    value = _first_line(path)
    if value:
        return Token(value, str(path))
    return None


def _explicit_mode() -> str | None:
    mode = os.environ.get(AUTH_MODE_ENV)
    return mode.strip().lower() if mode is not None else None


def enable_token_mode() -> None:
    """Token mode for this process and its children, as Ray's ``_enable_token_auth`` does."""
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ[AUTH_MODE_ENV] = "token"
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


# --------------------------------------------------------------------------- GCS (ray.init)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence fd 2 (Ray's C++ client logs a warning line per refused probe)."""
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _resolve_gcs(address: str) -> str | None:
    """host:port of the GCS for ``address`` ('auto', host:port), None when not applicable."""
    if "://" in address:
        return None  # ray:// (Ray Client) or other schemes: left to ray.init
    from ray._private import services

    try:
        return services.canonicalize_bootstrap_address(address)
    except Exception:
        return None  # e.g. 'auto' with no local cluster: ray.init reports it


def _probe_gcs(gcs: str) -> None:
    """One cheap GCS call; raises ray.exceptions.AuthenticationError when refused."""
    from ray._raylet import GcsClient

    with _quiet_stderr():
        client = GcsClient(address=gcs)
        client.internal_kv_get(b"rl_autoscaling_auth_probe", namespace=None, timeout=10)


def _tcp_reachable(hostport: str, timeout: float = 5.0) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def prepare_ray_init(address: str | None) -> Token | None:
    """Make ``ray.init(address=address)`` work against a token-auth cluster.

    Probes the cluster's GCS without a token (unless ``RAY_AUTH_MODE=token`` is set); if it
    demands one, finds the token as Ray does, switches this process to token mode and probes
    again. Returns the token used (None: the cluster needs none). Raises RayAuthError.
    """
    if not address:
        return None
    gcs = _resolve_gcs(address)
    if gcs is None:
        return None
    if not _tcp_reachable(gcs):
        raise RayAuthError(f"cannot reach the Ray cluster (GCS) at {address}")
    from ray.exceptions import AuthenticationError

    mode = _explicit_mode()
    token = None
    if mode == "token":
        token = find_token()
        if token is None:
            raise RayAuthError(f"{AUTH_MODE_ENV}=token but no Ray auth token found: {HOW_TO}")
        enable_token_mode()
    try:
        _probe_gcs(gcs)
        return token
    except AuthenticationError:
        if token is not None:
            raise RayAuthError(f"the Ray cluster at {address} rejected the auth token from "
                               f"{token.source}") from None
        if mode is not None:  # explicitly disabled
            raise RayAuthError(f"the Ray cluster at {address} requires an auth token but "
                               f"{AUTH_MODE_ENV}={os.environ[AUTH_MODE_ENV]}") from None
    except Exception as exc:
        raise RayAuthError(f"cannot use the Ray cluster at {address}: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                           ) from None
    token = find_token()
    if token is None:
        raise RayAuthError(f"the Ray cluster at {address} requires an auth token and none was "
                           f"found: {HOW_TO}")
    enable_token_mode()
    try:
        _probe_gcs(gcs)
    except AuthenticationError:
        raise RayAuthError(f"the Ray cluster at {address} rejected the auth token from "
                           f"{token.source}") from None
    return token


# --------------------------------------------------------------------------- dashboard (Jobs API)


def _http_status(url: str, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def dashboard_headers(address: str, timeout: float = 10.0) -> dict[str, str]:
    """Headers for ``JobSubmissionClient(address, headers=...)``.

    Asks the dashboard (``GET /api/version``) without a token; on 401 finds the token as Ray
    does and checks the dashboard accepts it. Returns ``{}`` when no token is needed (or the
    address is not HTTP). Raises RayAuthError.
    """
    url = address if "://" in address else f"http://{address}"
    if not url.startswith(("http://", "https://")):
        return {}
    probe = url.rstrip("/") + "/api/version"
    try:
        status = _http_status(probe, {}, timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RayAuthError(f"cannot reach the Ray dashboard at {address}: {reason}") from None
    if status != 401:
        return {}
    token = find_token()
    if token is None:
        raise RayAuthError(f"the Ray dashboard at {address} requires an auth token and none "
                           f"was found: {HOW_TO}")
    try:
        status = _http_status(probe, token.header(), timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RayAuthError(f"cannot reach the Ray dashboard at {address}: {reason}") from None
    if status in (401, 403):
        raise RayAuthError(f"the Ray dashboard at {address} rejected the auth token from "
                           f"{token.source}")
    return token.header()
