"""Explain every misclassified image of a split, sharded across processes with torch.distributed.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/explain_dataset.py            # one process, no process group
    .venv/bin/torchrun --standalone --nproc_per_node=2 benchmarks/explain_dataset.py  # gloo, CPU
    torchrun --standalone --nproc_per_node=N benchmarks/explain_dataset.py --device cuda \\
        --dataset mnist                                       # NCCL, one GPU per process

Your own model and data instead of the course's:

    .venv/bin/python benchmarks/explain_dataset.py --model mypackage.nets:make_net \\
        --weights net.pt --data images.npz

``--model`` names a function (``module:function``, imported with the current folder on the
path) that returns the untrained ``nn.Module``: images (N, C, H, W) in [0, 1] in, logits out;
``--weights`` a ``state_dict`` saved with ``torch.save`` (loaded with ``weights_only=True``);
``--data`` a ``.pt`` or ``.npz`` file of images "x" and labels "y" (``data.load_split``).

The images to explain, in increasing split index, are cut into chunks of --batch-size, and
chunk k goes to rank k % world_size. A chunk is the same batch whatever the number of processes,
so the merged results are bit-identical to a one-process run (a kernel's last bits may depend on
the batch it runs in). Rank 0 gathers the per-image results, sorts them by index and writes
build/bench/explain_dataset.pt (tensors) and build/bench/explain_dataset.json (a summary).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import attacks, data, evaluation, runtime, training  # noqa: E402
from helpers.data import Split  # noqa: E402

SPLITS = ("test", "pool")
# per-image fields kept from each record: x_adv (n, C, H, W), logits (n, K), the others (n,)
FIELDS = (
    "index",
    "y",
    "y_pred",
    "logits",
    "x_adv",
    "logits_adv",
    "attacked",
    "success",
    "misclassified",
    "queries",
    "forward_passes",
    "backward_passes",
    "l2",
    "linf",
)


@dataclass(frozen=True)
class Context:
    """Where this process sits: its rank among world_size, its local rank and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    distributed: bool  # launched by torchrun, with a process group

    def barrier(self) -> None:
        """Wait for every rank (a no-op in a one-process run)."""
        if self.distributed:
            ids = [self.local_rank] if self.device.type == "cuda" else None
            dist.barrier(device_ids=ids)


def explain_chunk(
    model: nn.Module, x: Tensor, y: Tensor, index: Tensor, method: str, settings: dict
) -> dict[str, Tensor]:
    """Explain one chunk and return its record's per-image ``FIELDS`` as CPU tensors.

    Args: x (n, C, H, W) in [0, 1], y (n,) and index (n,) (rows of the split) on the model's
        device; method and settings as ``attacks.explain`` takes them.
    """
    result = attacks.explain(model, x, y, method=method, index=index, **settings)
    return {name: getattr(result, name).detach().cpu() for name in FIELDS}


def shard(order: Tensor, batch_size: int, rank: int, world_size: int) -> list[Tensor]:
    """This rank's chunks of ``order`` (M,): chunk k of ``batch_size`` goes to rank k % world_size.

    A rank with no chunk gets one empty chunk, so that every rank returns the same fields.
    """
    chunks = list(order.split(batch_size))[rank::world_size]
    return chunks or [order[:0]]


def setup(device_name: str) -> Context:
    """Join the process group when torchrun launched us (gloo on CPU, NCCL on CUDA)."""
    device = runtime.resolve_device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device_name}: CUDA is not available here; use --device cpu.")
    if not dist.is_torchelastic_launched():
        return Context(0, 1, 0, device, distributed=False)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SystemExit(
                f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} "
                "GPU(s); launch at most that many processes per node (--nproc_per_node)."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise SystemExit(f"--device {device_name}: a torchrun launch needs --device cpu or cuda.")
    backend = "nccl" if device.type == "cuda" else "gloo"
    # rank 0 may train the model while the others wait: allow it half an hour
    timeout = datetime.timedelta(minutes=30)
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)
    return Context(rank, world_size, local_rank, device, distributed=True)


