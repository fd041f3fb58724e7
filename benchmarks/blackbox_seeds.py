"""How much of the black-box benchmark's figures is the draw: the end user's surrogate and the
search's probes drawn from other seeds, the providers and their mistakes kept (issue 27).

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/blackbox_seeds.py --num-threads 1  # build/bench/blackbox_seeds.json

``benchmarks/blackbox.py`` reports one draw: one surrogate trained from one seed, one set of
random probes. Each of its providers is trained here as there (from ``--seed``), the end user
labels the pool and chooses as there, and both its sets of mistakes are judged: the tuning set
(the first pool mistakes, which chose the settings and the route) and the reported set (the first
test mistakes). Then for each draw k of ``--draws`` (k = 0 is the benchmark's own draw): each
route of SEED_ROUTES is trained from the seed ``--seed + 1 + k``, and ours (blackbox.SETTINGS,
pool starts) explains both sets through it at each budget, its probes drawn from seed k. Per
draw: the surrogate's agreement with the black box on the test split, its gradient cosine with
the provider's on each set (a diagnostic no user has), and the median L2 ÷ the developer's.

Nothing here chooses anything. It says how far the reported figures would move with another
draw, and whether ROUTE_RULE's choice between the routes holds from draw to draw.
"""

from __future__ import annotations

import os
import statistics

import blackbox
import common
import curves

from helpers import data, evaluation

SEED_ROUTES = {  # name in blackbox.ROUTES -> how the tables call it: the reported runs' route
    # and the one it replaced (ROUTE_RULE chose between them on --routes' one draw)
    blackbox.ROUTE: "distilled at T = 10 (ROUTE)",
    "one of each candidate family, noise σ = 0.2, averaged over shifts of 2 px": "undistilled",
}
ROLES = ("tuning", "reported")  # the pool mistakes and the test mistakes (blackbox.judged_set)


def main() -> None:
    parser = common.parser(__doc__, "blackbox_seeds.json")
    families = list(blackbox.FAMILIES)
    parser.add_argument("--families", nargs="+", default=families, choices=families)
    parser.add_argument("--draws", type=int, default=4, help="surrogate and probe seeds per route")
    parser.add_argument("--num-members", type=int, default=4, help="as blackbox.py's")
    parser.add_argument("--surrogate-epochs", type=int, default=40)
    parser.add_argument("--budgets", type=int, nargs="+", default=list(blackbox.TARGET_BUDGETS))
    parser.add_argument(
        "--agreement-images", type=int, help="test images for a surrogate's agreement (all)"
    )
    parser.set_defaults(max_images=20, num_threads=1)
    args = parser.parse_args()
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    blackbox.check_agreement_images(parser, args)
    blackbox.each_provider(args, run_provider, write)


def run_provider(family: str, dataset: data.Dataset, args) -> dict:
    """Every route's every draw on one provider's two sets."""
    model, metadata = blackbox.train_provider(family, dataset, args)
    trained = blackbox.train_user_surrogate(model, dataset, family, args)
    cases = {
        role: blackbox.judged_set(
            model, dataset, role, trained, args.max_images, args.agreement_images
        )
        for role in ROLES
    }
    test_images = cases["reported"].test
    record = {
        "test_accuracy": metadata["test_accuracy"],
        "num_mistakes": {role: len(case.mistakes) for role, case in cases.items()},
        "routes": {name: [] for name in SEED_ROUTES},
    }
    test = evaluation.predict_logits(model, test_images).argmax(1)
    for draw in range(args.draws):
        for name in SEED_ROUTES:
            clock = curves.clock()
            seed = args.seed + 1 + draw
            net = blackbox.route_surrogate(blackbox.ROUTES[name], trained, family, args, seed)
            answers = evaluation.predict_logits(net, test_images).argmax(1)
            entry = {"draw": draw, "surrogate_seed": seed, "probe_seed": draw}
            entry["agreement"] = (answers == test).float().mean().item()
            for role, case in cases.items():
                options = {**blackbox.SETTINGS, "starts": case.starts, "probe_seed": draw}
                subject = (model, net, case.mistakes, case.whitebox, args.budgets, name)
                entry[role] = {
                    "gradient_cosine": curves.gradient_cosine(
                        model, net, case.mistakes, case.whitebox
                    ),
                    "curve": curves.ours_curve(*subject, **options),
                }
            entry["seconds"] = clock()["seconds"]
            record["routes"][name].append(entry)
            print(f"{family} draw {draw} {name}: " + describe(entry), flush=True)
    return record


