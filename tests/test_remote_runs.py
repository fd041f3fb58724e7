"""Whole runs through the API: the course's black-box methods over HTTP, a client run killed and
started again, and a server killed with SIGKILL and restarted under a running client."""

import threading
import time

import servers
import tiny
import torch

from helpers import blackbox, checkpoints, remote, serving, surrogate
from helpers.attacks import boundary, transfer
from helpers.serving.plans import Plan
from helpers.serving.process import ServerProcess
from helpers.serving.protocol import key_id
from helpers.serving.store import Store

KEYS = {
    "label": Plan("label"),
    "probs": Plan("probs", "probabilities", 3),
    "again": Plan("again", "probabilities", 3),
}


def in_process(model: torch.nn.Module) -> blackbox.BlackBox:
    return blackbox.BlackBox(model, probabilities=False, bits=8)  # 8-bit images, as the API


def test_the_black_box_methods_run_over_http_as_in_process_on_8_bit_images():
    model, net = tiny.make_cnn(0), tiny.make_cnn(1)  # the provider's, the user's surrogate
    pool, _ = tiny.make_batch(3, 12)
    x, y = tiny.make_batch(4, 6)
    with serving.serve(model, keys=KEYS, input_shape=tiny.SHAPE) as api:
        box = remote.RemoteBlackBox(api.url, "label")
        results = []
        for black_box in (box, in_process(model)):
            trained = surrogate.train_surrogate(
                black_box, pool, num_classes=4, num_seed=6, num_rounds=1, num_epochs=1
            )
            first = transfer.explain(black_box, net, x, y, max_queries=4)
            final = boundary.explain(
                black_box, net, x, y, max_queries=4, num_shrink_queries=6, num_directions=2
            )
            results.append((trained, first, final))
        books = box.usage()
    (trained, first, final), (trained_here, first_here, final_here) = results
    assert torch.equal(trained.targets, trained_here.targets) and trained.label_queries == 12
    for http, here in ((first, first_here), (final, final_here)):
        assert torch.equal(http.x_adv, here.x_adv) and torch.equal(http.queries, here.queries)
        assert torch.equal(http.success, here.success)
    answered = 12 + first.forward_passes.sum().item() + final.forward_passes.sum().item()
    assert box.queries == answered == books["images"] == box.journal.totals()[1]


def test_a_run_started_again_on_its_journal_pays_for_nothing_twice(tmp_path):
    x, _ = tiny.make_batch(0, 12)
    calls = [x[0:3], x[3:6], x[6:12], x[3:6], x[9:10]]  # x[3:6] asked twice: paid twice
    journal = tmp_path / "journal.sqlite"
    with serving.serve(tiny.make_cnn(0), keys=KEYS, input_shape=tiny.SHAPE, max_batch=4) as api:
        killed = remote.RemoteBlackBox(api.url, "probs", journal=journal)
        for images in calls[:3]:  # ... and the run dies here
            killed.top_k(images)
        killed.close()
        again = remote.RemoteBlackBox(api.url, "probs", journal=journal)
        answers = [again.top_k(images) for images in calls]
        books = again.usage()
        uninterrupted = remote.RemoteBlackBox(api.url, "again")
        reference = [uninterrupted.top_k(images) for images in calls]
    for answer, expected in zip(answers, reference):
        assert torch.equal(answer.labels, expected.labels)
        assert torch.equal(answer.probabilities, expected.probabilities)
    assert (again.queries, again.from_journal, again.charged) == (16, 12, 4)
    assert books["images"] == 16 == again.journal.totals()[1] and books["replayed_requests"] == 0


def test_a_server_killed_and_restarted_mid_run_loses_and_double_charges_nothing(tmp_path):
    checkpoint = servers.save_tiny_checkpoint(tmp_path / "tiny.pt")
    keys = serving.save_keys({"key-k": Plan("probs", "probabilities", 3)}, tmp_path / "keys.json")
    database = tmp_path / "books.sqlite"
    server = ServerProcess(checkpoint, keys=keys, database=database).start()
    assert f"at {server.url}" in server.output[0] and server.output[1].startswith("key key-k: ")
    x = torch.rand((120, *servers.SHAPE), generator=torch.Generator().manual_seed(0))
    box = remote.RemoteBlackBox(server.url, "key-k", journal=tmp_path / "journal.sqlite")

    def kill_and_restart() -> None:
        while box.queries < 45:  # the client goes on asking while the server is down
            time.sleep(0.001)
        server.kill()
        server.start()

    killer = threading.Thread(target=kill_and_restart)
    killer.start()
    answers = [box.top_k(x[i : i + 3]) for i in range(0, 120, 3)]
    killer.join()
    books = box.usage()
    server.stop()
    with Store(database).read() as ledger:
        stored = ledger.usage(key_id("key-k"))
    assert box.queries == 120 == books["images"] == stored.images == box.journal.totals()[1]
    assert stored.requests == 40 and box.retries >= 1
    model, _ = checkpoints.load(checkpoint)
    expected = model(remote.quantize(x)).softmax(1).double().sort(1, descending=True)
    assert torch.equal(torch.cat([a.labels for a in answers]), expected.indices[:, :3])
    rounded = expected.values[:, :3].mul(1e4).round().div(1e4)
    assert torch.equal(torch.cat([a.probabilities for a in answers]), rounded)
