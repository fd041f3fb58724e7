"""Robust accuracy of the standard CNN and its defences, under FGSM, PGD and BPDA.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/robustness.py                 # bundled data, default recipes
    .venv/bin/python benchmarks/robustness.py --device cuda --dataset mnist

Models, all SmallCNNs trained on the provider's training split from the same seed: `standard`;
`noise` (Gaussian noise, std --noise-std, --noise-epochs); `fgsm_rs` (fast adversarial training,
Wong et al. 2020, at --fgsm-eps for --fgsm-epochs: notebook 10's recipe, the model later
notebooks load); `pgd` (Madry et al. 2018 at ε = 0.3, with --pgd-steps steps of --pgd-step-size
for --pgd-epochs: fewer, larger steps than Madry's 40 of 0.01, and more epochs, to fit a CPU);
`bit_depth` (the standard CNN behind input rounding to 2^--bits levels, attacked plainly and
through BPDA). Attacks at each ε: FGSM; PGD with 40 steps of 0.01 and --restarts random
restarts; BPDA (the same PGD through the straight-through view of the rounding) where it
applies. Our PGD is cross-checked against torchattacks' and adv-lib's on the standard model
(accuracy, and images per second: the best of --repeats timed runs). Prints the table and the
issue's targets, and writes build/bench/robustness.json.
"""

from __future__ import annotations

import common
import torch

from helpers import defences, evaluation, metrics
from helpers.attacks import forward

EPSILONS = (0.1, 0.2, 0.3)


def train_models(lesson, model, args) -> dict:
    """Every model of the table, with its recipe and training seconds per epoch (None: not
    trained, or loaded from a checkpoint that did not record it)."""
    pgd = {"eps": 0.3, "num_steps": args.pgd_steps, "step_size": args.pgd_step_size}
    recipes = {
        "noise": (args.noise_epochs, {"std": args.noise_std}),
        "fgsm_rs": (args.fgsm_epochs, {"eps": args.fgsm_eps}),
        "pgd": (args.pgd_epochs, pgd),
    }
    models = {"standard": {"model": model, **_timing(lesson.metadata["cnn"])}}
    for name, (num_epochs, settings) in recipes.items():
        num_epochs = args.robust_epochs or num_epochs
        net = lesson.robust_model(name, num_epochs=num_epochs, **settings)
        timing = _timing(lesson.metadata[f"cnn_{name}"])
        models[name] = {"model": net, **timing, "num_epochs": num_epochs, **settings}
    cleaned = defences.cleaned(model, args.bits)
    models["bit_depth"] = {"model": cleaned, "seconds_per_epoch": None, "bits": args.bits}
    return models


def _timing(metadata: dict) -> dict:
    return {"seconds_per_epoch": metadata.get("seconds_per_epoch")}


def attack(name: str, net, x, y, eps: float, args) -> float:
    """Accuracy of ``net`` on (x, y) under attack ``name`` at ``eps``."""
    if name == "fgsm":
        result = forward.fgsm(net, x, y, eps=eps)  # pgd and bpda below: the nets differ
    else:
        result = forward.pgd(
            net,
            x,
            y,
            eps=eps,
            step_size=0.01,
            num_steps=40,
            num_restarts=args.restarts,
            generator=torch.Generator(x.device).manual_seed(args.seed),
        )
    return metrics.robust_accuracy(result)


def cross_check(model, x, y, eps: float, device, repeats: int) -> dict:
    """Our PGD-40 beside torchattacks' and adv-lib's on the same model, images and eps: the
    accuracy of the first run, and images per second of the fastest of ``repeats`` runs."""
    import torchattacks
    from adv_lib.attacks import pgd_linf  # peers, imported only here

    runs = {
        "ours": lambda: forward.pgd(model, x, y, eps=eps, step_size=0.01, num_steps=40).x_adv,
        "torchattacks": lambda: torchattacks.PGD(model, eps=eps, alpha=0.01, steps=40)(x, y),
        "adv-lib": lambda: pgd_linf(model, x, y, eps, steps=40, absolute_step_size=0.01),
    }
    report = {name: {"seconds": []} for name in runs}
    for _ in range(repeats):  # interleaved, so a busy spell on a shared machine hits all three
        for name, run in runs.items():
            with common.timer(device) as seconds:
                x_adv = run()
            report[name].setdefault("accuracy", accuracy_of(model, x_adv, y))
            report[name]["seconds"].append(seconds())
    for record in report.values():
        record["images_per_second"] = len(x) / min(record["seconds"])
    accuracies = [r["accuracy"] for r in report.values()]
    return {
        "eps": eps,
        "peers": report,
        "within_one_point": max(accuracies) - min(accuracies) <= 0.01,
    }


def accuracy_of(model, x, y) -> float:
    return (evaluation.predict_logits(model, x).argmax(1) == y).float().mean().item()


