"""The benchmarks' result tables, printed as Markdown from their JSON in build/bench/.

    .venv/bin/python benchmarks/report.py          # after the benchmarks have run
    .venv/bin/python benchmarks/report.py --docs   # the same tables, into docs/benchmarks.md

Every number docs/benchmarks.md quotes from a benchmark is printed here from the file that
benchmark wrote, with the command it was run with; nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from helpers import attacks

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"  # where --docs writes the tables
README = ROOT / "README.md"  # and the headline
WHITEBOX_DEFAULTS = ("deepfool", "deepfool_refined")  # the registry's names of the defaults


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}".replace(".00%", "%")


def threads(count: int | None) -> str:
    return "? threads" if count is None else f"{count} thread{'' if count == 1 else 's'}"


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def whitebox_summary(report: dict) -> str:
    """The architectures side by side: the defaults against the paper's point and DDN."""
    default, refined = (f"ours: {attacks.get(name).label}" for name in WHITEBOX_DEFAULTS)
    sections = report.get("architectures", {"SmallCNN": report})
    cells = {}  # row label -> one cell per architecture
    for section in sections.values():
        methods, met = section["methods"], section.get("targets", {})
        d, r = methods[default], methods[refined]
        for label, value in (
            ("model accuracy", percent(section.get("model_test_accuracy"))),
            ("misclassified test images", str(section["num_misclassified"])),
            ("`deepfool`: success", percent(d["success_rate"])),
            ("`deepfool`: mean queries", number(d["mean_queries"])),
            ("`deepfool`: L2 ÷ DDN", number(d["median_l2_ratio_to_reference"], 3)),
            ("`deepfool_refined`: success", percent(r["success_rate"])),
            ("`deepfool_refined`: L2 ÷ DDN", number(r["median_l2_ratio_to_reference"], 3)),
            ("`deepfool_refined`: × faster than DDN", number(r["speedup_vs_reference"], 0)),
            ("paper's point (≥ 99.67%, ≤ 1.96 q, ≤ 1.25× DDN)", _met(default, met, "paper_point")),
            ("minimal (100%, ≤ 1.02× DDN, ≥ 20× faster)", _met(refined, met, "minimal")),
        ):
            cells.setdefault(label, []).append(value)
    return table([[label, *values] for label, values in cells.items()], ["", *sections])


def _met(name: str, targets: dict, key: str) -> str:
    return "met" if name in targets.get(key, []) else "**not met**"


def whitebox(report: dict) -> str:
    parts = [whitebox_summary(report)]
    for arch, section in report.get("architectures", {"SmallCNN": report}).items():
        rows = [
            [
                name,
                percent(r["success_rate"]),
                number(r["mean_queries"]),
                number(r["median_l2"], 3),
                number(r["median_l2_ratio_to_reference"], 3),
                number(r["seconds"]),
            ]
            for name, r in section["methods"].items()
        ]
        header = ["method", "success", "mean queries", "median L2", "L2 ÷ DDN", "seconds"]
        accuracy = section.get("model_test_accuracy")
        title = (
            f"**{arch}** ({section['num_misclassified']} mistakes, accuracy {percent(accuracy)})"
        )
        parts.append(title + "\n\n" + table(rows, header))
    return "\n\n".join(parts)


def blackbox(report: dict) -> str:
    """Issue 27's benchmark: the headline (median over the providers), each provider's curves,
    the label curve and the targets, each met or not with the measured figure."""
    budgets = report["budgets"]
    providers = report["providers"]
    ours = report_settings(report)
    parts = [
        f"{len(providers)} providers ({', '.join(providers)}), each trained "
        f"{report['provider_epochs']} epochs from the seed; the end user labels "
        f"{report['label_queries']:,} pool images (probabilities) and chooses the surrogate's "
        f"architecture among {', '.join(report['candidates'])} less the provider's own family "
        f"by held-out agreement, then trains its surrogate by the route "
        f"{describe_route(report)} ({report['surrogate_epochs']} epochs); the first "
        f"{report['max_images']} test mistakes "
        f"of each provider are reported. Ours: {ours}. Settings chosen on: "
        f"{report['tuned_on']}. {run_time(report)}",
        "**Headline**: the median over the providers of each provider's median L2 ÷ the "
        "developer's explanation (DeepFool + refinement on the provider); in brackets the worst "
        "provider's and the lowest success (after rounding to 8 bits where lower)\n\n"
        + headline_table(report["headline"], budgets),
    ]
    for family, record in providers.items():
        parts.append(provider_heading(family, record) + "\n\n" + curves_table(record, budgets))
    rows = [
        [
            family,
            str(r["pool_size"]),
            str(r["label_queries"]),
            r.get("method", "paper"),
            percent(r["success_rate"]),
            percent(r["success_after_rounding"]),
            number(r["mean_queries"]),
            number(r["median_l2_ratio_to_whitebox"]) + "×",
        ]
        for family, record in providers.items()
        for r in record.get("label_curve", [])
    ]
    if rows:
        header = ["provider", "pool", "label queries", "method", "success", "after rounding"]
        header += ["mean q", "median L2 ÷ developer's"]
        parts.append(
            "**Label curve**: a SurrogateCNN trained on a small pool's answers, through which "
            "the paper's default black-box explanation (*paper*: the schedule, at most 20 "
            "queries) and ours (*ours*: the same settings and those labelled images as starts, "
            f"at most {report.get('label_budget', 20)} queries) explain the mistakes; the "
            f"paper: {percent(report['paper']['success_rate'])} at "
            f"{report['paper']['mean_queries']} queries\n\n" + table(rows, header)
        )
    parts.append("**Targets** (issue 27: on every provider)\n\n" + "\n".join(targets(report)))
    return "\n\n".join(parts)


def run_time(report: dict) -> str:
    """How long a run took, in wall and CPU time, and the load it ran under."""
    minutes, cpu = report["seconds"] / 60, report["cpu_seconds"] / 60
    load = report["load_average"]
    return (
        f"The run took {minutes:.1f} min ({cpu:.1f} min of CPU time, about its wall time on a "
        f"machine it has to itself) at a load average of {load['start'][0]:.1f} to "
        f"{load['end'][0]:.1f} on a 2-core CPU."
    )


def report_settings(report: dict) -> str:
    settings = report["settings"]["ours"]
    return ", ".join(f"{key}={value}" for key, value in settings.items())


def ratio_cell(ratio: float, success: float, rounded: float, worst: float | None = None) -> str:
    """``2.95×`` with the worst provider's ratio and the success, if not all."""
    extra = [] if worst is None else [f"worst {number(worst)}×"]
    if success < 1 or rounded < success:
        extra.append(
            percent(success) + (f", {percent(rounded)} rounded" if rounded < success else "")
        )
    return f"{number(ratio)}×" + (f" ({'; '.join(extra)})" if extra else "")


