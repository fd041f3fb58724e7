"""The end user's client against a real API on 127.0.0.1: BlackBox's interface over HTTP,
batching, retries (rate, quota, dropped and slow answers), concurrency, and a journal that
makes a restarted run pay for nothing twice."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import tiny
import torch
from servers import Proxy

from helpers import blackbox, remote, serving
from helpers.remote import TopK
from helpers.serving.plans import Plan

KEYS = {
    "label": Plan("label", "label", 1),
    "top2": Plan("top2", "top_k", 2),
    "probs": Plan("probs", "probabilities", 2, price_per_1000=3.0),
}


@pytest.fixture
def api():
    with serving.serve(tiny.make_cnn(0), keys=KEYS, input_shape=tiny.SHAPE, max_batch=4) as api:
        yield api


def in_process(model: torch.nn.Module, probabilities: bool = False) -> blackbox.BlackBox:
    """The same model in process, answering the 8-bit images the API answers."""
    return blackbox.BlackBox(lambda x: model(remote.quantize(x)), probabilities=probabilities)


def test_it_answers_as_the_in_process_black_box_on_8_bit_images(api):
    model, (x, _) = tiny.make_cnn(0), tiny.make_batch(0, 10)
    box = remote.RemoteBlackBox(api.url, "probs")
    assert torch.equal(box.labels(x), in_process(model).labels(x))
    top = box.top_k(x)
    expected = in_process(model, True).probabilities(x).double()
    ranked, order = expected.sort(1, descending=True)
    assert torch.equal(top.labels, order[:, :2])
    assert torch.equal(top.probabilities, ranked[:, :2].mul(1e4).round().div(1e4))
    probabilities = box.probabilities(x)
    assert probabilities.dtype == x.dtype and probabilities.shape == (10, 4)
    assert torch.equal(probabilities.argmax(1), order[:, 0])
    assert torch.allclose(probabilities.sum(1), torch.ones(10), atol=2e-4)
    assert (box.queries, box.queries_left, box.charged, box.answers_probabilities) == (
        30,
        None,
        30,
        True,
    )
    assert box.usage()["images"] == 30 and box.usage()["requests"] == 9  # batches of max_batch=4
    assert "plan 'probs' (probabilities, k=2, $3 per 1,000), 30 queries so far" in repr(box)


def test_spread_keeps_the_apis_order_and_shares_the_rest_evenly():
    labels = torch.tensor([[2, 0], [1, 3]])
    top = torch.tensor([[0.5, 0.25], [0.375, 0.375]], dtype=torch.float64)  # exact in binary
    spread = remote.spread(TopK(labels, top), 4, torch.float32)
    assert torch.equal(spread[0], torch.tensor([0.25, 0.125, 0.5, 0.125]))
    below = torch.tensor(0.375) * (1 - remote.box.TIE)  # the tie, broken
    rest = (1 - (0.375 + below)) / 2  # what the two answers leave, shared by the other two
    assert torch.equal(spread[1], torch.stack([rest, torch.tensor(0.375), rest, below]))
    assert spread.argmax(1).tolist() == [2, 1] and top[1, 1] == 0.375  # the answer unchanged


def test_a_tie_broken_by_spread_survives_the_log_the_engine_takes():
    """Every tie of two rounded probabilities in [0.1, 1): the engine reads log(spread) as
    logits (blackbox.Answers), and its argmax must still be the API's label (one float step
    lost it for 852 of these 9,000)."""
    ties = torch.arange(1000, 10000, dtype=torch.float64).div(10000)[:, None]  # (9000, 1)
    top = torch.cat([ties, ties, torch.zeros(len(ties), 3, dtype=torch.float64)], 1)
    labels = torch.tensor([3, 1, 2, 0, 4]).expand(len(ties), 5)
    for dtype in (torch.float32, torch.float64):
        logits = remote.spread(TopK(labels, top), 10, dtype).log()
        assert (logits.argmax(1) == 3).all()
        assert (logits.gather(1, labels).diff(dim=1)[:, :1] < 0).all()


def test_bad_pixels_raise_before_any_request(api):
    box = remote.RemoteBlackBox(api.url, "label")
    x, _ = tiny.make_batch(0, 2)
    for bad, message in (
        (x.clone().fill_(float("nan")), "NaN"),
        (x * 2, "in [0, 1]"),
        (x[:, :, :5], "this API takes (1, 6, 6)"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            box.labels(bad)
    assert box.usage()["requests"] == 0 and box.queries == 0


def test_label_plans_refuse_probabilities_and_budgets_hold(api):
    box = remote.RemoteBlackBox(api.url, "top2", max_queries=5)
    x, _ = tiny.make_batch(0, 3)
    with pytest.raises(PermissionError, match="'top2' answers 'top_k' without probabilities"):
        box.probabilities(x)
    assert box.top_k(x).probabilities is None and box.queries_left == 2
    with pytest.raises(blackbox.QueryBudgetExceeded, match="only 2 of max_queries=5"):
        box.labels(x)
    assert box.usage()["images"] == 3


def test_rate_and_quota_limits_are_waited_out_or_refused():
    keys = {
        "slow": Plan("slow", requests_per_second=1.0, burst=1),
        "window": Plan("window", quota=4, quota_seconds=1.0),
        "spent": Plan("spent", quota=4),
    }
    model, (x, _) = tiny.make_cnn(0), tiny.make_batch(0, 4)
    with serving.serve(model, keys=keys, input_shape=tiny.SHAPE) as api:
        slow = remote.RemoteBlackBox(api.url, "slow")
        window = remote.RemoteBlackBox(api.url, "window")
        for box in (slow, window):
            for _ in range(3):  # each call after the first waits for a token, or a new window
                assert torch.equal(box.labels(x), in_process(model).labels(x))
        assert slow.retries >= 2 and window.retries >= 1  # a call may start a new window
        assert (slow.usage()["requests"], window.usage()["images"]) == (3, 12)
        spent = remote.RemoteBlackBox(api.url, "spent")
        spent.labels(x[:3])
        with pytest.raises(blackbox.QueryBudgetExceeded, match="waiting does not renew it"):
            spent.labels(x[:2])
        assert spent.queries == 3 and spent.usage()["images"] == 3


@pytest.mark.parametrize("fault", ["drop", "delay"])
def test_a_dropped_or_slow_answer_is_retried_and_charged_once(api, fault):
    proxy = Proxy(int(api.url.rsplit(":", 1)[1]))
    box = remote.RemoteBlackBox(proxy.url, "label", timeout=1.0)
    x, _ = tiny.make_batch(0, 3)
    if fault == "drop":  # the server has answered; the client never hears it
        proxy.drop(1)
    else:  # the answer comes after the client's time-out
        proxy.delay(1, 2.0)
    assert torch.equal(box.labels(x), in_process(tiny.make_cnn(0)).labels(x))
    usage = box.usage()
    proxy.close()
    assert box.retries >= 1 and (usage["requests"], usage["images"]) == (1, 3)
    assert usage["replayed_requests"] >= 1 and (box.queries, box.journal.totals()) == (3, (1, 3))


def test_eight_concurrent_clients_are_counted_exactly():
    keys = {"shared": Plan("shared"), "capped": Plan("capped", quota=20)}
    x, _ = tiny.make_batch(0, 30)
    with serving.serve(tiny.make_cnn(0), keys=keys, input_shape=tiny.SHAPE, max_batch=4) as api:
        shared = [remote.RemoteBlackBox(api.url, "shared", session=str(i)) for i in range(8)]
        capped = [remote.RemoteBlackBox(api.url, "capped") for _ in range(8)]

        def ask(box: remote.RemoteBlackBox, start: int) -> None:
            for call in range(5):  # 6 images: two requests of max_batch=4 and 2
                box.labels(x[start + call : start + call + 6])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, shared, range(8)))
        with ThreadPoolExecutor(8) as pool:
            asked = [pool.submit(box.labels, x[:4]) for box in capped]  # 1 request each
        books, capped_books = shared[0].usage(), capped[0].usage()
    assert sum(box.queries for box in shared) == 8 * 5 * 6 == books["images"]
    assert (books["requests"], books["replayed_requests"]) == (8 * 5 * 2, 0)
    refused = [isinstance(a.exception(), blackbox.QueryBudgetExceeded) for a in asked]
    assert capped_books["images"] == 20 and sum(refused) == 3  # the quota held under contention
    assert sum(box.queries for box in capped) == 20
