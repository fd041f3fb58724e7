"""The provider's model behind its API (issue 26): speed, load and faults, over HTTP.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/serving.py --num-threads 1      # the course's CNN, bundled data
    .venv/bin/python benchmarks/serving.py --num-clients 8 --requests-per-client 50

The course's CNN (trained first if artifacts/ has no checkpoint) is served by `python -m
helpers.serving` in a process of its own on 127.0.0.1 (`serving.process.ServerProcess`), with a
fresh SQLite database; the end user's side is `remote.RemoteBlackBox`, the in-process peer
`blackbox.BlackBox`. The queries are test images.

1. Speed: queries per second and p50/p99 latency of one call, of a single image and of a batch
   of 32, over HTTP and in process.
2. Load: --num-clients clients at once (threads of this process, a session each), each sending
   --requests-per-client batches of 32: p50/p99 latency, and lost and double-charged queries,
   request id by request id, the server's SQLite log against the clients' journals. Targets:
   p99 under 200 ms, 0 lost, 0 double-charged.
3. Faults: a client run of --fault-requests batches of 32 (journal on) while the server is killed
   with SIGKILL and restarted --kills times: lost and double-charged queries, and whether its
   answers equal an uninterrupted run's. Targets: 0, 0, equal.
4. Explanation runs: the step schedule, schedule + shrink and the boundary search (100 queries,
   as benchmarks/blackbox.py runs it) explain the mistakes with the course's surrogate, through
   the API (batched: each call of the engine is sent as requests of the API's max_batch images)
   and in process through `blackbox.BlackBox(model, bits=8)`, the same 8-bit images: wall times,
   and whether success, queries and sizes are the same. Target: HTTP within 1.5× in process.
5. Phases: what one request of 32 images costs the server (decoding, the forward pass in CPU
   time, alone and as 8 requests batched into one pass, the commit of its charge with
   synchronous = FULL and NORMAL), and the server's CPU time per request under the load of 2.
   docs/serving.md ("Latency under load") reads them.
Writes build/bench/serving.json.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blackbox as blackbox_benchmark  # benchmarks/blackbox.py
import common
import curves
import numpy as np
import torch

from helpers import blackbox, remote, serving
from helpers.attacks import boundary, transfer
from helpers.serving import codec
from helpers.serving.plans import Plan
from helpers.serving.predict import Predictor
from helpers.serving.process import ServerProcess
from helpers.serving.protocol import key_id
from helpers.serving.store import Store

BATCH = 32
UNLIMITED = dict(quota=None, requests_per_second=1e6, burst=10**6)  # limits are not measured here
KEYS = {
    "key-speed": Plan("speed", "label", 1, **UNLIMITED),
    "key-load": Plan("load", "label", 1, **UNLIMITED),
    "key-fault": Plan("fault", "probabilities", 5, **UNLIMITED),
    "key-reference": Plan("reference", "probabilities", 5, **UNLIMITED),
    "key-explain-label": Plan("explain", "label", 1, **UNLIMITED),
    "key-explain-probabilities": Plan("explain", "probabilities", 5, **UNLIMITED),
}
COLUMNS = [
    ("queries/s", "queries_per_second", "10.0f"),
    ("requests/s", "requests_per_second", "11.1f"),
    ("p50 ms", "p50_ms", "8.2f"),
    ("p99 ms", "p99_ms", "8.2f"),
]


def batches(images: torch.Tensor, size: int, count: int, start: int = 0) -> list[torch.Tensor]:
    """``count`` batches of ``size`` images, in order from ``start``, wrapping around."""
    index = torch.arange(start, start + size * count) % len(images)
    return list(images[index].split(size))


def summary(latencies: list[float], num_images: int, seconds: float) -> dict:
    """Queries and requests per second, and latency percentiles in milliseconds."""
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "images": num_images,
        "seconds": seconds,
        "queries_per_second": num_images / seconds,
        "requests_per_second": len(ms) / seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def timed(ask: Callable[[torch.Tensor], torch.Tensor], calls: list[torch.Tensor]) -> dict:
    """One call of ``ask`` per batch, one after another, after one call to warm up."""
    ask(calls[0])
    latencies, start = [], time.perf_counter()
    for x in calls:
        begin = time.perf_counter()
        ask(x)
        latencies.append(time.perf_counter() - begin)
    return summary(latencies, sum(len(x) for x in calls), time.perf_counter() - start)


def reconcile(answered: dict[str, int], charged: dict[str, int]) -> dict:
    """The clients' answered requests against the server's charged ones ({request id: images}):
    lost = answers the books do not hold; double-charged = charges no client holds an answer to
    (a request id is charged at most once: its log's primary key)."""
    lost = sum(n for request, n in answered.items() if charged.get(request) != n)
    double = sum(n for request, n in charged.items() if answered.get(request) != n)
    return {
        "answered": sum(answered.values()),
        "charged": sum(charged.values()),
        "lost": lost,
        "double_charged": double,
    }


def books(database: Path, key: str) -> dict[str, int]:
    with Store(database).read() as ledger:
        return ledger.requests(key_id(key))


def speed(model: torch.nn.Module, url: str, images: torch.Tensor, num_requests: int) -> dict:
    """Single images and batches of 32, in process and over HTTP (one after another)."""
    here, there = blackbox.BlackBox(model), remote.RemoteBlackBox(url, "key-speed")
    singles, batched = batches(images, 1, num_requests), batches(images, BATCH, num_requests)
    return {
        "in process, 1 image": timed(here.labels, singles),
        "in process, batch of 32": timed(here.labels, batched),
        "HTTP, 1 image": timed(there.labels, singles),
        "HTTP, batch of 32": timed(there.labels, batched),
    }


def load(url: str, database: Path, images: torch.Tensor, num_clients: int, count: int) -> dict:
    """``num_clients`` clients at once, each sending ``count`` batches of 32."""
    boxes = [
        remote.RemoteBlackBox(url, "key-load", session=f"client {i}") for i in range(num_clients)
    ]
    latencies: list[float] = []

    def client(i: int) -> None:
        for x in batches(images, BATCH, count, start=i * BATCH * count):
            begin = time.perf_counter()
            boxes[i].labels(x)
            latencies.append(time.perf_counter() - begin)  # list.append is atomic

    start = time.perf_counter()
    with ThreadPoolExecutor(num_clients) as pool:
        list(pool.map(client, range(num_clients)))
    seconds = time.perf_counter() - start
    answered = {k: v for box in boxes for k, v in box.journal.entries().items()}
    record = summary(latencies, sum(box.queries for box in boxes), seconds)
    record.update(clients=num_clients, batch_size=BATCH, retries=sum(box.retries for box in boxes))
    return {**record, **reconcile(answered, books(database, "key-load"))}


def fault_run(
    server: ServerProcess,
    database: Path,
    journal: Path,
    images: torch.Tensor,
    count: int,
    kills: int,
) -> dict:
    """A run of ``count`` batches while the server is killed and restarted ``kills`` times."""
    calls = batches(images, BATCH, count)
    box = remote.RemoteBlackBox(server.url, "key-fault", journal=journal, max_wait=120.0)
    marks = [BATCH * count * (k + 1) // (kills + 1) for k in range(kills)]
    restarts: list[float] = []

    def kill_and_restart() -> None:
        for mark in marks:
            while box.queries < mark:
                time.sleep(0.001)
            begin = time.perf_counter()
            server.kill()
            server.start()
            restarts.append(time.perf_counter() - begin)

    killer = threading.Thread(target=kill_and_restart)
    start = time.perf_counter()
    killer.start()
    answers = [box.top_k(x) for x in calls]
    seconds = time.perf_counter() - start
    killer.join()
    uninterrupted = remote.RemoteBlackBox(server.url, "key-reference")
    same = all(_equal(a, uninterrupted.top_k(x)) for a, x in zip(answers, calls))
    with Store(database).read() as ledger:
        replays = ledger.usage(key_id("key-fault")).replays
    record = {
        "requests": count,
        "batch_size": BATCH,
        "kills": len(restarts),
        "seconds": seconds,
        "restart_seconds": restarts,
        "retries": box.retries,
        "replayed_requests": replays,
        "caller_queries": box.queries,
        "answers_equal_uninterrupted": same,
    }
    return {**record, **reconcile(box.journal.entries(), books(database, "key-fault"))}


def _equal(a: remote.TopK, b: remote.TopK) -> bool:
    return torch.equal(a.labels, b.labels) and torch.equal(a.probabilities, b.probabilities)


# the black-box methods, run through the API and in process on the same 8-bit images: name ->
# (method, settings); the boundary search at 100 queries, as benchmarks/blackbox.py runs it
EXPLANATIONS = {
    "schedule ×1.5 (DeepFool)": (transfer.explain, {}),
    "schedule ×1.5 + 3 shrink steps": (transfer.explain, {"num_shrink_steps": 3}),
    "boundary search, 100 queries": (
        boundary.explain,
        {
            "max_queries": curves.SCHEDULE_QUERIES,
            "num_shrink_queries": 100 - curves.SCHEDULE_QUERIES,
        },
    ),
}
EXPLAIN_PLANS = {  # plan -> (its key, the in-process peer's answers: probabilities or labels)
    "label": ("key-explain-label", False),
    "top5_probabilities": ("key-explain-probabilities", True),
}


def explanation_runs(
    model: torch.nn.Module,
    surrogate: torch.nn.Module,
    mistakes,
    server: ServerProcess,
    device,
) -> list[dict]:
    """Each strategy of EXPLANATIONS explains ``mistakes`` through the API under each plan of
    EXPLAIN_PLANS and in process, with the same surrogate (``compare``)."""
    records = []
    for plan, (key, probabilities) in EXPLAIN_PLANS.items():
        for name, (explain, settings) in EXPLANATIONS.items():
            peer = functools.partial(blackbox.BlackBox, model, probabilities=probabilities, bits=8)
            run = functools.partial(explain, surrogate=surrogate, x=mistakes, **settings)
            record = compare(run, server, key, peer, device)
            rounded = curves.rounded_rate(model, record.pop("result"))
            records.append({"strategy": name, "plan": plan, **record})
            records[-1]["success_after_rounding"] = rounded
            print(explanation_line(records[-1]))
    return records


def compare(run: Callable, server: ServerProcess, key: str, peer: Callable, device) -> dict:
    """``run(black_box=...)`` through the API (a fresh ``RemoteBlackBox`` each time, its calls
    sent as requests of the API's max_batch images) and through a fresh ``peer()`` (a
    ``BlackBox`` answering the same 8-bit images, in process), in turns (``in_turns``):
    wall and CPU times, whether success, queries and sizes are the same, and the result over
    HTTP. The CPU time over HTTP is this process's and the server's: on an idle machine the
    client waits while the server works, so their sum is what the wall time would be."""
    boxes = []

    def over_http():
        boxes.append(remote.RemoteBlackBox(server.url, key))
        return run(black_box=boxes[-1])

    (here, here_time), (http, http_time) = in_turns(
        [lambda: run(black_box=peer()), over_http], device, server
    )
    requests, images = boxes[0].journal.totals()
    assert images == boxes[0].queries == http.forward_passes.sum().item()
    return {
        "http_seconds": http_time["seconds"],
        "in_process_seconds": here_time["seconds"],
        "ratio": http_time["seconds"] / here_time["seconds"],
        "http_cpu_seconds": http_time["cpu_seconds"],
        "in_process_cpu_seconds": here_time["cpu_seconds"],
        "cpu_ratio": http_time["cpu_seconds"] / here_time["cpu_seconds"],
        "same_success": torch.equal(http.success, here.success),
        "same_queries": torch.equal(http.queries, here.queries),
        "same_sizes": torch.equal(http.x_adv, here.x_adv),
        "success_rate": http.success_rate,
        "mean_queries": http.mean_queries,
        "median_l2": median_l2(http),
        "images_answered": images,
        "calls": boxes[0].calls,
        "requests": requests,
        "result": http,
    }


def in_turns(
    functions: list[Callable],
    device,
    server: ServerProcess,
    max_turns: int = 3,
    budget: float = 60.0,
) -> list[tuple[object, dict]]:
    """Run ``functions`` one after another, in turns, up to ``max_turns`` turns or until
    ``budget`` seconds have gone: a machine whose load drifts slows each alike. Returns, for
    each, its first result and its shortest wall time and CPU time (this process's and the
    server's; the server's only where /proc tells it)."""
    results, seconds, cpu = (
        [None] * len(functions),
        [[] for _ in functions],
        [[] for _ in functions],
    )
    start = time.perf_counter()
    while len(seconds[0]) < max_turns and time.perf_counter() - start < budget:
        for i, function in enumerate(functions):
            server_before, cpu_before = server_cpu_seconds(server) or 0.0, time.process_time()
            with common.timer(device) as elapsed:
                output = function()
            server_after = server_cpu_seconds(server) or 0.0
            cpu[i].append(time.process_time() - cpu_before + server_after - server_before)
            seconds[i].append(elapsed())
            results[i] = output if results[i] is None else results[i]
    return [
        (result, {"seconds": min(wall), "cpu_seconds": min(used)})
        for result, wall, used in zip(results, seconds, cpu)
    ]


def median_l2(result) -> float:
    return result.l2[result.success].median().item() if result.success.any() else float("nan")


def explanation_line(record: dict) -> str:
    same = all(record[key] for key in ("same_success", "same_queries", "same_sizes"))
    return (
        f"{record['strategy']:32} {record['plan']:18} HTTP {record['http_seconds']:6.2f} s, in "
        f"process {record['in_process_seconds']:6.2f} s (×{record['ratio']:.2f}; CPU "
        f"×{record['cpu_ratio']:.2f}); "
        f"{record['calls']} calls in {record['requests']} requests; same results: {same}"
    )


def phases(model: torch.nn.Module, images: torch.Tensor) -> dict:
    """What one classify request of 32 images costs the server, phase by phase, in this
    process: decoding, the forward pass (CPU time, so the machine's load does not count) of
    32 images and of 8 × 32 at once (what micro-batching 8 concurrent requests would run), and
    the commit of its charge with synchronous = FULL (the server's) and NORMAL."""
    pixels = codec.to_pixels(images[:BATCH])
    predictor = Predictor(model, tuple(images.shape[1:]))
    eight = torch.cat([pixels] * 8)
    encoded = codec.encode(pixels)
    record = {
        "decode_cpu_ms": cpu_ms(lambda: codec.decode(encoded, tuple(pixels.shape[1:]))),
        "forward_cpu_ms": cpu_ms(lambda: predictor.probabilities(pixels)),
        "forward_8_at_once_cpu_ms": cpu_ms(lambda: predictor.probabilities(eight)),
    }
    record["micro_batching_gain"] = (
        8 * record["forward_cpu_ms"] / record["forward_8_at_once_cpu_ms"]
    )
    with tempfile.TemporaryDirectory(prefix="serving-phases-", dir=common.ROOT / "build") as folder:
        for synchronous in ("FULL", "NORMAL"):
            record[f"commit_{synchronous.lower()}_ms"] = commit_ms(
                Path(folder) / f"{synchronous}.sqlite", synchronous
            )
    return record


def cpu_ms(function: Callable[[], object], repeats: int = 20) -> float:
    """The median CPU time of ``function`` in milliseconds (this process's, not the machine's)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return 1000 * float(np.median(times))


def commit_ms(path: Path, synchronous: str, repeats: int = 50) -> float:
    """The median wall time in milliseconds of charging one request of 32 answers in its own
    transaction, in WAL mode with ``synchronous``, as ``store.Store.write`` does."""
    books = Store(path)
    with books.read() as ledger:
        ledger.db.execute(f"PRAGMA synchronous = {synchronous}")  # this pooled connection's
    answers = [{"labels": [0]}] * BATCH
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        with books.write() as ledger:
            ledger.charge("phases", str(i), "digest", BATCH, 0.0, answers, time.time())
        times.append(time.perf_counter() - start)
    books.close()
    return 1000 * float(np.median(times))


def server_cpu_seconds(server: ServerProcess) -> float | None:
    """CPU seconds the server process has used so far (Linux's /proc; None elsewhere)."""
    stat = Path(f"/proc/{server.process.pid}/stat")
    if not stat.is_file():
        return None
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    parser = common.parser(__doc__, "serving.json")
    parser.add_argument("--num-requests", type=int, default=200, help="per speed measurement")
    parser.add_argument("--num-clients", type=int, default=8)
    parser.add_argument("--requests-per-client", type=int, default=25)
    parser.add_argument("--fault-requests", type=int, default=60)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--surrogate-epochs", type=int, default=40, help="if it must be trained")
    args = parser.parse_args()
    lesson, model, metadata, mistakes = common.setup(args)
    images = lesson.dataset.test.x
    surrogate = lesson.surrogate(  # notebook 04's
        blackbox.BlackBox(model, max_queries=blackbox_benchmark.LABEL_QUERIES),
        num_seed=blackbox_benchmark.LABEL_QUERIES,
        probabilities=True,
        num_epochs=args.surrogate_epochs,
    )
    costs = phases(model, images)
    print(phase_line(costs))
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as folder:
        database, journal = Path(folder) / "serving.sqlite", Path(folder) / "journal.sqlite"
        keys = serving.save_keys(KEYS, Path(folder) / "keys.json")
        server = ServerProcess(
            lesson.path("cnn"), keys=keys, database=database, num_threads=torch.get_num_threads()
        )
        with server:
            speeds = speed(model, server.url, images, args.num_requests)
            common.print_table(speeds, COLUMNS, "one call of", 26)
            before = server_cpu_seconds(server)
            loaded = load(server.url, database, images, args.num_clients, args.requests_per_client)
            after = server_cpu_seconds(server)
            loaded["server_cpu_ms_per_request"] = (
                None if before is None else 1000 * (after - before) / loaded["requests"]
            )
            print(f"\n{args.num_clients} clients at once: {summary_line(loaded)}")
            fault = fault_run(server, database, journal, images, args.fault_requests, args.kills)
            print(
                f"fault run, {fault['kills']} kills: {summary_line(fault)}, answers equal an "
                f"uninterrupted run: {fault['answers_equal_uninterrupted']}"
            )
            print()
            explanations = explanation_runs(model, surrogate, mistakes, server, lesson.device)
    labels_only = [r for r in explanations if r["plan"] == "label"]
    same = ("same_success", "same_queries", "same_sizes")
    targets = {
        "load_p99_under_200_ms": loaded["p99_ms"] < 200,
        "load_nothing_lost_or_double_charged": loaded["lost"] == loaded["double_charged"] == 0,
        "fault_nothing_lost_or_double_charged": fault["lost"] == fault["double_charged"] == 0,
        "fault_answers_equal_uninterrupted": fault["answers_equal_uninterrupted"],
        "explanations_over_http_within_1.5x": all(r["ratio"] <= 1.5 for r in explanations),
        "explanations_over_http_within_1.5x_in_cpu_time": all(
            r["cpu_ratio"] <= 1.5 for r in explanations
        ),
        "label_plan_explanations_same_as_in_process": all(
            r[key] for r in labels_only for key in same
        ),
        "explanations_succeed_after_rounding": all(
            r["success_after_rounding"] == r["success_rate"] for r in explanations
        ),
    }
    report = {
        "dataset": lesson.dataset.name,
        "device": str(lesson.device),
        "test_accuracy": metadata["test_accuracy"],
        "speed": speeds,
        "load": loaded,
        "fault": fault,
        "explanation_runs": explanations,
        "phases": costs,
        "targets": targets,
    }
    common.write_report(args.output, report)


def phase_line(costs: dict) -> str:
    return (
        f"one request of {BATCH} images, server side: decoding {costs['decode_cpu_ms']:.1f} ms "
        f"CPU, forward pass {costs['forward_cpu_ms']:.1f} ms CPU (8 requests in one pass: "
        f"×{costs['micro_batching_gain']:.2f} faster per image), commit "
        f"{costs['commit_full_ms']:.2f} ms (synchronous = FULL) or "
        f"{costs['commit_normal_ms']:.2f} ms (NORMAL)\n"
    )


def summary_line(record: dict) -> str:
    latency = (
        f"p50 {record['p50_ms']:.1f} ms, p99 {record['p99_ms']:.1f} ms, "
        if "p50_ms" in record
        else ""
    )
    return (
        f"{latency}{record['answered']} queries answered, {record['charged']} charged, "
        f"{record['lost']} lost, {record['double_charged']} double-charged"
    )


if __name__ == "__main__":
    main()