def headline_table(headline: dict, budgets: list[int]) -> str:
    rows = [
        [
            name,
            *(
                ratio_cell(
                    p["median_over_providers"],
                    p["lowest_success_rate"],
                    p["lowest_success_after_rounding"],
                    p["worst_provider"],
                )
                for p in line
            ),
        ]
        for name, line in headline.items()
    ]
    return table(rows, ["method", *(f"{b} queries" for b in budgets)])


def describe_route(report: dict) -> str:
    """The surrogate's route the run used ("the chosen family" before routes were measured)."""
    first = next(iter(report["providers"].values()))["surrogate"]
    route = first.get("route", "the chosen family")
    return f"“{route}” (an ensemble of one family has {report['num_members']} members)"


def provider_heading(family: str, record: dict) -> str:
    chosen = record["surrogate"]
    scores = ", ".join(f"{name} {percent(v)}" for name, v in chosen["candidates"].items())
    mistakes = record["set"]
    return (
        f"**{family}** (test accuracy {percent(record['test_accuracy'])}; surrogate "
        f"{chosen['chosen']}, chosen by held-out agreement among {scores}; "
        f"{mistakes['num_mistakes']} {mistakes['split']} mistakes; the pool starts' median "
        f"size {number(mistakes['starts_median_l2_ratio'])}×)"
    )


def curves_table(record: dict, budgets: list[int]) -> str:
    rows = [
        [
            name,
            *(
                ratio_cell(
                    p["median_l2_ratio_to_whitebox"],
                    p["success_rate"],
                    p["success_after_rounding"],
                )
                for p in curve
            ),
        ]
        for name, curve in record["curves"].items()
    ]
    return table(rows, ["method", *(f"{b} queries" for b in budgets)])


SIZE_TARGETS = ((100, 1.5, "within_1.5x_at_100"), (500, 1.2, "within_1.2x_at_500"))
"""Issue 27's size targets: (queries per image, the largest median ratio, its key in the JSON)."""
CEILING = ROOT / "benchmarks" / "prototypes" / "ceiling_screen.json"
"""The ceiling screening's result, committed: what surrogates told more than an end user gave."""


def targets(report: dict) -> list[str]:
    """Each of issue 27's targets, met or not, with the figures that decide it."""
    providers, headline = report["providers"], report["headline"]
    ours = next(iter(headline))  # the first method is ours
    by_budget = {p["budget"]: p for p in headline[ours]}
    met = report["targets"]
    lines = []
    for budget, limit, key in SIZE_TARGETS:
        if budget not in by_budget:
            continue
        each = ", ".join(
            f"{family} {number(curve_at(record, ours, budget)['median_l2_ratio_to_whitebox'])}×"
            for family, record in providers.items()
        )
        lines.append(
            f"- ≤ {limit}× the developer's at {budget} queries on every provider: "
            f"{verdict(met[key])} (median over providers "
            f"{number(by_budget[budget]['median_over_providers'])}×; {each})"
        )
    lowest = min(p["lowest_success_rate"] for p in headline[ours])
    lines.append(
        f"- 100% success at every budget: {verdict(met['all_explained'])} (lowest "
        f"{percent(lowest)}; once rounded to 8 bits, lowest "
        f"{percent(min(p['lowest_success_after_rounding'] for p in headline[ours]))})"
    )
    api = next((name for name in headline if "8-bit" in name), None)
    if api is not None:
        rounded = min(p["lowest_success_after_rounding"] for p in headline[api])
        lines.append(
            f"- 100% success after rounding to 8 bits, through an API of 8-bit images ({api}): "
            f"{verdict(met['all_explained_after_rounding'])} (lowest {percent(rounded)})"
        )
    losses = [
        f"{family} at {p['budget']} ({name} {number(p['median_l2_ratio_to_whitebox'])}× ≤ "
        f"{number(curve_at(record, ours, p['budget'])['median_l2_ratio_to_whitebox'])}×)"
        for family, record in providers.items()
        for name, curve in record["curves"].items()
        if name in PEER_LABELS
        for p in curve
        if p["median_l2_ratio_to_whitebox"]
        <= curve_at(record, ours, p["budget"])["median_l2_ratio_to_whitebox"]
    ]
    lines.append(
        "- smaller than HopSkipJump, GeoDA and Sign-OPT at every budget: "
        + verdict(met["smaller_than_peers_at_every_budget"])
        + (f" (not where a peer is as small: {'; '.join(losses)})" if losses else "")
    )
    paper = []
    for family, record in providers.items():
        best = [
            r
            for r in record.get("label_curve", [])
            if r["label_queries"] <= 150 and r.get("method", "ours") == "ours"
        ]
        paper += [
            f"{family}: {r['label_queries']} labels, {percent(r['success_rate'])} at "
            f"{number(r['mean_queries'])} queries"
            for r in best[-1:]
        ]
    lines.append(
        "- the paper's point (≥ 95% at ≤ 8.73 queries) from ≤ 150 label queries: "
        + verdict(met["paper_point_from_at_most_150_labels"])
        + (f" ({'; '.join(paper)})" if paper else "")
    )
    return lines


PEER_LABELS = ("HopSkipJump (ART, targeted)", "GeoDA (ART)", "Sign-OPT (ART, targeted)")


def curve_at(record: dict, name: str, budget: int) -> dict:
    return next(p for p in record["curves"][name] if p["budget"] == budget)


def blackbox_tuning(report: dict) -> str:
    """The tuning set's grid (each provider's pool mistakes, ours with each setting changed
    alone), the rule's scores and choice, and where the semicircle was the larger step."""
    budgets, tuning = report["budgets"], report["tuning"]
    parts = [
        "The black-box benchmark's settings, each value changed alone, on the tuning set: the "
        f"first pool mistakes of the {' and '.join(report['providers'])} providers (never "
        f"reported). The rule: {tuning['rule']}."
    ]
    for family, record in report["providers"].items():
        parts.append(provider_heading(family, record) + "\n\n" + curves_table(record, budgets))
    complete = tuning.get("explains_every_mistake", {})

    def scored(key: str, value: str, score: float) -> str:
        every = complete.get(key, {}).get(value, True)
        return f"{value} {number(score)}" + ("" if every else " (leaves mistakes unexplained)")

    rows = [
        [key, ", ".join(scored(key, value, score) for value, score in scores.items())]
        for key, scores in tuning["scores"].items()
    ]
    choice = ", ".join(f"{key}={value}" for key, value in tuning["choice"].items())
    parts.append(
        "**Scores** (the sum the rule minimizes, per value)\n\n"
        + table(rows, ["setting", "value and score"])
        + f"\n\nChosen by the rule: {choice}; the benchmark's settings are the rule's choice: "
        + verdict(tuning["settings_are_the_choice"])
    )
    larger = "; ".join(
        f"{r['family']} at {r['budget']} queries, {'with' if r['starts'] else 'without'} starts "
        f"({number(r['semicircle'])}× against {number(r['hopskipjump'])}×)"
        for r in tuning["semicircle_larger_than_hopskipjump"]
    )
    parts.append(
        "Where the semicircle was larger than HopSkipJump's step: "
        + (larger or "nowhere")
        + f". The rule's default step for `boundary.explain`: "
        f"`{tuning['default_step_by_the_rule']}`; the helper's: `{tuning['default_step']}`."
    )
    return "\n\n".join(parts)


