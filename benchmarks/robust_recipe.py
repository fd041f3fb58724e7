"""Notebook 10's PGD recipe: epochs chosen on a validation split, then the test split's clean and
PGD accuracy of the robust CNN beside the standard one's, for several seeds.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/robust_recipe.py                  # seeds 0 1 2, about an hour
    .venv/bin/python benchmarks/robust_recipe.py --epochs 4 --seeds 0   # skip the choice

The recipe: PGD adversarial training (Madry et al. 2018) at --eps with --train-steps steps of
--train-step-size (default 2.5 eps / steps), from the provider's CNN's weights (a warm start,
``Course.robust_model(start_from=...)``), on the whole training split.

1. Choose the epochs. The last --num-val training images are held out (the test split is never
   looked at); the standard CNN of notebook 01 is trained on the rest, fine-tuned with the recipe
   for --max-epochs, and scored after each epoch on the held-out images: clean accuracy, and PGD
   accuracy at eps (10 steps, one restart). Chosen: the epoch count with the best held-out PGD
   accuracy (the fewest, on a tie).
2. Test. For each of --seeds, the notebook's own calls: ``lesson.model()``, then
   ``lesson.robust_model("pgd", start_from=model, ...)`` for the chosen epochs; both attacked on
   the first --max-images test images with PGD of --attack-steps steps of 2.5 eps / steps and
   --restarts random restarts at each of --epsilons. The targets: the robust CNN's clean
   accuracy and its PGD accuracy at eps above the standard CNN's, at every seed.

Prints the validation curve and the table, and writes build/bench/robust_recipe.json.
"""

from __future__ import annotations

import itertools
import time

import common
import torch

from helpers import course, data, defences, evaluation, metrics, runtime, training
from helpers.attacks import forward


def carve(dataset: data.Dataset, num_val: int) -> data.Dataset:
    """``dataset`` whose training split loses its last ``num_val`` images, which become the
    split that ``training`` evaluates after each epoch (its ``test``)."""
    train = dataset.train
    if not 0 < num_val < len(train):
        raise ValueError(f"--num-val must be in (0, {len(train)}), got {num_val}")
    kept = data.Split(train.x[:-num_val], train.y[:-num_val])
    held_out = data.Split(train.x[-num_val:], train.y[-num_val:])
    return data.Dataset(dataset.name, dataset.classes, kept, dataset.pool, held_out, dataset.source)


def pgd_accuracy(model, x, y, eps: float, num_steps: int, num_restarts: int, seed: int) -> float:
    """Accuracy of ``model`` on (x, y) under PGD at ``eps`` (steps of 2.5 eps / num_steps)."""
    generator = torch.Generator(x.device).manual_seed(seed)
    step_size = 2.5 * eps / num_steps
    with runtime.eval_mode(model):
        result = forward.pgd(
            model,
            x,
            y,
            eps=eps,
            num_steps=num_steps,
            step_size=step_size,
            num_restarts=num_restarts,
            generator=generator,
        )
    return metrics.robust_accuracy(result)


def clean_accuracy(model, x, y) -> float:
    return (evaluation.predict_logits(model, x).argmax(1) == y).float().mean().item()


def scored_each_epoch(transform, batches_per_epoch: int, score, scores: list):
    """``transform``, which first appends ``score(model)`` to ``scores`` at the start of every
    epoch but the first (the training loop has no epoch hook; scoring draws nothing from the
    training's generators, so the model trains exactly as it would without it)."""
    calls = itertools.count()

    def wrapped(model, x, y):
        if (call := next(calls)) and call % batches_per_epoch == 0:
            scores.append(score(model))
        return transform(model, x, y)

    return wrapped