def check_targets(models: dict, rows: list[dict], check: dict) -> dict[str, bool]:
    """The issue's targets, each True when this run meets it."""
    accuracy = {(r["model"], r["attack"], r["eps"]): r["accuracy"] for r in rows}
    speed = {name: peer["images_per_second"] for name, peer in check["peers"].items()}
    bit_depth = [
        (accuracy[("bit_depth", "bpda", e)], accuracy[("bit_depth", "pgd", e)]) for e in EPSILONS
    ]
    return {
        "standard: PGD-40 at 0.3 <= 5%": accuracy[("standard", "pgd", 0.3)] <= 0.05,
        "fgsm_rs: clean >= 93%": models["fgsm_rs"]["clean_accuracy"] >= 0.93,
        "fgsm_rs: PGD-40 at 0.1 >= 75%": accuracy[("fgsm_rs", "pgd", 0.1)] >= 0.75,
        "pgd: PGD-40 with restarts at 0.3 >= 50%": accuracy[("pgd", "pgd", 0.3)] >= 0.5,
        "bit_depth: BPDA below the plain attack at every eps": all(a < p for a, p in bit_depth),
        "our PGD within one point of both peers": check["within_one_point"],
        "our PGD at least as fast as both peers": speed["ours"] >= max(speed.values()),
    }


def table(models: dict, rows: list[dict]) -> str:
    """The benchmark's table: one row per model, accuracy per attack and eps, seconds per epoch."""
    cells = {name: {"clean": entry["clean_accuracy"]} for name, entry in models.items()}
    for r in rows:
        cells[r["model"]][f"{r['attack'].upper()} {r['eps']}"] = r["accuracy"]
    for name, entry in models.items():
        cells[name]["s / epoch"] = entry["seconds_per_epoch"]
    columns = list(cells["bit_depth"])  # the model with every attack
    ordered = {name: {c: row.get(c) for c in columns} for name, row in cells.items()}
    return metrics.table_markdown(ordered, formats={"s / epoch": ".1f"})


def main() -> None:
    parser = common.parser(__doc__, "robustness.json")
    parser.add_argument("--robust-epochs", type=int, default=None, help="all three, if given")
    parser.add_argument("--noise-std", type=float, default=0.3)
    parser.add_argument("--noise-epochs", type=int, default=2)
    parser.add_argument("--fgsm-eps", type=float, default=0.15)
    parser.add_argument("--fgsm-epochs", type=int, default=4)
    parser.add_argument("--pgd-steps", type=int, default=5, help="PGD training steps")
    parser.add_argument("--pgd-step-size", type=float, default=0.1)
    parser.add_argument("--pgd-epochs", type=int, default=30)
    parser.add_argument("--bits", type=int, default=3, help="input rounding of bit_depth")
    parser.add_argument("--restarts", type=int, default=3, help="PGD restarts in the table")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the cross-check")
    args = parser.parse_args()
    common.require_peers("adv_lib", "torchattacks")
    lesson, model, _, _ = common.setup(args)
    test = lesson.dataset.test
    x, y = test.x[: args.max_images].to(lesson.device), test.y[: args.max_images].to(lesson.device)
    models = train_models(lesson, model, args)

    rows = []
    for name, entry in models.items():
        entry["clean_accuracy"] = accuracy_of(entry["model"], x, y)
        # BPDA: PGD through the straight-through view, whose forward pass is the defence's own
        through = defences.cleaned(model, args.bits, straight_through=True)
        targets = {"fgsm": entry["model"], "pgd": entry["model"]}
        targets.update({"bpda": through} if name == "bit_depth" else {})
        for attack_name, target in targets.items():
            for eps in EPSILONS:
                accuracy = attack(attack_name, target, x, y, eps, args)
                rows.append(
                    {"model": name, "attack": attack_name, "eps": eps, "accuracy": accuracy}
                )
                print(f"{name:10} {attack_name:5} eps {eps:.1f}: accuracy {accuracy:.2%}")
    check = cross_check(model, x, y, 0.1, lesson.device, args.repeats)
    models_report = {n: {k: v for k, v in e.items() if k != "model"} for n, e in models.items()}
    targets = check_targets(models_report, rows, check)
    print("\n" + table(models_report, rows) + "\n")
    for name, peer in check["peers"].items():
        speed = peer["images_per_second"]
        print(f"{name:12} PGD-40 at 0.1: {peer['accuracy']:.2%}, {speed:.0f} images/s")
    for target, met in targets.items():
        print(f"{'met' if met else 'NOT MET':8} {target}")
    report = {
        "dataset": lesson.dataset.name,
        "num_images": len(x),
        "device": str(lesson.device),
        "models": models_report,
        "results": rows,
        "cross_check": check,
        "targets": targets,
    }
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