def blackbox_routes(report: dict) -> str:
    """Each route to a better prior (how the end user's surrogate is trained on the same
    answers) on each provider's tuning set: agreement, gradient cosine, ours through it."""
    budgets = report["budgets"]
    header = ["provider", "route", "agreement", "gradient cosine", "after the refit"]
    header += [f"{budget} queries" for budget in budgets]
    rows = [
        [family, name, percent(route["agreement"]), number(route["gradient_cosine"])]
        + [refit_cosines(route["curve"])]
        + [
            ratio_cell(p["median_l2_ratio_to_whitebox"], p["success_rate"], p["success_rate"])
            for p in route["curve"]
        ]
        for family, record in report["providers"].items()
        for name, route in record["routes"].items()
    ]
    return (
        "Routes to a better prior: the end user's surrogate trained another way on the same "
        f"{report['label_queries']} answers, each family left out of its candidates, and ours "
        f"({', '.join(f'{k}={v}' for k, v in report['settings']['ours'].items())}) through it "
        f"on the tuning set (the first {report['max_images']} pool mistakes, never reported). "
        "Gradient cosine: the median cosine of the surrogate's gradient with the provider's at "
        "the developer's explanations, a diagnostic no user has; after the refit: the same "
        "for the surrogate the second half searched through, at each budget (— where the "
        "route did not refit it); sizes: median L2 ÷ the developer's (success).\n\n"
        + table(rows, header)
        + route_choice(report.get("route_choice"))
    )


def blackbox_seeds(report: dict) -> str:
    """The black-box figures over several draws of the end user's surrogate and the search's
    probes: the median over the providers and each provider's, on both sets, and ROUTE_RULE's
    choice draw by draw."""
    summary, budgets, draws = report["summary"], report["budgets"], report["draws"]
    labels = report["seed_routes"]  # route -> its short name
    header = ["route", "set", *(f"{budget} queries" for budget in budgets)]
    overall = [
        [labels[name], role]
        + [seed_cell(sets[role][str(b)]["median_over_providers"]) for b in budgets]
        for name, sets in summary["routes"].items()
        for role in sets
    ]
    each = [
        [family, labels[name], role, seed_cosines(record["routes"][name], role)]
        + [seed_cell(sets[role][str(b)]["providers"][family]) for b in budgets]
        for family, record in report["providers"].items()
        for name, sets in summary["routes"].items()
        for role in sets
    ]
    route = report["route"]
    pairs = [
        [family, labels[other], role]
        + [f"{paired(record, route, other, role, b)} of {draws}" for b in budgets]
        for family, record in report["providers"].items()
        for other in labels
        if other != route
        for role in ("tuning", "reported")
    ]
    rule = summary["rule"]
    scores = [
        [str(r["draw"]), *(number(r["scores"][name]) for name in labels)]
        + [labels[r["choice"]] if r["choice"] else "none (a mistake left unexplained)"]
        for r in rule
    ]
    chose = sum(r["choice"] == route for r in rule)
    legend = "; ".join(f"{label}: “{name}”" for name, label in labels.items())
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
    return (
        "The providers and their mistakes of the black-box benchmark (the first "
        f"{report['max_images']} of each set), the end user's surrogate trained by each route "
        f"from {draws} seeds (draw k: surrogate seed {report['seed']} + 1 + k, the search's "
        f"probes from seed k; draw 0 is the benchmark's own) and ours ({settings}) through "
        "it. Each cell: the median over the draws of the median L2 ÷ the developer's, and the "
        "lowest and highest draw's (– where a draw left a mistake unexplained). Tuning: the "
        "pool mistakes that chose the settings and the route; reported: the test mistakes of "
        f"the headline. The routes: {legend}. {run_time(report)}\n\n**The median over the "
        "providers**\n\n"
        + table(overall, header)
        + "\n\n**Each provider** (gradient cosine: its median over the draws and the lowest "
        "and highest, a diagnostic no user has)\n\n"
        + table(each, ["provider", "route", "set", "gradient cosine", *header[2:]])
        + f"\n\n**Draw by draw**: in how many draws {labels[route]}'s explanations were "
        "smaller than the other route's from the same seeds\n\n"
        + table(pairs, ["provider", "against", "set", *header[2:]])
        + "\n\n**ROUTE_RULE draw by draw** (its sum over the providers and this run's "
        f"budgets on the tuning set; the rule: {report['rule']})\n\n"
        + table(scores, ["draw", *labels.values(), "chosen"])
        + f"\n\nThe rule chose the reported runs' route ({labels[route]}) in {chose} "
        f"of {len(rule)} draws."
    )


def paired(record: dict, route: str, other: str, role: str, budget: int) -> int:
    """In how many draws ``route``'s explanations on one provider's set were smaller than
    ``other``'s from the same seeds (a draw that leaves a mistake unexplained is never smaller,
    and one that explains every mistake is smaller than it)."""

    def size(entry: dict) -> float:
        point = next(p for p in entry[role]["curve"] if p["budget"] == budget)
        return point["median_l2_ratio_to_whitebox"] if point["success_rate"] == 1 else math.inf

    return sum(
        size(mine) < size(theirs)
        for mine, theirs in zip(record["routes"][route], record["routes"][other])
    )


def seed_cell(spread: dict) -> str:
    """``2.64× (2.50–2.80)``: the median over the draws and the lowest and highest."""
    if spread["median"] is None:
        return "–"
    low, high = number(spread["lowest"]), number(spread["highest"])
    return f"{number(spread['median'])}× ({low}–{high})"


def seed_cosines(entries: list[dict], role: str) -> str:
    """The median over the draws of a route's gradient cosine on one set."""
    values = [e[role]["gradient_cosine"] for e in entries]
    return f"{number(statistics.median(values))} ({number(min(values))}–{number(max(values))})"


def refit_cosines(curve: list[dict]) -> str:
    """The gradient cosine of a route's refit surrogate at each budget, "—" if none."""
    cosines = [p["refit_gradient_cosine"] for p in curve if "refit_gradient_cosine" in p]
    return " / ".join(number(c) for c in cosines) if len(cosines) == len(curve) else "—"