def choose_epochs(args, recipe: dict) -> dict:
    """Step 1: the recipe's held-out curve (epoch 0 is the warm start itself) and its choice."""
    dataset = carve(data.load_dataset(args.dataset), args.num_val)
    device = runtime.resolve_device(args.device)
    x, y = dataset.test.x.to(device), dataset.test.y.to(device)  # the held-out images
    score = lambda model: pgd_accuracy(model, x, y, args.eps, 10, 1, args.seed)
    standard, _, _ = training.train_new_cnn(
        dataset, num_epochs=args.num_epochs, seed=args.seed, device=device, progress=False
    )
    scores = [score(standard)]
    generator = torch.Generator(device).manual_seed(args.seed)  # as Course.robust_model's
    transform = defences.make_transform("pgd", recipe, generator)
    batches = -(-len(dataset.train) // 64)  # batches per epoch, of training.train's 64
    robust, _, history = training.train_new_cnn(
        dataset,
        num_epochs=args.max_epochs,
        seed=args.seed,
        device=device,
        initial=standard,
        transform=scored_each_epoch(transform, batches, score, scores),
        progress=False,
    )
    scores.append(score(robust))
    cleans = [clean_accuracy(standard, x, y), *history.test_accuracy]
    curve = [
        {"epoch": epoch, "clean": clean, "pgd": pgd}
        for epoch, (clean, pgd) in enumerate(zip(cleans, scores, strict=True))
    ]
    best = max(curve[1:], key=lambda point: (point["pgd"], -point["epoch"]))
    print(f"held-out curve ({args.num_val} training images; PGD-10 at eps {args.eps}):")
    for point in curve:
        print(f"  epoch {point['epoch']}: clean {point['clean']:.2%}, PGD {point['pgd']:.2%}")
    print(f"chosen: {best['epoch']} epoch(s)\n")
    return {
        "num_val": args.num_val,
        "max_epochs": args.max_epochs,
        "curve": curve,
        "chosen": best["epoch"],
    }


def evaluate_seed(args, seed: int, num_epochs: int, recipe: dict) -> dict:
    """Step 2 for one seed: notebook 10's calls, then each model under attack on the test split."""
    lesson = course.setup(
        seed=seed,
        device=args.device,
        dataset=args.dataset,
        num_epochs=args.num_epochs,
        num_threads=args.num_threads,
    )
    standard = lesson.model()
    robust = lesson.robust_model("pgd", start_from=standard, num_epochs=num_epochs, **recipe)
    test = lesson.dataset.test
    x, y = test.x[: args.max_images].to(lesson.device), test.y[: args.max_images].to(lesson.device)
    record = {
        "num_images": len(x),
        "seconds_per_epoch": lesson.metadata["cnn_pgd"].get("seconds_per_epoch"),
    }
    for name, model in (("standard", standard), ("pgd", robust)):
        row = {"clean": clean_accuracy(model, x, y)}
        for eps in args.epsilons:
            start = time.perf_counter()
            row[f"pgd {eps}"] = pgd_accuracy(
                model, x, y, eps, args.attack_steps, args.restarts, seed
            )
            print(
                f"seed {seed} {name:8} PGD at {eps}: {row[f'pgd {eps}']:.2%} "
                f"({time.perf_counter() - start:.0f} s)"
            )
        record[name] = row
    return record


def check_targets(seeds: dict, eps: float) -> dict[str, bool]:
    """The issue's targets at every seed: clean and PGD accuracy at eps above the standard's."""
    return {
        f"seed {seed}: {column} above the standard CNN's": record["pgd"][column]
        > record["standard"][column]
        for seed, record in seeds.items()
        for column in ("clean", f"pgd {eps}")
    }


def main() -> None:
    parser = common.parser(__doc__, "robust_recipe.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eps", type=float, default=0.1, help="the training budget (L∞)")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--train-step-size", type=float, default=None)
    parser.add_argument("--num-val", type=int, default=500, help="held-out training images")
    # notebook 10's budget: 4 epochs of 3-step PGD cost about as much as 17 standard epochs
    parser.add_argument("--max-epochs", type=int, default=4, help="epochs the choice looks at")
    parser.add_argument("--epochs", type=int, default=None, help="skip the choice: train these")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--attack-steps", type=int, default=40)
    parser.add_argument("--restarts", type=int, default=5)
    args = parser.parse_args()
    if args.attack_steps < 3:  # steps of 2.5 eps / steps: fewer than 3 would leave the ball
        parser.error(f"--attack-steps must be at least 3, got {args.attack_steps}")
    step_size = args.train_step_size or 2.5 * args.eps / args.train_steps
    if step_size > args.eps:
        parser.error(f"the training step {step_size} exceeds --eps {args.eps}: take more steps")
    recipe = {"eps": args.eps, "num_steps": args.train_steps, "step_size": step_size}
    print(f"recipe: PGD training {recipe}, from the provider's CNN\n")
    choice = choose_epochs(args, recipe) if args.epochs is None else {"chosen": args.epochs}
    seeds = {seed: evaluate_seed(args, seed, choice["chosen"], recipe) for seed in args.seeds}
    print()
    for seed, record in seeds.items():
        for name in ("standard", "pgd"):
            cells = ", ".join(f"{key} {value:.2%}" for key, value in record[name].items())
            print(f"seed {seed} {name:8}: {cells}")
    targets = check_targets(seeds, args.eps)
    for target, met in targets.items():
        print(f"{'met' if met else 'NOT MET':8} {target}")
    report = {
        "dataset": args.dataset,
        "device": str(runtime.resolve_device(args.device)),
        "recipe": recipe,
        "num_epochs": choice["chosen"],
        "choice": choice,
        "attack": {"num_steps": args.attack_steps, "num_restarts": args.restarts},
        "num_images": next(iter(seeds.values()))["num_images"],
        "seeds": seeds,
        "targets": targets,
    }
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
