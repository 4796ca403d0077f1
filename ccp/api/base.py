"""The /api blueprint and the small input helpers its views share (JSON body, pagination, lookups)."""

from __future__ import annotations


from flask import Blueprint, request

from ccp import rules
from ccp.api import errors
from ccp.api.errors import ApiError
from ccp.bodies import parse_json

bp = Blueprint("api", __name__, url_prefix="/api")
errors.register(bp)

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100

# Query parameters each endpoint understands; any other is refused (a typo'd filter must not silently list all).
QUERY_PARAMS = {
    "api.list_instances": {"page", "per_page"},
    "api.instance_upgrades": {"page", "per_page"},
    "api.list_audit": {"page", "per_page", "instance", "actor"},
    "api.list_rollouts": {"page", "per_page"},
}


@bp.before_request
def _known_query_params() -> None:
    unknown = sorted(set(request.args) - QUERY_PARAMS.get(request.endpoint, set()))
    if unknown:
        raise ApiError(400, "invalid_parameter", "unknown query parameter(s): " + ", ".join(unknown)[:200],
                       {name[:100]: "unknown parameter" for name in unknown[:20]})


@bp.after_request
def _no_store(response):
    """API answers carry live state and are per-token: never cache them."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def json_body(*, allow_empty: bool = False) -> dict:
    """The request body as a JSON object.

    400 `invalid_json` when it does not parse (not UTF-8, nested past ccp.bodies.MAX_DEPTH, NaN...), 400
    `invalid_body` when it is not an object (`null` included), 415 when a body is sent with another content type.
    An empty body is {} when `allow_empty`. (The size cap was applied before the view: ccp.bodies.)
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "invalid_body", "a JSON object body is required")
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as Content-Type: application/json")
    try:
        data = parse_json(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the request body must be a JSON object")
    return data


def reject_unknown(data: dict, allowed) -> None:
    """422 naming every field of `data` that is not in `allowed` (typos must not be silently ignored)."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(422, "validation_failed", "unknown field(s): " + ", ".join(unknown),
                       {k: "unknown field" for k in unknown})


def page_args() -> tuple[int, int]:
    """(page, per_page) from the query string: page >= 1, 1 <= per_page <= 100; 400 otherwise."""
    page = _int_arg("page", 1, 1, 10**9)
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    return page, per_page


def page_of(select_stmt, page: int, per_page: int, to_dict) -> dict:
    """Run a paginated select and wrap it: {"items", "page", "per_page", "total"}."""
    from ccp.extensions import db

    result = db.paginate(select_stmt, page=page, per_page=per_page, error_out=False, count=True)
    return {"items": [to_dict(row) for row in result.items], "page": page, "per_page": per_page,
            "total": result.total}


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = int(raw) if rules.ASCII_ID.fullmatch(raw) else None  # ASCII digits only: int() also takes '١', ' 5_0'
    if value is None or not lo <= value <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be a whole number from {lo} to {hi}",
                       {name: "out of range"})
    return value