def route_choice(choice: dict | None) -> str:
    """The rule's choice among the routes, and the run's ROUTE where it was another."""
    if not choice:
        return ""
    scores = "; ".join(
        f"{name} {number(score) if score is not None else '(leaves mistakes unexplained)'}"
        for name, score in choice["scores"].items()
    )
    when = (
        ""
        if choice["choice"] == choice["route"]
        else f" (when this run was made, ROUTE was “{choice['route']}”)"
    )
    return (
        f"\n\nThe rule: {choice['rule']}. Scores: {scores}. Chosen: “{choice['choice']}”"
        f"{when}; the black-box section names the route its run used."
    )


def verdict(value: object) -> str:
    """A target's value as a reader wants it: met or not, or the names that met it."""
    if value is None:
        return "not measured in this run"
    if isinstance(value, bool):
        return "met" if value else "**not met**"
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "none"
    return str(value)


def explorer(report: dict) -> str:
    rows = [
        [
            name,
            str(r["redraws"]),
            number(r["median_seconds"], 3),
            number(r["p95_seconds"], 3),
            number(r.get("max_seconds"), 3),
        ]
        for name, r in report["methods"].items()
    ]
    text = table(rows, ["method", "redraws", "median s", "95th percentile s", "slowest s"])
    return text + (
        "\n\nA method with a replay (the boundary search) runs once for every image when it is "
        "first chosen, at the top of its slider: that redraw is the slowest one; every later "
        "slider move replays that search without a query."
    )


def robustness(report: dict) -> str:
    models = report["models"]
    epsilons = sorted({r["eps"] for r in report["results"]})
    header = ["model", "clean"] + [f"{a} ε={e}" for a in ("FGSM", "PGD") for e in epsilons]
    header += ["BPDA ε=" + str(e) for e in epsilons] + ["s / epoch"]
    rows = []
    for name, model in models.items():
        found = {
            (r["attack"], r["eps"]): r["accuracy"] for r in report["results"] if r["model"] == name
        }
        cells = [percent(found.get((a, e))) for a in ("fgsm", "pgd", "bpda") for e in epsilons]
        rows.append(
            [name, percent(model["clean_accuracy"]), *cells, number(model["seconds_per_epoch"], 1)]
        )
    return table(rows, header)


def robust_recipe(report: dict) -> str:
    """The held-out curve that chose the epochs, then each seed's standard and robust rows."""
    choice = report["choice"]
    lines = []
    if "curve" in choice:
        points = ", ".join(
            f"{p['epoch']}: {percent(p['clean'])} clean, {percent(p['pgd'])} PGD"
            for p in choice["curve"]
        )
        lines.append(
            f"Epochs chosen on {choice['num_val']} held-out training images (PGD-10 at "
            f"ε = {report['recipe']['eps']}; epoch: accuracy): {points}; chosen: "
            f"{report['num_epochs']}"
            + (
                f" of at most {choice['max_epochs']} looked at"
                if "max_epochs" in choice
                else " (the most the choice looked at: --max-epochs)"
            )
            + "."
        )
    else:
        lines.append(f"Epochs given on the command line: {report['num_epochs']}.")
    attack = report["attack"]
    columns = list(next(iter(report["seeds"].values()))["standard"])
    rows = [
        [str(seed), name, *(percent(record[name][c]) for c in columns)]
        for seed, record in report["seeds"].items()
        for name in ("standard", "pgd")
    ]
    header = ["seed", "model", *(c.replace("pgd ", "PGD ε=") for c in columns)]
    lines.append(
        f"Test split, first {report['num_images']} images; PGD with {attack['num_steps']} steps "
        f"and {attack['num_restarts']} restarts:\n\n" + table(rows, header)
    )
    lines.append("\n".join(f"- {t}: {verdict(met)}" for t, met in report["targets"].items()))
    return "\n\n".join(lines)


def evidence(report: dict) -> str:
    epsilons = report["epsilons"]
    vids = {(r["model"], r["layer"]): r for r in report["vid"]}
    rows = []
    for (model, layer), vid in vids.items():
        found = {
            r["eps"]: r["mod"] for r in report["mod"] if (r["model"], r["layer"]) == (model, layer)
        }
        mods = [number(found.get(e), 3) for e in epsilons]
        where = f"{vid['position']} (`{layer}`)"
        rows.append([model, where, *mods, number(vid["vid"], 3), str(vid["num_images"])])
    mod = table(rows, ["model", "layer", *(f"MOD ε={e}" for e in epsilons), "VID", "images"])
    categories = ["promotion", "balanced", "suppression", "neither"]
    rows = [
        [source, *(percent(r[c]) for c in categories), str(r["num_images"])]
        for source, r in report["shares"].items()
    ]
    shares = table(rows, ["source", *categories, "images"])
    speed = report["speed"]
    mod += "\n\n" + "\n".join(f"- {line}" for line in evidence_targets(report))
    return (
        f"{mod}\n\nPromotion (share > 2/3) or suppression (< 1/3) of the provider's logits:"
        f"\n\n{shares}\n\nGrad-CAM (last conv layer) + SSIM: "
        f"{speed['images_per_second']:.0f} images per second over {speed['num_images']} "
        "test images."
    )


def evidence_targets(report: dict) -> list[str]:
    """MOD rises with ε at the last layer (per model), and the robust model against the
    standard one at each ε, as the run measured them."""
    last = {r["model"]: r["layer"] for r in report["vid"] if r["position"] == "last"}
    curve = {
        model: [
            r["mod"]
            for r in sorted(report["mod"], key=lambda r: r["eps"])
            if (r["model"], r["layer"]) == (model, layer)
        ]
        for model, layer in last.items()
    }
    rising = [model for model, mods in curve.items() if all(map(float.__lt__, mods, mods[1:]))]
    lines = [
        f"MOD rises with every larger ε at the last layer for {len(rising)} of "
        f"{len(curve)} models"
        + (
            ""
            if len(rising) == len(curve)
            else f" (not for {', '.join(sorted(set(curve) - set(rising)))})"
        )
    ]
    if {"standard", "robust"} <= set(curve):
        below = sum(r < s for r, s in zip(curve["robust"], curve["standard"]))
        lines.append(
            f"the robust model's MOD is below the standard model's at {below} of "
            f"{len(curve['robust'])} ε (last layer)"
        )
    return lines


def spread(summary: dict, key: str, fmt=percent) -> str:
    """mean ± standard deviation over the seeds of one summary entry."""
    entry = summary.get(key)
    return "–" if entry is None else f"{fmt(entry['mean'])} ± {fmt(entry['std'])}"


