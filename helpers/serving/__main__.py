"""Serve a course checkpoint from the command line, until Ctrl-C or SIGTERM:

    python -m helpers.serving --checkpoint artifacts/cnn_mnist.pt [--database FILE]
        [--port PORT] [--keys FILE]

It prints its URL and each key with its plan. ``--keys FILE`` reads the keys from FILE, or, if
FILE does not exist, writes new ones there (one per plan of ``plans.PLANS``), so a restarted
server keeps its keys; the database keeps their usage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from helpers import checkpoints, runtime
from helpers.serving import plans
from helpers.serving.protocol import MAX_BATCH, MAX_BODY_BYTES
from helpers.serving.server import build_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="written by checkpoints.save"
    )
    parser.add_argument(
        "--database",
        type=Path,
        default=None,
        help="SQLite file of usage and answers (default: artifacts/serving.sqlite)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--keys", type=Path, default=None, help="JSON {key: plan}; see above")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH)
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    args = parser.parse_args(argv)
    model, metadata = checkpoints.load(args.checkpoint)
    if args.keys is not None and args.keys.is_file():
        keys = plans.load_keys(args.keys)
    else:
        keys = plans.new_keys()
        if args.keys is not None:
            plans.save_keys(keys, args.keys)
    database = args.database or runtime.artifacts_dir() / "serving.sqlite"
    server, sock, api = build_server(
        model,
        keys=keys,
        database=database,
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        max_body_bytes=args.max_body_bytes,
        name=f"{args.checkpoint.stem} ({metadata.get('dataset', '?')})",
    )
    print(f"serving {args.checkpoint} at {api.url} (database {database})")
    for key, plan in keys.items():
        print(f"key {key}: {json.dumps(plan.to_dict())}")
    print("ready", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
