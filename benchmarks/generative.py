"""Counterfactuals and input cleaning with a generative model (notebooks 15 and 16), measured.

Run from the repository root, in the project's environment:

    .venv/bin/python benchmarks/generative.py                 # bundled data, default settings
    .venv/bin/python benchmarks/generative.py --device cuda --dataset mnist

The conditional GAN (--gan-epochs) and the counterfactual GAN (--counterfactual-epochs, judged
by the provider's CNN, notebook 15's losses) are trained by ``Course.gan``, or loaded if a run
with the same recipe saved them; their training seconds are those measured when they were
trained. Counterfactuals (up to --max-queries passes) of every misclassified test image: the
share the CNN reads as the true class, median L2, and the median top-50 pixel overlap with the
white-box explanation (DeepFool + refinement) of the same image. PGD (--pgd-steps) at each ε on
the first --num-attacked test images, against the combined classifier (the discriminator's K
class logits) and the CNN. AUROC of the discriminator's fakeness and of 1 - the CNN's maximum
softmax probability for telling the CNN's misclassified test images from its right answers.
Defense-GAN (--projection-steps, --num-restarts) in front of the CNN on the first
--num-defended test images: clean, under FGSM and PGD crafted against the CNN alone, and under
BPDA (--bpda-steps of PGD through the real projection, the identity on the backward pass), at
ε = 0.1 and 0.3. The issue's targets are checked in the JSON. Writes build/bench/generative.json.
"""

from __future__ import annotations

import common

from helpers import attacks, defences, evaluation, generative, metrics
from helpers.attacks import forward

EPSILONS = (0.1, 0.2, 0.3)  # PGD against the combined classifier and the CNN
DEFENCE_EPSILONS = (0.1, 0.3)  # the attacks on Defense-GAN
COUNTERFACTUAL = {"size_weight": 1.0, "judge_weight": 4.0, "near_share": 0.5}  # notebook 15's


def counterfactual_record(lesson, model, gan, mistakes, args) -> dict:
    """Success, queries and size of the counterfactuals; overlap with the white-box ones."""
    result = generative.counterfactuals(gan, model, mistakes, max_queries=args.max_queries)
    white = attacks.explain(model, mistakes, method="deepfool_refined")
    both = result.success & white.success
    similar = metrics.similarity(result.delta, white.delta)[both]
    fakeness = {
        name: generative.fakeness(gan, x)[both].median().item()
        for name, x in (
            ("original", mistakes.x),
            ("counterfactual", result.x_adv),
            ("white_box", white.x_adv),
        )
    }
    record = {
        "num_mistakes": len(mistakes),
        "success_rate": result.success_rate,
        "mean_queries": result.mean_queries,
        "median_l2": result.l2[result.success].median().item(),
        "whitebox_median_l2": white.l2[both].median().item(),
        "median_top50_overlap": similar.overlap.median().item(),
        "median_fakeness": fakeness,
    }
    print(
        f"counterfactuals: {record['success_rate']:.1%} read as the true class, "
        f"median L2 {record['median_l2']:.2f} (white box {record['whitebox_median_l2']:.2f}), "
        f"top-50 overlap {record['median_top50_overlap']:.0%}"
    )
    return record


def first(lesson, num_images: int):
    """The first ``num_images`` test images and labels, on the device."""
    test = lesson.dataset.test
    return test.x[:num_images].to(lesson.device), test.y[:num_images].to(lesson.device)


def pgd_records(lesson, model, gan, args) -> list[dict]:
    """Accuracy of the combined classifier and of the CNN, clean and under PGD at each ε."""
    x, y = first(lesson, args.num_attacked)
    records = []
    for name, net in (("course CNN", model), ("combined classifier", gan.discriminator)):
        clean = (evaluation.predict_logits(net, x).argmax(1) == y).float().mean().item()
        records.append({"model": name, "eps": 0.0, "accuracy": clean})
        for eps in EPSILONS:
            result = forward.pgd(net, x, y, eps=eps, num_steps=args.pgd_steps)
            records.append({"model": name, "eps": eps, "accuracy": metrics.robust_accuracy(result)})
        print(f"{name}: " + ", ".join(f"ε={r['eps']} {r['accuracy']:.1%}" for r in records[-4:]))
    return records


def uncertainty(lesson, model, gan) -> dict:
    """AUROC of fakeness and of 1 − MSP for the CNN's misclassified test images."""
    everything = evaluation.predict(model, lesson.dataset.test)
    wrong = everything.misclassified.cpu()
    fake = generative.fakeness(gan, lesson.dataset.test.x.to(lesson.device)).cpu()
    record = {
        "fakeness_auroc": metrics.auroc(fake, wrong),
        "softmax_auroc": metrics.auroc(1 - everything.confidence.cpu(), wrong),
        "num_misclassified": int(wrong.sum()),
    }
    print(f"AUROC: fakeness {record['fakeness_auroc']:.3f}, 1 − MSP {record['softmax_auroc']:.3f}")
    return record