def fixing(report: dict) -> str:
    totals, seeds = report["summary"], len(report["runs"])
    decoy = [
        [
            name,
            spread(totals, f"decoy.{name}.test_accuracy"),
            spread(totals, f"decoy.{name}.patch_share"),
        ]
        for name in ("shortcut", "clean", "data_fix", "model_fix")
    ]
    area = percent(totals["decoy.area_share"]["mean"])
    labels = [
        ["noisy labels, nothing removed", "–", "–", spread(totals, "labels.noisy_test_accuracy")]
    ]
    labels += [
        [
            f"remove the top k by {name}",
            spread(totals, f"labels.{name}.precision_at_k"),
            spread(totals, f"labels.{name}.auroc", lambda v: number(v, 3)),
            spread(totals, f"labels.{name}.removed_test_accuracy"),
        ]
        for name in ("explanation", "loss", "cleanlab")
    ]
    labels += [["clean labels", "–", "–", spread(totals, "labels.clean_test_accuracy")]]
    weak = [
        [name, spread(totals, f"weak_pairs.{key}_test_accuracy")]
        for name, key in (
            ("no extra data", "baseline"),
            ("augmented true classes of the agreeing pairs", "targeted"),
            ("as many augmented digits of any class", "random"),
        )
    ]
    return (
        f"Mean ± standard deviation over {seeds} seeds. Decoy MNIST, tested on digits with a "
        f"random-shade patch (the patch covers {area} of an image):\n\n"
        + table(decoy, ["model", "test accuracy", "share of the change (abs δ) in the patch"])
        + "\n\nLabel errors (k = the number of flipped labels; scores out of fold):\n\n"
        + table(labels, ["", "precision at k", "AUROC", "test accuracy"])
        + "\n\nWeak pairs (found on the pool split):\n\n"
        + table(weak, ["training data", "test accuracy"])
        + "\n\n**Targets** (from the means above)\n\n"
        + "\n".join(f"- {line}" for line in fixing_targets(totals))
    )


def fixing_targets(totals: dict) -> list[str]:
    """The issue's targets for the fixing benchmark, each with the means it is read from."""
    mean = lambda key: totals[key]["mean"]
    clean, shortcut = mean("decoy.clean.test_accuracy"), mean("decoy.shortcut.test_accuracy")
    gap = min(abs(clean - mean(f"decoy.{fix}.test_accuracy")) for fix in ("data_fix", "model_fix"))
    area = mean("decoy.area_share")
    ratio = lambda name: mean(f"decoy.{name}.patch_share") / area
    gain = mean("labels.explanation.removed_test_accuracy") - mean("labels.noisy_test_accuracy")
    return [
        f"the shortcut model is {100 * (clean - shortcut):.1f} points below the clean model",
        f"the better fix is {100 * gap:.1f} points from the clean model (target within 2): "
        + ("met" if gap <= 0.02 else "**not met**"),
        f"the explanations' share of the change in the patch is {ratio('shortcut'):.1f}× the "
        f"patch's area for the shortcut model, {ratio('clean'):.1f}× for the clean model",
        f"removing the top k by the explanation score: {100 * gain:+.2f} points over the noisy "
        "model on average (target: a gain): " + ("met" if gain > 0 else "**not met**"),
    ]


def generative(report: dict) -> str:
    """Notebooks 15 and 16's measures: counterfactuals, PGD, uncertainty and Defense-GAN."""
    cf, scores = report["counterfactuals"], report["uncertainty"]
    seconds = report["training_seconds"]
    epsilons = sorted({r["eps"] for r in report["pgd"]})
    pgd = {(r["model"], r["eps"]): r["accuracy"] for r in report["pgd"]}
    names = list(dict.fromkeys(r["model"] for r in report["pgd"]))
    rows = [[name, *(percent(pgd[name, e]) for e in epsilons)] for name in names]
    header = ["model", "clean", *(f"PGD ε={e}" for e in epsilons[1:])]
    defended = [
        [
            f"{r['attack']}" + (f" ε={r['eps']}" if r["eps"] else ""),
            percent(r["course CNN"]),
            percent(r["Defense-GAN"]),
        ]
        for r in report["defense_gan"]
    ]
    met = report["targets"]
    below = [eps for eps, yes in met["bpda_below_plain_attacks"].items() if yes]
    lines = [
        f"counterfactuals read as the true class for {percent(cf['success_rate'])} of the "
        f"{cf['num_mistakes']} mistakes (target ≥ 90%): "
        + ("met" if met["counterfactual_success_at_least_90"] else "**not met**"),
        f"the better uncertainty score on this run: {met['better_uncertainty_score']}",
        f"BPDA below both plain attacks at ε = {', '.join(below) or 'none'} of "
        f"{', '.join(met['bpda_below_plain_attacks'])}",
    ]
    return (
        f"Training: conditional GAN {seconds['conditional']:.0f} s, counterfactual GAN "
        f"{seconds['counterfactual']:.0f} s. Counterfactuals of the {cf['num_mistakes']} "
        f"misclassified test images: {percent(cf['success_rate'])} read as the true class at "
        f"{cf['mean_queries']:.2f} queries, median L2 {cf['median_l2']:.2f} (the white-box "
        f"explanation's {cf['whitebox_median_l2']:.2f}), median top-50 pixel overlap with it "
        f"{percent(cf['median_top50_overlap'])}.\n\n"
        + table(rows, header)
        + f"\n\nTelling the CNN's {scores['num_misclassified']} misclassified test images from "
        f"the right ones: AUROC {scores['fakeness_auroc']:.3f} for the discriminator's fakeness, "
        f"{scores['softmax_auroc']:.3f} for 1 − the CNN's maximum softmax probability.\n\n"
        "Defense-GAN (attacks crafted against the CNN alone, except BPDA, through the "
        "projection):\n\n"
        + table(defended, ["attack", "course CNN", "Defense-GAN"])
        + "\n\n**Targets**\n\n"
        + "\n".join(f"- {line}" for line in lines)
    )


def surrogates(report: dict) -> str:
    """Per surrogate architecture: agreement, gradient cosine, boundary search by budget."""
    budgets = report["budgets"]
    rows = [
        [
            r["architecture"],
            percent(r["agreement"]),
            number(r["gradient_cosine"]),
            *(
                f"{number(p['median_l2_ratio_to_whitebox'])}× ({percent(p['success_rate'])})"
                for p in r["budget_curve"]
            ),
        ]
        for r in report["architectures"]
    ]
    header = ["surrogate", "agreement", "gradient cosine", *(f"{b} queries" for b in budgets)]
    return (
        "Surrogates of each architecture, trained on the same 1,000 answers of the black box "
        "from a seed other than the provider's (Ensemble: 4 SmallCNNs); the label-only "
        "boundary search at each budget (median L2 ÷ the developer's explanation, success). "
        "Gradient cosine: with the provider's gradient on the boundary, a diagnostic no user "
        "has. SmallCNN is the provider's own family: a user who does not know it finds it by "
        "held-out agreement (the black-box section).\n\n" + table(rows, header)
    )


