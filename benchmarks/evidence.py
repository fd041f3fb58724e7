"""What a change does inside the network (notebook 11): MOD and VID of Grad-CAM under FGSM,
promotion/suppression shares, and the speed of Grad-CAM plus SSIM.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/evidence.py                 # bundled data, default settings
    .venv/bin/python benchmarks/evidence.py --device cuda --dataset mnist

Models: the provider's SmallCNN (`standard`), a LeNetBN of helpers.zoo trained for
--second-epochs under its own checkpoint name, and notebook 10's robust model (FGSM from a
random start at ε = 0.15 for --robust-epochs). MOD (Chakraborty et al. 2022): the mean NISSIM
between the Grad-CAM map of the predicted class on each correctly classified test image (the
first --max-images) and that of the predicted class on its FGSM version, at each ε, at an
earlier and at the last conv layer; VID: the standard deviation of MOD over the ε. Shares:
the course's promotion/suppression categories for white-box explanations and black-box
explanations of the provider's mistakes (notebook 05's surrogate and strategy, with 3 shrink
steps), and for PGD (ε = --pgd-eps, --pgd-steps steps) on its
right answers. Speed: images per second of Grad-CAM (last conv layer) plus SSIM against the
clean map, over the whole test set (the best of up to 3 runs). Writes build/bench/evidence.json.
"""

from __future__ import annotations

import common
import torch

from helpers import attacks, blackbox, evaluation, evidence, training
from helpers.attacks import forward, transfer

EPSILONS = (0.02, 0.05, 0.1, 0.2, 0.3)
LAYERS = {"SmallCNN": ["features.0", "features.3"], "LeNetBN": ["features.0", "features.4"]}


def load_models(lesson, model, args) -> dict:
    """name -> (model, architecture): the provider's, the LeNetBN and the robust model."""
    second, _ = training.load_or_train(
        lesson.dataset,
        lesson.path("cnn_LeNetBN"),
        seed=args.seed,
        device=lesson.device,
        num_epochs=args.second_epochs,
        architecture="LeNetBN",
    )
    robust = lesson.robust_model("fgsm_rs", num_epochs=args.robust_epochs, eps=0.15)
    return {
        "standard": (model, "SmallCNN"),
        "LeNetBN": (second, "LeNetBN"),
        "robust": (robust, "SmallCNN"),
    }


def mod_rows(lesson, models: dict, args) -> tuple[list[dict], list[dict]]:
    """One MOD record per (model, layer, ε) and one VID record per (model, layer)."""
    mods, vids = [], []
    for name, (net, architecture) in models.items():
        everything = evaluation.predict(net, lesson.dataset.test)
        right = everything[~everything.misclassified][: args.max_images].to(lesson.device)
        curves = evidence.mod_curves(
            net, right.x, right.y, LAYERS[architecture], EPSILONS, forward.fgsm
        )
        for (layer, values), where in zip(curves.items(), ("earlier", "last")):
            common_fields = {"model": name, "layer": layer, "position": where}
            mods += [{**common_fields, "eps": e, "mod": v.item()} for e, v in zip(EPSILONS, values)]
            vids.append({**common_fields, "vid": evidence.vid(values), "num_images": len(right)})
            print(
                f"{name:9} {layer:11} MOD "
                + " ".join(f"{v:.3f}" for v in values.tolist())
                + f"  VID {vids[-1]['vid']:.3f}"
            )
    return mods, vids


def shares(lesson, model, mistakes, args) -> dict:
    """Promotion/suppression shares per source, on the provider's logits."""
    surrogate_model = lesson.surrogate(
        blackbox.BlackBox(model, max_queries=1000),
        num_seed=1000,
        probabilities=True,
        num_epochs=args.surrogate_epochs,
    )
    white = attacks.explain(model, mistakes)
    black = transfer.explain(
        blackbox.BlackBox(model),
        surrogate_model,
        mistakes,
        strategy=transfer.Strategy(num_shrink_steps=3),
    )
    everything = evaluation.predict(model, lesson.dataset.test)
    right = everything[~everything.misclassified][: args.max_images].to(lesson.device)
    pgd = forward.pgd(
        model,
        right.x,
        right.y,
        eps=args.pgd_eps,
        num_steps=args.pgd_steps,
        step_size=min(args.pgd_eps, 2.5 * args.pgd_eps / args.pgd_steps),
    )
    sources = {
        "white-box explanations": (white, "y", "y_pred"),
        "black-box explanations": (black, "y", "y_pred"),
        "PGD attacks": (pgd, "y_adv", "y"),
    }
    report = {}
    for source, (result, reached, left) in sources.items():
        done = result[result.success]
        before, after = (evaluation.predict_logits(model, x) for x in (done.x, done.x_adv))
        split = evidence.promotion(before, after, getattr(done, reached), getattr(done, left))
        report[source] = {**split.shares(), "num_images": len(done)}
        print(f"{source}: " + ", ".join(f"{k} {v:.1%}" for k, v in split.shares().items()))
    return report


def speed(lesson, model) -> dict:
    """Images per second of Grad-CAM plus SSIM over the whole test set (last conv layer)."""
    x = lesson.dataset.test.x.to(lesson.device)
    target = evaluation.predict_logits(model, x).argmax(1)
    clean = evidence.grad_cam(model, x, target, "features.3")

    def run() -> torch.Tensor:
        return evidence.nissim(clean, evidence.grad_cam(model, x, target, "features.3"))

    _, seconds, runs = common.best_time(run, lesson.device)
    print(f"Grad-CAM + SSIM: {len(x) / seconds:.0f} images per second (best of {runs})")
    return {"images_per_second": len(x) / seconds, "num_images": len(x), "runs": runs}


def main() -> None:
    parser = common.parser(__doc__, "evidence.json")
    parser.add_argument("--second-epochs", type=int, default=8, help="LeNetBN, if trained")
    parser.add_argument("--robust-epochs", type=int, default=4, help="fgsm_rs, if trained")
    parser.add_argument("--surrogate-epochs", type=int, default=40, help="if it is trained")
    parser.add_argument("--pgd-eps", type=float, default=0.2)
    parser.add_argument("--pgd-steps", type=int, default=40)
    args = parser.parse_args()
    lesson, model, metadata, mistakes = common.setup(args)
    models = load_models(lesson, model, args)
    mods, vids = mod_rows(lesson, models, args)
    report = {
        "dataset": lesson.dataset.name,
        "device": str(lesson.device),
        "epsilons": list(EPSILONS),
        "test_accuracy": metadata["test_accuracy"],
        "mod": mods,
        "vid": vids,
        "shares": shares(lesson, model, mistakes, args),
        "speed": speed(lesson, model),
    }
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
