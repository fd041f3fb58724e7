"""What the server and its clients agree on: the endpoints, the key header, the request id, the
rounding of probabilities, and the error every refusal carries."""

from __future__ import annotations

import hashlib
import json
import re

SERVICE, CLASSIFY, USAGE, HEALTH = "/v1/service", "/v1/classify", "/v1/usage", "/health"
DECIMALS = 4  # probabilities are answered rounded to 4 decimals, as cloud vision APIs round
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # chosen by the client, unique per key
MAX_BATCH = 128  # images per request, unless serve() is told otherwise
MAX_BODY_BYTES = 4 * 2**20  # bytes per request body, unless serve() is told otherwise


class ApiError(Exception):
    """A refusal: the HTTP status, a short code, a message naming what is wrong and the fix,
    and for a limit that passes, the seconds after which to retry."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after

    def body(self) -> dict:
        """The JSON body of the refusal."""
        body = {"error": self.code, "message": self.message}
        return body if self.retry_after is None else {**body, "retry_after": self.retry_after}


def key_id(key: str) -> str:
    """The name a key's usage is stored under: a hash, so the database never holds a key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def bearer(key: str) -> dict[str, str]:
    """The header that carries ``key``."""
    return {"Authorization": f"Bearer {key}"}


def classify_body(request_id: str, images: list[str]) -> bytes:
    """The body of a classify request: ``images`` are base64 PNGs (``codec.encode``)."""
    return json.dumps({"request_id": request_id, "images": images}).encode()


def parse_classify(body: bytes, max_batch: int) -> tuple[str, list]:
    """(request_id, images) of a classify request's body, or a 400/422 naming what is wrong."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "bad_json", f"the body is not JSON ({error}).") from None
    form = '{"request_id": str, "images": [base64 PNG, ...]}'
    if not isinstance(request, dict):
        raise ApiError(400, "bad_json", f"the body must be a JSON object {form}.")
    missing = [name for name in ("request_id", "images") if name not in request]
    if missing:
        raise ApiError(422, "missing_field", f"the body lacks {missing}: send {form}.")
    request_id, images = request["request_id"], request["images"]
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        rule = "1 to 128 characters of A-Z a-z 0-9 . _ : -"
        raise ApiError(422, "bad_request_id", f"request_id must be {rule}, got {request_id!r}.")
    if not isinstance(images, list) or not images:
        raise ApiError(422, "bad_images", "images must be a non-empty list of base64 PNGs.")
    if len(images) > max_batch:
        raise ApiError(
            422,
            "too_many_images",
            f"images has {len(images)} entries, more than max_batch={max_batch}: split them "
            "over several requests.",
        )
    return request_id, images