def serving(report: dict) -> str:
    """The API: speed against in process, load, the fault run, and the explanation runs."""
    columns = ("queries_per_second", 0), ("requests_per_second", 1), ("p50_ms", 1), ("p99_ms", 1)
    rows = [
        [name, *(number(r[key], digits) for key, digits in columns)]
        for name, r in report["speed"].items()
    ]
    parts = [table(rows, ["one call of", "queries/s", "requests/s", "p50 ms", "p99 ms"])]
    load, fault = report["load"], report["fault"]
    runs = {
        f"{load['clients']} clients at once, batches of {load['batch_size']}": load,
        f"server killed (SIGKILL) and restarted ×{fault['kills']}": fault,
    }
    counts = ("answered", "charged", "lost", "double_charged")
    rows = [
        [name, str(r["requests"]), number(r.get("p50_ms"), 1), number(r.get("p99_ms"), 1)]
        + [str(r[key]) for key in counts]
        for name, r in runs.items()
    ]
    header = ["run", "requests", "p50 ms", "p99 ms", "answered", "charged", "lost"]
    restarts = ", ".join(number(s, 1) for s in fault["restart_seconds"]) or "–"
    same = "yes" if fault["answers_equal_uninterrupted"] else "**no**"
    parts.append(
        table(rows, [*header, "double-charged"])
        + "\n\nLost and double-charged: request by request, the server's SQLite log against "
        f"the clients' journals. The fault run's answers equal an uninterrupted run's: {same}; "
        f"restarts took {restarts} s; {fault['retries']} retries; "
        f"{fault['replayed_requests']} requests answered again from the server's log."
    )
    parts.append(explanation_runs(report.get("explanation_runs") or []))
    parts.append(phases(report))
    met = [f"- {name.replace('_', ' ')}: {verdict(v)}" for name, v in report["targets"].items()]
    parts.append("**Targets** (as the benchmark checked them)\n\n" + "\n".join(met))
    return "\n\n".join(part for part in parts if part)


def explanation_runs(runs: list[dict]) -> str:
    """benchmarks/serving.py's explanation runs, over HTTP and in process (when measured)."""
    if not runs:
        return (
            "Explanation runs over HTTP: not measured yet (`explanation_runs` in "
            "benchmarks/serving.py)."
        )
    same = ("same_success", "same_queries", "same_sizes")
    rows = [
        [
            r["strategy"],
            r["plan"],
            number(r["http_seconds"]),
            number(r["in_process_seconds"]),
            number(r["ratio"]),
            number(r.get("cpu_ratio")),
            f"{r['calls']} / {r['requests']}",
            percent(r["success_rate"]),
            percent(r["success_after_rounding"]),
            *("yes" if r[key] else "**no**" for key in same),
        ]
        for r in runs
    ]
    header = ["strategy", "plan", "HTTP s", "in process s", "ratio", "CPU ratio"]
    header += ["calls / requests"]
    header += ["success", "after rounding", "same success", "same queries", "same sizes"]
    return (
        "**Explanation runs**, over HTTP and in process on the same 8-bit images (`BlackBox("
        "model, bits=8)`), the best of up to 3 runs each, taken in turns. CPU ratio: the CPU "
        "time of client and server over HTTP against in process, what the wall times' ratio "
        "would be on an idle machine, where the client waits while the server works. Calls: "
        "the engine's, each a batch; "
        "requests: the client sends each call as requests of the API's `max_batch` images "
        "(`RemoteBlackBox._ask`). After rounding: explained once x_adv is rounded to 8 bits.\n\n"
        + table(rows, header)
    )


def phases(report: dict) -> str:
    """What one request costs the server, phase by phase, and its CPU time under load."""
    costs = report.get("phases")
    if not costs:
        return ""
    text = (
        f"**One request of 32 images, server side**: decoding {number(costs['decode_cpu_ms'], 1)}"
        f" ms of CPU, the forward pass {number(costs['forward_cpu_ms'], 1)} ms; 8 such requests "
        f"in one pass (micro-batching) {number(costs['forward_8_at_once_cpu_ms'], 1)} ms, "
        f"×{number(costs['micro_batching_gain'])} the speed per image; the commit of its charge "
        f"{number(costs['commit_full_ms'])} ms with `synchronous = FULL` (the server's), "
        f"{number(costs['commit_normal_ms'])} ms with NORMAL."
    )
    per_request = report["load"].get("server_cpu_ms_per_request")
    if per_request is not None:
        text += f" Under the load run the server used {number(per_request, 1)} ms of CPU a request."
    return text


def faithfulness(report: dict) -> str:
    """Issue 25: every method on the known-cause tasks, insertion and deletion on the real
    mistakes, and the targets."""
    settings, labels = report["settings"], report["labels"]
    seeds, threshold = len(settings["seeds"]), report["sanity_threshold"]
    parts = [
        f"Mean ± standard deviation over {seeds} seeds; per seed, a task's model and its first "
        f"{settings['num_images']} test mistakes caused by the cue (`helpers.causes`). Mass "
        "share: of the map's magnitude on the causal pixels (a map spread evenly has the mask's "
        "area); AUROC: the pixel ranking against the mask (0.5: chance); pointing: the top "
        "pixel within 1 pixel of the mask; ρ: Spearman's rank correlation with the same "
        "method's map once the model's two linear layers are re-initialised (first "
        f"{settings['num_sanity']} images; fails at ρ ≥ {threshold}); ms per image on "
        f"{threads(report.get('num_threads'))}. The GAN counterfactuals need a GAN per task "
        f"and seed (notebook 15's recipe took {report['real']['gan_training_seconds']:.0f} s to "
        f"train once in this run; one per task and seed, {len(report['tasks']) * seeds} times "
        "as long): left out here, measured on the real mistakes below."
    ]
    for name, task in report["tasks"].items():
        totals = task["summary"]["methods"]
        rows = [
            [labels[method], *(faithfulness_cell(record, key) for key in FAITHFULNESS_KEYS)]
            for method, record in totals.items()
        ]
        area = percent(task["summary"]["mask_area"]["mean"])
        caused = ", ".join(str(r["num_caused"]) for r in task["runs"])
        parts.append(
            f"**{name}** (mask area {area}; mistakes caused by the cue per seed: "
            f"{caused})\n\n" + table(rows, FAITHFULNESS_HEADER)
        )
    parts.append(faithfulness_real(report))
    lines = faithfulness_targets(report)
    return "\n\n".join(parts) + "\n\n**Targets**\n\n" + "\n".join(f"- {line}" for line in lines)


