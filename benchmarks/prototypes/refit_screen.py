"""Screening for issue 27: how far can refitting the end user's surrogate on the boundary search's
own answers turn its gradient toward the provider's? (A prototype: kept with its result, not
part of the benchmark.)

Run from the repository root, alone:

    .venv/bin/python benchmarks/prototypes/refit_screen.py  # refit_screen.json beside it

For each provider of benchmarks/blackbox.py, trained and surrogated as its ``--routes`` run does
(ROUTE's surrogate, the provider's family left out), ours searches the tuning set (the first
20 pool mistakes) with half the largest target budget, through a black box that logs every
image asked about and its answer (``curves.Recorder``). Copies of the surrogate are then
trained on those answers in VARIANTS' ways, and each one's ``curves.gradient_cosine`` with the
provider (a diagnostic no user has) is written beside the surrogate's before.
"""

from __future__ import annotations

import copy
import json
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

import blackbox as bench  # noqa: E402  (benchmarks/blackbox.py)
import curves  # noqa: E402
import torch  # noqa: E402

from helpers import attacks, data, evaluation, surrogate, training  # noqa: E402
from helpers.attacks import boundary  # noqa: E402

BUDGET = 250  # half of the largest target budget, as the halves routes spend first
VARIANTS = {  # name -> (the pool's answers too, epochs, learning rate)
    "pool and search answers, 10 epochs": (True, 10, 1e-3),
    "pool and search answers, 40 epochs": (True, 40, 1e-3),
    "search answers only, 10 epochs": (False, 10, 1e-3),
    "search answers only, 40 epochs, lr 1e-4": (False, 40, 1e-4),
}


def screen(family: str, dataset: data.Dataset, args) -> dict:
    """VARIANTS' gradient cosines on one provider."""
    model, _, _ = training.train_new_cnn(
        dataset, num_epochs=args.num_epochs, seed=args.seed, architecture=family, progress=False
    )
    model.eval()
    trained = bench.train_user_surrogate(model, dataset, family, args)
    net = bench.route_surrogate(bench.ROUTES[bench.ROUTE], trained, family, args)
    mistakes = evaluation.find_misclassified(model, dataset.pool)
    mistakes = mistakes[mistakes.index.argsort()[: args.max_images]]
    whitebox = attacks.explain(model, mistakes, method="deepfool_refined")
    starts = surrogate.nearest_answered(mistakes.x, mistakes.y, trained.x, trained.targets)
    box, schedule = curves.Recorder(model), curves.SCHEDULE_QUERIES
    options = {**bench.SETTINGS, "starts": starts}
    shrink = BUDGET - schedule
    boundary.explain(box, net, mistakes, max_queries=schedule, num_shrink_queries=shrink, **options)
    asked, answered = torch.cat(box.asked), torch.cat(box.answered)
    record = {
        "search_answers": len(asked),
        "before": curves.gradient_cosine(model, net, mistakes, whitebox),
    }
    for name, (pool, epochs, lr) in VARIANTS.items():
        x = torch.cat([trained.x, asked]) if pool else asked
        targets = torch.cat([trained.targets, answered]) if pool else answered
        refit = copy.deepcopy(net)
        surrogate.fit(refit, x, targets, num_epochs=epochs, lr=lr, seed=args.seed + 2)
        record[name] = curves.gradient_cosine(model, refit.eval(), mistakes, whitebox)
        print(f"{family}: {name}: {record[name]:.3f} (before {record['before']:.3f})", flush=True)
    return record


def main() -> None:
    torch.set_num_threads(1)
    args = types.SimpleNamespace(
        num_epochs=8, seed=0, surrogate_epochs=40, num_members=4, max_images=20
    )
    dataset = data.load_dataset(data.BUNDLED)
    elapsed = curves.clock()
    providers = {family: screen(family, dataset, args) for family in bench.FAMILIES}
    result = {
        "command": "python benchmarks/prototypes/refit_screen.py",
        "route": bench.ROUTE,
        "budget": BUDGET,
        "variants": {name: dict(zip(("pool", "epochs", "lr"), v)) for name, v in VARIANTS.items()},
        "providers": providers,
        **elapsed(),
    }
    (HERE / "refit_screen.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