def load_data_and_model(ctx: Context, args: argparse.Namespace) -> tuple[str, Split, nn.Module]:
    """Every rank loads the images (local rank 0 first: it may download them) and gets rank 0's
    model: (the data's name, the split to explain, the model).

    The data: ``--data``, or ``--split`` of ``--dataset``. The model: ``--model`` with
    ``--weights``, or the course's CNN, which rank 0 loads, or trains and saves while the others
    wait. Rank 0 broadcasts the model, so that every rank explains with the same weights, with
    or without a shared disk.
    """
    if ctx.local_rank != 0:
        ctx.barrier()
    if args.data is not None:
        name, split = args.data.name, data.load_split(args.data)
    else:
        dataset = data.load_dataset(args.dataset)
        name, split = dataset.name, getattr(dataset, args.split)
    if ctx.local_rank == 0:
        ctx.barrier()
    payload: list = [None]
    if ctx.rank == 0:
        if args.model is not None:
            model = user_model(args.model, args.weights)
        else:
            checkpoint = runtime.artifacts_dir() / f"cnn_{dataset.name}.pt"
            model, _ = training.load_or_train(
                dataset, checkpoint, num_epochs=args.num_epochs, seed=args.seed, device=ctx.device
            )
        payload = [model.cpu()]  # a CPU copy: pickled CUDA tensors would land on cuda:0
    if ctx.distributed:
        dist.broadcast_object_list(payload, src=0)
    return name, split, payload[0].to(ctx.device).eval()