FAITHFULNESS_KEYS = (
    "mass_share",
    "mask_auroc",
    "pointing_game",
    "sanity_correlation",
    "ms_per_image",
)
FAITHFULNESS_HEADER = [
    "method",
    "mass share",
    "mask AUROC",
    "pointing game",
    "sanity ρ",
    "ms / image",
]


def faithfulness_cell(record: dict, key: str) -> str:
    """One measure as mean ± std: shares in percent, the rest as numbers."""
    entry = record[key]
    if key in ("mass_share", "pointing_game"):
        return f"{percent(entry['mean'])} ± {percent(entry['std'])}"
    digits = 0 if key == "ms_per_image" else 3
    return f"{number(entry['mean'], digits)} ± {number(entry['std'], digits)}"


def faithfulness_real(report: dict) -> str:
    """Insertion and deletion on the course CNN's real mistakes."""
    real, labels = report["real"], report["labels"]
    rows = [
        [
            labels[method],
            number(r["insertion_auc"], 3),
            number(r["deletion_auc"], 3),
            percent(r.get("success_rate")),
            number(r["ms_per_image"], 0),
        ]
        for method, r in real["methods"].items()
    ]
    return (
        f"**Real mistakes**: the course CNN's first {real['num_mistakes']} test mistakes; "
        "RISE's curves of the true class's probability as the map's top pixels are deleted "
        f"(set to black) or inserted (into a black image), {report['settings']['step']} pixels "
        "per point. A mistake starts with p(y) low: a map whose first pixels hold the cause of "
        "the error raises p(y) as they are deleted (a high deletion area, where RISE, explaining "
        "the answered class, reads a low one as good); one whose first pixels hold the evidence "
        "for y raises it as they are inserted. Compare each with the random map's.\n\n"
        + table(rows, ["method", "insertion AUC", "deletion AUC", "success", "ms / image"])
    )


def faithfulness_targets(report: dict) -> list[str]:
    """Issue 25's targets with the numbers they are read from."""
    met, labels = report["targets"], report["labels"]
    lines = []
    for name, t in met["tasks"].items():
        gap = t["auroc_gap"]
        shares = t["mass_shares"]
        lines.append(
            f"{name}: the best inverted explanation ({labels[t['best_inverted']]}) has mask "
            f"AUROC {number(t['best_inverted_auroc'], 3)}, the best captum method "
            f"({labels[t['best_captum']]}) {number(t['best_captum_auroc'], 3)}: "
            + (f"met (+{gap:.3f})" if t["auroc_met"] else f"**not met** ({-gap:.3f} below)")
            + f"; its sanity ρ {number(t['best_inverted_sanity'], 2)}: "
            + verdict(t["sanity_met"])
            + f"; the smooth explanation's mass share {percent(shares['smooth'])} against "
            f"{percent(shares['smooth_unsmoothed'])} unsmoothed (α = 0) and "
            f"{percent(shares['deepfool_refined'])} for the refined DeepFool: "
            + verdict(t["smooth_more_mass_met"])
        )
    smooth, real = report["real"]["smooth"], report["real"]
    lines.append(
        f"the smooth explanation explains {percent(smooth['success_rate'])} of the course CNN's "
        f"{real['num_mistakes']} test mistakes (target 100%): "
        + verdict(met["smooth_success_all_met"])
        + f"; median L2 {number(smooth['median_l2_ratio_to_refined'])}× the refined "
        "explanation's (target ≤ 1.5×): " + verdict(met["smooth_l2_within_1.5x_refined_met"])
    )
    minutes, cpu = report["seconds"] / 60, report.get("cpu_seconds", math.nan) / 60
    lines.append(
        f"the benchmark took {minutes:.1f} min (target under 15): {verdict(minutes < 15)}; "
        f"{cpu:.1f} min of CPU time, about its wall time on {threads(report.get('num_threads'))}"
        " of a machine it has to itself"
    )
    return lines


RENDERERS = {
    "whitebox": whitebox,
    "blackbox": blackbox,
    "blackbox_tuning": blackbox_tuning,
    "blackbox_routes": blackbox_routes,
    "blackbox_seeds": blackbox_seeds,
    "explorer": explorer,
    "robustness": robustness,
    "robust_recipe": robust_recipe,
    "evidence": evidence,
    "fixing": fixing,
    "generative": generative,
    "surrogates": surrogates,
    "serving": serving,
    "faithfulness": faithfulness,
}
TITLES = {
    "whitebox": "White box: four architectures, the paper's point and DDN",
    "blackbox": "Black box: providers of four families, each family left out of the candidates",
    "blackbox_tuning": "Black box: the tuning set (pool mistakes) that chose the settings",
    "blackbox_routes": "Black box: routes to a better prior, on the tuning set",
    "blackbox_seeds": "Black box: the figures over several draws of the surrogate and the probes",
    "explorer": "Explorer: redraw times",
    "robustness": "Robustness: the standard CNN and its defences",
    "robust_recipe": "Robustness: notebook 10's PGD recipe, chosen on held-out images",
    "evidence": "Inside the network: Grad-CAM shift (MOD, VID) under FGSM, promotion/suppression",
    "fixing": "Fixing the data and the model with the explanations",
    "generative": "Counterfactuals and Defense-GAN with a generative model",
    "surrogates": "Black box: the surrogate's architecture",
    "serving": "The model behind an API: speed, load and faults over HTTP",
    "faithfulness": "Does the explanation find the cause? Known-cause tasks and real mistakes",
}
START, END = "<!-- results: start (benchmarks/report.py --docs) -->", "<!-- results: end -->"


def course_timings() -> str:
    """The notebooks' run times from build/timings.txt, which `./run course` writes."""
    path = ROOT / "build" / "timings.txt"
    if not path.is_file():
        return "### Run times of the notebooks\n\nNo `build/timings.txt` yet: run `./run course`."
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    rows = [[name, f"{seconds} s"] for name, seconds, _ in rows]
    return (
        "### Run times of the notebooks\n\n`./run course` on the maintainers' machine (each "
        "notebook executed and written as HTML, each checkpoint loaded from `artifacts/` if it "
        "matched its recipe, else trained; from `build/timings.txt`)"
        "\n\n" + table(rows, ["notebook", "seconds"])
    )


