"""The provider's API on 127.0.0.1, spoken to in raw HTTP: keys, plans, limits, bad input, the
SQLite books, and a server that leaves nothing behind."""

import base64
import io
import socket
import threading

import httpx
import numpy as np
import pytest
import tiny
import torch
from PIL import Image

from helpers import serving
from helpers.serving import codec, protocol
from helpers.serving.plans import Plan
from helpers.serving.store import Store

KEYS = {
    "key-a": Plan("label", "label", 1, price_per_1000=1.5),
    "key-b": Plan("top2", "top_k", 2, price_per_1000=2.0),
    "key-p": Plan("top3_probabilities", "probabilities", 3, price_per_1000=4.0),
}


def png(array: np.ndarray, mode: str | None = None, format: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format)
    return base64.b64encode(buffer.getvalue()).decode()


def images(x: torch.Tensor) -> list[str]:
    return codec.encode(codec.to_pixels(x))


def post(api, key: str, request_id: str, encoded: list[str]) -> httpx.Response:
    body = protocol.classify_body(request_id, encoded)
    return httpx.post(api.url + protocol.CLASSIFY, content=body, headers=protocol.bearer(key))


def usage(api, key: str) -> dict:
    return httpx.get(api.url + protocol.USAGE, headers=protocol.bearer(key)).json()


@pytest.fixture
def api(tmp_path):
    with serving.serve(
        tiny.make_cnn(0),
        keys=KEYS,
        database=tmp_path / "books.sqlite",
        input_shape=tiny.SHAPE,
        max_batch=4,
        max_body_bytes=4000,
    ) as api:
        yield api


def test_serve_stops_its_thread_and_frees_its_port():
    before = set(threading.enumerate())
    with serving.serve(tiny.make_cnn(0), keys=KEYS, input_shape=tiny.SHAPE) as api:
        port = int(api.url.rsplit(":", 1)[1])
        assert httpx.get(api.url + protocol.HEALTH).json() == {"status": "ok"}
        assert usage(api, "key-a")["requests"] == 0  # answered on a worker thread
        assert any(t.name.startswith("serving worker") for t in threading.enumerate())
        assert any(t.name == f"serving {api.url}" for t in threading.enumerate())
        assert api.database.is_file()
    assert not any(t.name == f"serving {api.url}" for t in threading.enumerate())
    assert not api.database.exists()  # the default database is temporary
    with pytest.raises(httpx.ConnectError):
        httpx.get(api.url + protocol.HEALTH)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free again
    assert {t for t in threading.enumerate() if t.is_alive()} <= before


def test_requests_without_a_known_key_get_401(api):
    x, _ = tiny.make_batch(0, 1)
    body = protocol.classify_body("r1", images(x))
    for path in (protocol.SERVICE, protocol.USAGE):
        for headers in ({}, protocol.bearer("key-z"), {"Authorization": "key-a"}):
            response = httpx.get(api.url + path, headers=headers)
            assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.post(api.url + protocol.CLASSIFY, content=body).json()["error"] == "no_key"
    refused = httpx.post(
        api.url + protocol.CLASSIFY, content=body, headers=protocol.bearer("key-z")
    )
    assert (
        refused.status_code == 401
        and "unknown API key ending in 'ey-z'" in refused.json()["message"]
    )
    assert usage(api, "key-a")["requests"] == 0


def test_a_key_reads_and_spends_only_its_own_usage(api):
    x, _ = tiny.make_batch(0, 3)
    assert post(api, "key-a", "same-id", images(x)).json()["charged"] == 3
    answered = post(api, "key-b", "same-id", images(x[:2])).json()  # B's id space is B's own
    assert answered["charged"] == 2 and not answered["replayed"]
    assert len(answered["answers"][0]["labels"]) == 2
    a, b = usage(api, "key-a"), usage(api, "key-b")
    assert (a["plan"], a["images"], a["spend_usd"]) == ("label", 3, 0.0045)
    assert (b["plan"], b["images"], b["spend_usd"]) == ("top2", 2, 0.004)
    assert usage(api, "key-p")["images"] == 0


def test_each_plan_answers_as_stated(api):
    model, (x, _) = tiny.make_cnn(0), tiny.make_batch(1, 4)
    expected = model(codec.quantize(x)).softmax(1).detach().double()  # what 8-bit PNGs give
    ranked, order = expected.sort(1, descending=True)
    label = post(api, "key-a", "r", images(x)).json()["answers"]
    top2 = post(api, "key-b", "r", images(x)).json()["answers"]
    top3 = post(api, "key-p", "r", images(x)).json()["answers"]
    assert [a["labels"] for a in label] == order[:, :1].tolist()
    assert [a["labels"] for a in top2] == order[:, :2].tolist()
    assert [a["labels"] for a in top3] == order[:, :3].tolist()
    assert [a["probabilities"] for a in top3] == ranked[:, :3].mul(1e4).round().div(1e4).tolist()
    description = httpx.get(api.url + protocol.SERVICE, headers=protocol.bearer("key-p")).json()
    assert description["input"]["shape"] == [1, 6, 6] and description["classes"] == list("0123")
    assert description["limits"] == {"max_batch": 4, "max_body_bytes": 4000}
    assert description["plan"] == KEYS["key-p"].to_dict()