def describe(entry: dict) -> str:
    return "; ".join(
        f"{role} cosine {entry[role]['gradient_cosine']:.2f}" + blackbox.row(entry[role]["curve"])
        for role in ROLES
    )


def ratio(entry: dict, role: str, budget: int) -> float | None:
    """The median L2 ratio of one draw on one set at ``budget`` (None: not every mistake
    explained, as ROUTE_RULE leaves such a route out)."""
    point = next(p for p in entry[role]["curve"] if p["budget"] == budget)
    return point["median_l2_ratio_to_whitebox"] if point["success_rate"] == 1 else None


def spread(values: list[float | None]) -> dict:
    """Lowest, median and highest of the draws' values (None where any draw left a mistake)."""
    if not values or any(v is None for v in values):
        return {"lowest": None, "median": None, "highest": None, "values": values}
    return {
        "lowest": min(values),
        "median": statistics.median(values),
        "highest": max(values),
        "values": values,
    }


def summary(providers: dict, draws: int, budgets: list[int]) -> dict:
    """Per route, set and budget: each draw's median over the providers, and the spread of it
    and of each provider's figure over the draws; per draw, ROUTE_RULE's sum on the tuning set
    for each route and the route it would choose."""
    per_route = {}
    for name in SEED_ROUTES:
        per_route[name] = {}
        for role in ROLES:
            per_route[name][role] = {}
            for budget in budgets:
                each = {
                    family: [ratio(e, role, budget) for e in record["routes"][name]]
                    for family, record in providers.items()
                }
                over = [
                    None
                    if any(each[f][k] is None for f in each)
                    else statistics.median(each[f][k] for f in each)
                    for k in range(draws)
                ]
                per_route[name][role][str(budget)] = {
                    "median_over_providers": spread(over),
                    "providers": {family: spread(values) for family, values in each.items()},
                }
    rule = []
    for k in range(draws):
        scores = {}
        for name in SEED_ROUTES:
            points = [
                p
                for record in providers.values()
                for p in record["routes"][name][k]["tuning"]["curve"]
                if p["budget"] in budgets
            ]
            scores[name] = blackbox.rule_score(points)
        rule.append({"draw": k, "scores": scores, "choice": blackbox.rule_choice(scores)})
    return {"routes": per_route, "rule": rule}


def write(args, providers: dict, seconds: dict, load: tuple[float, ...]) -> None:
    report = {
        "dataset": args.dataset,
        "device": "cpu",
        "families": list(providers),
        "candidates": list(blackbox.CANDIDATES),
        "route": blackbox.ROUTE,
        "seed_routes": SEED_ROUTES,
        "routes": {name: blackbox.ROUTES[name] for name in SEED_ROUTES},
        "draws": args.draws,
        "seed": args.seed,
        "num_members": args.num_members,
        "surrogate_epochs": args.surrogate_epochs,
        "provider_epochs": args.num_epochs,
        "label_queries": blackbox.LABEL_QUERIES,
        "max_images": args.max_images,
        "agreement_images": args.agreement_images,  # None: the whole test split
        "budgets": args.budgets,
        "settings": blackbox.SETTINGS,
        "rule": blackbox.ROUTE_RULE,
        "providers": providers,
        "summary": summary(providers, args.draws, args.budgets),
        **seconds,
        "load_average": {"start": load, "end": os.getloadavg()},
    }
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