def user_model(spec: str, weights: Path | None) -> nn.Module:
    """The model ``spec`` ("package.module:factory") builds, with the ``state_dict`` in
    ``weights`` (loaded with ``weights_only=True``) if given."""
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name.isidentifier():
        raise SystemExit(f"--model must be package.module:factory, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: your module in this folder
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        raise SystemExit(f"--model {spec}: cannot find it ({error})") from None
    model = factory()
    if not isinstance(model, nn.Module):
        raise SystemExit(f"--model {spec} returned a {type(model).__name__}, not an nn.Module")
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as error:
            raise SystemExit(f"--weights {weights} do not fit --model {spec}: {error}") from None
    return model


def select(
    ctx: Context, model: nn.Module, split: Split, whole_split: bool, max_images: int | None
) -> Tensor:
    """Indices (M,) of the images to explain, increasing.

    Rank 0 predicts and broadcasts, so that the ranks agree on the order even where two GPUs
    would round a borderline logit differently.
    """
    payload: list = [None]
    if ctx.rank == 0:
        mistakes = evaluation.find_misclassified(model, split)
        index = torch.arange(len(split)) if whole_split else mistakes.index.cpu().sort().values
        payload = [index[:max_images]]
    if ctx.distributed:
        dist.broadcast_object_list(payload, src=0)
    return payload[0]


def gather(ctx: Context, record: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every rank's per-image ``record`` merged and sorted by index (all ranks get it)."""
    records = [record]
    if ctx.distributed:
        records = [None] * ctx.world_size
        dist.all_gather_object(records, record)
    merged = {name: torch.cat([r[name] for r in records]) for name in record}
    order = merged["index"].argsort()
    return {name: values[order] for name, values in merged.items()}


def summarize(results: dict[str, Tensor], seconds: float) -> dict[str, float | int]:
    """Counts, success rate, mean queries, median L2 and throughput of the merged ``results``.

    Rates and queries are over the misclassified images, the median L2 over the explained ones;
    nan where there are none.
    """
    wrong = results["attacked"]
    explained = wrong & results["success"]
    nan = float("nan")
    return {
        "num_images": len(wrong),
        "num_misclassified": int(wrong.sum()),
        "success_rate": results["success"][wrong].float().mean().item() if wrong.any() else nan,
        "mean_queries": results["queries"][wrong].double().mean().item() if wrong.any() else nan,
        "median_l2": results["l2"][explained].median().item() if explained.any() else nan,
        "seconds": seconds,  # explaining and gathering, timed on rank 0
        "images_per_second": len(wrong) / seconds,
    }


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1, with an error naming the value."""
    if not text.lstrip("+").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int (e.g. 64), got {text!r}")
    return int(text)


def settings_json(text: str) -> dict:
    """An argparse type: a JSON object of keyword arguments for the method."""
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"is not valid JSON ({error}): {text!r}") from None
    if not isinstance(settings, dict):
        example = '{"overshoot": 0.02}'
        raise argparse.ArgumentTypeError(f"must be a JSON object like '{example}', got {text!r}")
    return settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=data.BUNDLED, choices=data.DATASETS)
    parser.add_argument("--model", help="your model: package.module:factory (see above)")
    parser.add_argument("--weights", type=Path, help="your model's state_dict (torch.save)")
    parser.add_argument("--data", type=Path, help="your images and labels: .pt or .npz")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument(
        "--whole-split",
        action="store_true",
        help="explain every image of the split; those the model gets right cost nothing",
    )
    parser.add_argument(
        "--method",
        default="deepfool_refined",
        choices=[m.name for m in attacks.methods("white box")],
    )
    parser.add_argument(
        "--settings", type=settings_json, default={}, help="JSON, e.g. '{\"overshoot\": 0.02}'"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-epochs", type=positive_int, default=8, help="if rank 0 trains")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="images per chunk")
    parser.add_argument("--max-images", type=positive_int, default=None, help="the first ones")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "build" / "bench" / "explain_dataset.pt"
    )
    args = parser.parse_args(argv)
    if args.weights is not None and args.model is None:
        parser.error("--weights needs --model, the function that builds the model they fit")
    for given in (args.weights, args.data):
        if given is not None and not given.is_file():
            parser.error(f"no file at {given}")
    if args.output.suffix != ".pt":
        parser.error(f"--output must end in .pt (the summary goes beside it), got {args.output}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runtime.seed_everything(args.seed)
    ctx = setup(args.device)
    if ctx.device.type == "cuda":  # the same chunk must give the same bits on every GPU
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    name, split, model = load_data_and_model(ctx, args)
    index = select(ctx, model, split, args.whole_split, args.max_images)
    empty = split.x[:0].to(ctx.device), split.y[:0].to(ctx.device), index[:0].to(ctx.device)
    try:  # an empty batch costs nothing and checks the settings before any real work
        explain_chunk(model, *empty, args.method, args.settings)
    except (TypeError, ValueError) as error:
        message = f"--settings {args.settings} do not fit --method {args.method}: {error}"
        raise SystemExit(message) from None

    ctx.barrier()
    start = time.perf_counter()
    parts = []
    for chunk in shard(index, args.batch_size, ctx.rank, ctx.world_size):
        x, y = split.x[chunk].to(ctx.device), split.y[chunk].to(ctx.device)  # (n, C, H, W), (n,)
        parts.append(explain_chunk(model, x, y, chunk.to(ctx.device), args.method, args.settings))
    record = {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
    results = gather(ctx, record)
    seconds = time.perf_counter() - start

    if ctx.rank == 0:
        summary = {
            "dataset": name,
            "split": "all" if args.data is not None else args.split,
            "model": args.model or "the course's SmallCNN",
            "method": args.method,
            "settings": args.settings,
            "world_size": ctx.world_size,
            **summarize(results, seconds),
            "device": str(ctx.device),
            "torch": torch.__version__,
            "command": " ".join(["torchrun" if ctx.distributed else "python", *sys.argv]),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        torch.save(results, args.output)
        args.output.with_suffix(".json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
        print(f"wrote {args.output} and {args.output.with_suffix('.json')}")
    if ctx.distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