def test_a_retried_request_is_answered_from_the_log_and_charged_once(api):
    x, _ = tiny.make_batch(0, 2)
    first = post(api, "key-p", "retry-me", images(x)).json()
    again = post(api, "key-p", "retry-me", images(x)).json()
    assert again["answers"] == first["answers"]
    assert (again["replayed"], again["charged"], first["charged"]) == (True, 0, 2)
    books = usage(api, "key-p")
    assert (books["requests"], books["images"], books["replayed_requests"]) == (1, 2, 1)
    assert (books["spend_usd"], books["quota_left"]) == (0.008, 99_998)
    other = post(api, "key-p", "retry-me", images(x.flip(0)))
    assert other.status_code == 409 and "already used for other images" in other.json()["message"]


GOOD = png(np.zeros((6, 6), np.uint8))
TRUNCATED = base64.b64encode(base64.b64decode(GOOD)[:40]).decode()
BAD = {  # case: (the images, or a whole body; the status; what its message says)
    "not base64": (["@@@"], 422, "images[0] is not valid base64"),
    "not a PNG": (
        [GOOD, png(np.zeros((6, 6), np.uint8), format="JPEG")],
        422,
        "images[1] is not a PNG (no PNG signature",
    ),
    "truncated PNG": ([TRUNCATED], 422, "images[0] is not a readable PNG"),
    "wrong size": (
        [png(np.zeros((7, 6), np.uint8))],
        422,
        "is 6×7 pixels (width × height); this model takes 6×6",
    ),
    "colour": (
        [png(np.zeros((6, 6, 3), np.uint8))],
        422,
        "is a PNG of 8-bit RGB; this model takes 8-bit grayscale",
    ),
    "palette": (
        [png(np.zeros((6, 6), np.uint8), "P")],
        422,
        "-bit palette; this model takes 8-bit grayscale",
    ),
    "alpha": ([png(np.zeros((6, 6, 4), np.uint8))], 422, "is a PNG of 8-bit RGBA"),
    "16-bit": (
        [png(np.full((6, 6), 40000, np.uint16))],
        422,
        "images[0] is a PNG of 16-bit grayscale",
    ),
    "too many images": ([GOOD] * 5, 422, "images has 5 entries, more than max_batch=4"),
    "too large a body": ([GOOD] * 3 + ["A" * 4000], 413, "above max_body_bytes=4000"),
    "no request_id": (b'{"images": []}', 422, "lacks ['request_id']"),
    "no images": (b'{"request_id": "x"}', 422, "lacks ['images']"),
    "bad request_id": (b'{"request_id": "a b", "images": []}', 422, "request_id must be 1 to 128"),
    "empty images": (b'{"request_id": "x", "images": []}', 422, "images must be a non-empty list"),
    "not JSON": (b"{images", 400, "the body is not JSON"),
    "not an object": (b"[1, 2]", 400, "the body must be a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_a_4xx_naming_it_and_the_server_keeps_serving(api, case):
    sent, status, message = BAD[case]
    body = sent if isinstance(sent, bytes) else protocol.classify_body("bad", sent)
    response = httpx.post(
        api.url + protocol.CLASSIFY, content=body, headers=protocol.bearer("key-a")
    )
    assert response.status_code == status and message in response.json()["message"]
    x, _ = tiny.make_batch(0, 1)
    assert post(api, "key-a", "good", images(x)).status_code == 200
    assert usage(api, "key-a")["images"] == 1  # a refused request costs nothing


def test_rate_and_quota_get_429_with_retry_after_when_waiting_helps(tmp_path):
    keys = {
        "slow": Plan("slow", requests_per_second=0.1, burst=2),
        "small": Plan("small", quota=3),
        "hourly": Plan("hourly", quota=3, quota_seconds=3600),
    }
    x, _ = tiny.make_batch(0, 2)
    with serving.serve(tiny.make_cnn(0), keys=keys, input_shape=tiny.SHAPE) as api:
        codes = [post(api, "slow", f"r{i}", images(x)).status_code for i in range(3)]
        limited = post(api, "slow", "r9", images(x))
        assert codes == [200, 200, 429] and 0 < int(limited.headers["Retry-After"]) <= 10
        assert "allows 0.1 per second (bursts of 2)" in limited.json()["message"]
        assert post(api, "small", "r1", images(x)).status_code == 200
        spent = post(api, "small", "r2", images(x))
        assert spent.status_code == 429 and "Retry-After" not in spent.headers
        assert "2 are spent, 1 left, and this request asks for 2" in spent.json()["message"]
        assert post(api, "hourly", "r1", images(x)).status_code == 200
        hourly = post(api, "hourly", "r2", images(x))
        assert hourly.status_code == 429 and 0 < int(hourly.headers["Retry-After"]) <= 3600
        assert (usage(api, "small")["images"], usage(api, "small")["quota_left"]) == (2, 1)


def test_the_books_survive_a_restart_on_the_same_database(tmp_path):
    x, _ = tiny.make_batch(0, 3)
    database = tmp_path / "books.sqlite"
    for _ in range(2):  # the second server answers the first one's request from the log
        with serving.serve(
            tiny.make_cnn(0), keys=KEYS, database=database, input_shape=tiny.SHAPE
        ) as api:
            answered = post(api, "key-a", "once", images(x)).json()
    assert (answered["replayed"], answered["charged"]) == (True, 0)
    with Store(database).read() as ledger:
        books = ledger.usage(protocol.key_id("key-a"))
    assert (books.requests, books.images, books.replays) == (1, 3, 1)