def defense_gan(lesson, model, gan, args) -> list[dict]:
    """Defense-GAN's accuracy (and the bare CNN's) clean, under FGSM, PGD and BPDA."""
    x, y = first(lesson, args.num_defended)
    settings = {"num_steps": args.projection_steps, "num_restarts": args.num_restarts, "lr": 0.4}
    purifier = defences.Purifier(gan, **settings)
    defended = defences.cleaned(model, purifier)
    through = defences.cleaned(model, purifier, straight_through=True)
    images = {("clean", 0.0): x}
    for eps in DEFENCE_EPSILONS:
        images["fgsm", eps] = forward.fgsm(model, x, y, eps=eps).x_adv
        images["pgd", eps] = forward.pgd(model, x, y, eps=eps, num_steps=args.pgd_steps).x_adv
        with common.timer(lesson.device) as seconds:
            steps = {"num_steps": args.bpda_steps, "step_size": 2.5 * eps / args.bpda_steps}
            images["bpda", eps] = forward.pgd(through, x, y, eps=eps, **steps).x_adv
        print(f"BPDA at ε={eps}: {seconds():.0f} s")
    records = []
    for (attack, eps), x_adv in images.items():
        row = {"attack": attack, "eps": eps}
        for name, net in (("course CNN", model), ("Defense-GAN", defended)):
            row[name] = (evaluation.predict_logits(net, x_adv).argmax(1) == y).float().mean().item()
        records.append(row)
        print(
            f"{attack} ε={eps}: CNN {row['course CNN']:.1%}, Defense-GAN {row['Defense-GAN']:.1%}"
        )
    return records


def targets(report: dict) -> dict:
    """The issue's targets, as this run measured them."""
    defended = {(r["attack"], r["eps"]): r["Defense-GAN"] for r in report["defense_gan"]}
    below = {
        str(eps): defended["bpda", eps] < min(defended["fgsm", eps], defended["pgd", eps])
        for eps in DEFENCE_EPSILONS
    }
    scores = report["uncertainty"]
    return {
        "counterfactual_success_at_least_90": report["counterfactuals"]["success_rate"] >= 0.9,
        "better_uncertainty_score": "fakeness"
        if scores["fakeness_auroc"] > scores["softmax_auroc"]
        else "maximum softmax probability",
        "bpda_below_plain_attacks": below,
    }


def main() -> None:
    parser = common.parser(__doc__, "generative.json")
    parser.add_argument("--gan-epochs", type=int, default=30)
    parser.add_argument("--counterfactual-epochs", type=int, default=12)
    parser.add_argument("--max-queries", type=int, default=3, help="counterfactual passes")
    parser.add_argument("--num-attacked", type=int, default=500, help="test images under PGD")
    parser.add_argument("--pgd-steps", type=int, default=40)
    parser.add_argument("--num-defended", type=int, default=100, help="behind Defense-GAN")
    parser.add_argument("--projection-steps", type=int, default=50)
    parser.add_argument("--num-restarts", type=int, default=1, help="per class, Defense-GAN")
    parser.add_argument("--bpda-steps", type=int, default=10)
    args = parser.parse_args()
    lesson, model, metadata, mistakes = common.setup(args)
    gan = lesson.gan("conditional", num_epochs=args.gan_epochs, progress=False)
    cf_gan = lesson.gan(
        "counterfactual",
        num_epochs=args.counterfactual_epochs,
        judge=model,
        progress=False,
        **COUNTERFACTUAL,
    )
    report = {
        "dataset": lesson.dataset.name,
        "device": str(lesson.device),
        "test_accuracy": metadata["test_accuracy"],
        "training_seconds": {
            kind: lesson.metadata[f"gan_{kind}"]["seconds"]
            for kind in ("conditional", "counterfactual")
        },
        "settings": {**vars(args), "output": str(args.output), "counterfactual": COUNTERFACTUAL},
        "counterfactuals": counterfactual_record(lesson, model, cf_gan, mistakes, args),
        "pgd": pgd_records(lesson, model, cf_gan, args),
        "uncertainty": uncertainty(lesson, model, cf_gan),
        "defense_gan": defense_gan(lesson, model, gan, args),
    }
    report["targets"] = targets(report)
    print(f"targets: {report['targets']}")
    common.write_report(args.output, report)


if __name__ == "__main__":
    main()