def render_all(kept: dict[str, str] | None = None) -> str:
    """Every benchmark's tables, each under the command, device and threads it ran with. A
    benchmark with no JSON here keeps its section of ``kept`` (title -> text, docs/benchmarks.md's
    last tables) if it has one: a partial run refreshes only what it ran."""
    kept = kept or {}
    parts = [course_timings()]
    for name, render in RENDERERS.items():
        path, heading = BENCH / f"{name}.json", f"### {TITLES[name]}"
        if not path.is_file():
            parts.append(
                kept.get(heading)
                or f"{heading}\n\nNo `{path.relative_to(ROOT)}` yet: run `benchmarks/{name}.py`."
            )
            continue
        report = json.loads(path.read_text())
        parts.append(
            f"{heading}\n\n`{report.get('command', '?')}` on "
            f"{report.get('device', '?')}, {threads(report.get('num_threads'))}, torch "
            f"{report.get('torch', '?')}\n\n{render(report)}"
        )
    return "\n\n".join(parts)


def sections(block: str) -> dict[str, str]:
    """The README block's sections by their heading line ("### ..."), each with its text."""
    found = {}
    for part in ("\n" + block).split("\n### ")[1:]:
        text = "### " + part.strip()
        found[text.splitlines()[0]] = text
    return found


README_START = "<!-- headline: start (benchmarks/report.py --docs) -->"
README_END = "<!-- headline: end -->"


def whitebox_headline(report: dict) -> str:
    """One line per architecture: the default method's success, queries and size beside DDN,
    and whether the paper's point is met."""
    default = f"ours: {attacks.get(WHITEBOX_DEFAULTS[0]).label}"
    lines = []
    for arch, section in report.get("architectures", {"SmallCNN": report}).items():
        d, met = section["methods"][default], section.get("targets", {})
        lines.append(
            f"- {arch}: `deepfool` explains {percent(d['success_rate'])} of "
            f"{section['num_misclassified']} mistakes at {number(d['mean_queries'])} queries, "
            f"{number(d['median_l2_ratio_to_reference'], 3)}× DDN's L2; the paper's point "
            f"(≥ 99.67% at ≤ 1.96 queries): {_met(default, met, 'paper_point')}"
        )
    return "\n".join(lines)


def seeds_headline(report: dict) -> str:
    """One line: the reported runs' route on the reported mistakes over the draws (where the
    headline's median over the providers falls at each budget), and how often the rule kept
    the route."""
    route, draws = report["route"], report["draws"]
    sets = report["summary"]["routes"][route]["reported"]
    spans = []
    for budget in report["budgets"]:
        over = sets[str(budget)]["median_over_providers"]
        spans.append(
            f"{budget} queries: a draw left a mistake unexplained"
            if over["median"] is None
            else f"{budget} queries {number(over['lowest'])}× to {number(over['highest'])}× "
            f"(median {number(over['median'])}×; draw 0, the benchmark's: "
            f"{number(over['values'][0])}×)"
        )
    chose = sum(r["choice"] == route for r in report["summary"]["rule"])
    return (
        f"- over {draws} draws of the end user's surrogate and the search's probes "
        f"(`{report.get('command', '?')}`), the median over providers: {', '.join(spans)}; the "
        f"route rule kept the route in {chose} of {draws} draws"
    )


def ceiling_headline(report: dict) -> str:
    """One line: at each size target's budget, on how many tuning providers any of the ceiling
    screening's surrogates (all but its first, the end user's route) came within the target, and
    the smallest median ratio among them; then the twin's gradient cosine on each provider."""
    providers = report["providers"]
    names = list(next(iter(providers.values())))[1:]
    parts = []
    for budget, limit, _ in SIZE_TARGETS:
        points = [
            (point["median_l2_ratio_to_whitebox"], family, name)
            for family, rows in providers.items()
            for name in names
            for point in rows[name]["curve"]
            if point["budget"] == budget and point["success_rate"] == 1
        ]
        if not points:
            continue
        within = {family for ratio, family, _ in points if ratio <= limit}
        ratio, family, name = min(points)
        parts.append(
            f"≤ {limit}× at {budget} queries on {len(within)} of {len(providers)} providers "
            f"(smallest {number(ratio)}×: {family}, {name})"
        )
    twin = next(name for name in names if "twin (" in name)
    cosines = ", ".join(
        f"{family} {number(rows[twin]['gradient_cosine'])}" for family, rows in providers.items()
    )
    return (
        f"- the ceiling on the tuning set (`{report.get('command', '?')}`): surrogates told more "
        f"than an end user knows, up to the provider's twin (its family, data and recipe, another "
        f"seed): {'; '.join(parts)}; the twin's gradient cosine with the provider's: {cosines}"
    )


def blackbox_headline(report: dict) -> str:
    """Issue 27's targets, where the headline falls over several draws if
    ``blackbox_seeds.json`` is there, and the ceiling screening's line (CEILING)."""
    lines = targets(report)
    seeds = BENCH / "blackbox_seeds.json"
    if seeds.is_file():
        lines.append(seeds_headline(json.loads(seeds.read_text())))
    if CEILING.is_file():
        lines.append(ceiling_headline(json.loads(CEILING.read_text())))
    return "\n".join(lines)


HEADLINES = {  # name -> (heading, renderer) of the README's short results
    "whitebox": ("White box, four architectures", whitebox_headline),
    "blackbox": (
        "Black box, label-only, providers of four families (issue 27's targets)",
        blackbox_headline,
    ),
    "faithfulness": (
        "Does the explanation find the cause? (issue 25's targets)",
        lambda report: "\n".join(f"- {line}" for line in faithfulness_targets(report)),
    ),
}


def readme_headline(kept: dict[str, str]) -> str:
    """The README's short results, each under the command that wrote its JSON (or as the README
    last had it, for a benchmark with no JSON here)."""
    parts = []
    for name, (title, render) in HEADLINES.items():
        path, heading = BENCH / f"{name}.json", f"### {title}"
        if not path.is_file():
            old = [text for line, text in kept.items() if line.startswith(heading)]
            parts.append(old[0] if old else f"{heading}\n\nNo `build/bench/{name}.json` yet.")
            continue
        report = json.loads(path.read_text())
        parts.append(f"{heading} (`{report.get('command', '?')}`)\n{render(report)}")
    return "\n\n".join(parts)


def fill(path: Path, start: str, end: str, render) -> None:
    """Replace what ``path`` holds between ``start`` and ``end`` by ``render(kept sections)``."""
    text = path.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start!r} ... {end!r} block to fill")
    head, rest = text.split(start, 1)
    block, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n\n{render(sections(block))}\n\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--docs",
        action="store_true",
        help=f"write the tables into {DOCS.relative_to(ROOT)} between {START!r} and {END!r}",
    )
    if not parser.parse_args().docs:
        print(render_all())
        return
    fill(DOCS, START, END, lambda kept: render_all(kept=kept))
    fill(README, README_START, README_END, readme_headline)
    print(f"wrote the tables of {len(RENDERERS)} benchmarks into {DOCS}, the headline into README")


if __name__ == "__main__":
    sys.exit(main())
