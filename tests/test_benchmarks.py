"""The benchmarks run end to end and write the JSON docs/benchmarks.md describes (tiny settings)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402  (benchmarks/ is not a package)
import curves  # noqa: E402

from helpers import attacks, explorer  # noqa: E402


def needs_peers(*modules: str) -> pytest.MarkDecorator:
    """Skip, saying why, where pyproject.toml's `bench` group is not installed (./run course)."""
    missing = common.missing_peers(*modules)
    reason = f"{', '.join(missing)} not installed: ./run test and ./run bench install the group"
    return pytest.mark.skipif(bool(missing), reason=reason)


def run(script: str, *args: str) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], check=True, env=env, cwd=ROOT
    )


@needs_peers("adv_lib", "torchattacks")
def test_whitebox_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "whitebox.json"
    run(
        "whitebox.py",
        "--num-epochs",
        "1",
        "--max-images",
        "4",
        "--reference-steps",
        "20",
        *("--arch", "SmallCNN", "MLP"),
        "--output",
        str(output),
    )
    report = json.loads(output.read_text())
    assert report["reference"]["name"] == "adv-lib DDN" and report["num_misclassified"] == 4
    assert list(report["architectures"]) == ["SmallCNN", "MLP"]
    mlp = report["architectures"]["MLP"]
    assert mlp["num_misclassified"] == 4 and mlp["methods"].keys() == report["methods"].keys()
    fields = {
        "success_rate",
        "mean_queries",
        "median_queries",
        "median_l2",
        "median_linf",
        "seconds",
        "images_per_second",
        "device",
        "median_l2_ratio_to_reference",
    }
    for name, record in report["methods"].items():
        assert fields <= record.keys(), name
        assert 0 <= record["success_rate"] <= 1
    assert report["methods"]["adv-lib DDN"]["median_l2_ratio_to_reference"] == 1
    lines = benchmark_report().whitebox_headline(report).splitlines()
    assert [line.split(":")[0] for line in lines] == ["- SmallCNN", "- MLP"]
    assert all("of 4 mistakes" in line and "the paper's point" in line for line in lines)


def test_a_benchmark_without_its_peers_stops_before_any_work(monkeypatch, capsys):
    import whitebox

    find_spec = importlib.util.find_spec
    hidden = lambda name, *rest: None if name in common.PEERS else find_spec(name, *rest)
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    monkeypatch.setattr(common, "setup", lambda args: pytest.fail("the benchmark set up a course"))
    monkeypatch.setattr(sys, "argv", ["whitebox.py"])
    with pytest.raises(SystemExit, match=r"^error: adv-lib, torchattacks missing: .* \./run bench"):
        whitebox.main()


def test_explorer_benchmark_times_every_method(tmp_path):
    output = tmp_path / "explorer.json"
    run(
        "explorer.py",
        "--num-epochs",
        "1",
        "--surrogate-epochs",
        "1",
        "--num-images",
        "1",
        "--output",
        str(output),
    )
    report = json.loads(output.read_text())
    expected = sum(len(attacks.methods(mode)) for mode in explorer.MODES)  # every mode's row
    assert len(report["methods"]) == expected
    for record in report["methods"].values():
        assert record["redraws"] == 7 and 0 < record["median_seconds"] <= record["max_seconds"]


@needs_peers("art")
def test_blackbox_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "blackbox.json"
    tiny = ("--num-epochs", "1", "--surrogate-epochs", "1", "--num-members", "2")
    run(
        "blackbox.py",
        *tiny,
        *("--families", "SmallCNN", "PatchMixer", "--max-images", "3"),
        *("--budgets", "10", "25", "--pool-sizes", "15", "--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert report["role"] == "reported" and report["families"] == ["SmallCNN", "PatchMixer"]
    methods = [
        "ours: semicircle, pool starts",
        "ours through an API of 8-bit images",
        "semicircle, no starts",
        "before issue 27: HopSkipJump step, no starts",
        "HopSkipJump (ART, targeted)",
        "GeoDA (ART)",
        "Sign-OPT (ART, targeted)",
    ]
    fields = {"success_rate", "success_after_rounding", "median_l2_ratio_to_whitebox"}
    for family, provider in report["providers"].items():
        # the provider's own family is never a candidate of its surrogate
        assert family not in provider["surrogate"]["candidates"]
        assert provider["surrogate"]["label_queries"] == 1000
        assert provider["set"]["split"] == "test" and provider["set"]["num_mistakes"] == 3
        assert list(provider["curves"]) == methods
        for name, curve in provider["curves"].items():
            assert [p["budget"] for p in curve] == [10, 25], name
            for p in curve:
                assert fields <= p.keys() and p["mean_queries"] <= p["budget"]
                assert p["success_after_rounding"] <= p["success_rate"]
        # a box that answers about rounded images: every explanation is one after rounding
        for p in provider["curves"]["ours through an API of 8-bit images"]:
            assert p["success_after_rounding"] == p["success_rate"]
        labels = provider["label_curve"]
        assert [(r["label_queries"], r["method"]) for r in labels] == [(15, "paper"), (15, "ours")]
        assert labels[1]["mean_queries"] <= report["label_budget"] < 8.73
        # one surrogate serves both: its training is timed once, apart from each explanation
        assert labels[0]["training_seconds"] == labels[1]["training_seconds"] > 0
        assert all(r["seconds"] > 0 for r in labels)
        assert set(provider["targets"]) == set(report["targets"])
    assert list(report["headline"]) == methods
    assert report["cpu_seconds"] > 0 and len(report["load_average"]["start"]) == 3
    assert (tmp_path / "blackbox_budget_curve.png").stat().st_size
    text = benchmark_report().blackbox(report)
    assert "| ours: semicircle, pool starts |" in text and "**PatchMixer** (test accuracy" in text
    headline = benchmark_report().HEADLINES["blackbox"][1](report)
    assert "- 100% success at every budget: " in headline and "Sign-OPT" in headline
    run(
        "blackbox.py",
        *tiny,
        *("--tune", "--families", "SmallCNN", "--max-images", "2", "--budgets", "10"),
        *("--output", str(output)),
    )
    tuning = json.loads((tmp_path / "blackbox_tuning.json").read_text())
    assert tuning["role"] == "tuning" and tuning["providers"]["SmallCNN"]["set"]["split"] == "pool"
    assert len(tuning["providers"]["SmallCNN"]["curves"]) == 7  # chosen, 5 changes, the old search
    assert "the tuning set" in benchmark_report().blackbox_tuning(tuning)
    run(
        "blackbox.py",
        *tiny,
        *("--routes", "--families", "PatchMixer", "--max-images", "2", "--budgets", "10"),
        *("--agreement-images", "50"),
        *("--output", str(output)),
    )
    routes = json.loads((tmp_path / "blackbox_routes.json").read_text())
    provider = routes["providers"]["PatchMixer"]
    assert routes["role"] == "routes" and provider["set"]["split"] == "pool"
    assert list(provider["routes"]) == list(routes["routes"]) and provider["curves"] == {}
    choice = routes["route_choice"]  # None: no route explained every tuning mistake
    assert list(choice["scores"]) == list(routes["routes"])
    assert choice["choice"] in [None, *routes["routes"]]
    for name, route in provider["routes"].items():
        assert 0 <= route["agreement"] <= 1 and -1 <= route["gradient_cosine"] <= 1
        assert [p["budget"] for p in route["curve"]] == [10]
        assert all(p["mean_queries"] <= 10 for p in route["curve"])
        # a surrogate refit between two halves: how its gradient points after the refit
        refit = bool(routes["routes"][name].get("halves"))
        assert all(("refit_gradient_cosine" in p) == refit for p in route["curve"])
    assert sum("halves" in route for route in routes["routes"].values()) == 2
    text = benchmark_report().blackbox_routes(routes)
    assert "| PatchMixer | one of each candidate family |" in text
    assert "refit between two halves |" in text and "| — |" in text  # no refit: no cosine after


def test_blackbox_seeds_benchmark_draws_each_route_afresh_on_both_sets(tmp_path):
    output = tmp_path / "blackbox_seeds.json"
    run(
        "blackbox_seeds.py",
        *("--num-epochs", "1", "--surrogate-epochs", "1", "--families", "SmallCNN"),
        *("--max-images", "2", "--budgets", "10", "--draws", "2", "--agreement-images", "50"),
        *("--output", str(output)),
    )
    report = json.loads(output.read_text())
    labels = report["seed_routes"]
    assert report["route"] in labels and list(report["routes"]) == list(labels)
    provider = report["providers"]["SmallCNN"]
    assert provider["num_mistakes"] == {"tuning": 2, "reported": 2}
    for name in labels:
        entries = provider["routes"][name]
        assert [(e["draw"], e["surrogate_seed"], e["probe_seed"]) for e in entries] == [
            (0, 1, 0),
            (1, 2, 1),
        ]
        # another seed trains another surrogate: its gradient is not the first draw's
        cosines = [e[role]["gradient_cosine"] for e in entries for role in ("tuning", "reported")]
        assert cosines[:2] != cosines[2:] and all(-1 <= c <= 1 for c in cosines)
        for role in ("tuning", "reported"):
            values = [e[role]["curve"][0]["median_l2_ratio_to_whitebox"] for e in entries]
            spread = report["summary"]["routes"][name][role]["10"]["providers"]["SmallCNN"]
            if all(e[role]["curve"][0]["success_rate"] == 1 for e in entries):
                assert spread["values"] == values and spread["lowest"] == min(values)
            else:  # a draw that leaves a mistake unexplained has no figure to spread
                assert spread["median"] is None
    assert [r["draw"] for r in report["summary"]["rule"]] == [0, 1]
    text = benchmark_report().blackbox_seeds(report)
    assert "| SmallCNN | distilled at T = 10 (ROUTE) | reported |" in text
    assert "of 2 draws." in text and "| SmallCNN | undistilled | tuning |" in text
    headline = benchmark_report().seeds_headline(report)
    assert "- over 2 draws of the end user's surrogate" in headline and "\n" not in headline
    assert "10 queries " in headline and "of 2 draws" in headline


@pytest.mark.parametrize("script", ["blackbox.py", "blackbox_seeds.py"])
def test_a_bad_agreement_count_stops_before_any_training(script):
    ran = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--agreement-images", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ran.returncode == 2 and "--agreement-images must be at least 1" in ran.stderr


def test_the_route_rule_sums_whole_routes_and_leaves_out_one_that_explains_too_little():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import blackbox

    def point(ratio: float, success: float = 1.0) -> dict:
        return {"median_l2_ratio_to_whitebox": ratio, "success_rate": success}

    assert blackbox.rule_score([point(1.5), point(2.25)]) == 3.75
    assert blackbox.rule_score([point(1.0), point(0.5, 0.95)]) is None  # small, but a miss
    assert blackbox.rule_score([]) is None
    assert blackbox.rule_choice({"a": 3.75, "b": None, "c": 3.5}) == "c"
    assert blackbox.rule_choice({"a": None}) is None


def test_the_seed_study_leaves_out_a_draw_that_explains_too_little():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import blackbox_seeds

    def entry(ratio: float, success: float = 1.0) -> dict:
        curve = [{"budget": 100, "median_l2_ratio_to_whitebox": ratio, "success_rate": success}]
        return {"tuning": {"curve": curve}, "reported": {"curve": curve}}

    first, second = blackbox_seeds.SEED_ROUTES
    providers = {
        "A": {"routes": {first: [entry(2.0), entry(3.0, 0.9)], second: [entry(2.5), entry(2.6)]}},
        "B": {"routes": {first: [entry(1.0), entry(1.2)], second: [entry(1.5), entry(1.1)]}},
    }
    summary = blackbox_seeds.summary(providers, draws=2, budgets=[100])
    over = summary["routes"][second]["tuning"]["100"]["median_over_providers"]
    assert over["values"] == [2.0, 1.85] and over["lowest"] == 1.85 and over["highest"] == 2.0
    assert summary["routes"][first]["tuning"]["100"]["median_over_providers"]["median"] is None
    assert [r["choice"] for r in summary["rule"]] == [first, second]  # draw 1: first left one
    assert summary["rule"][1]["scores"][first] is None
    # draw by draw: a draw that leaves a mistake unexplained is never the smaller
    paired = benchmark_report().paired
    assert paired(providers["A"], first, second, "tuning", 100) == 1
    assert paired(providers["A"], second, first, "tuning", 100) == 1


@needs_peers("adv_lib", "torchattacks")
def test_robustness_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "robustness.json"
    run(
        "robustness.py",
        *("--num-epochs", "1", "--robust-epochs", "1", "--pgd-steps", "2"),
        *("--max-images", "20", "--restarts", "1", "--repeats", "2", "--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert set(report["models"]) == {"standard", "noise", "fgsm_rs", "pgd", "bit_depth"}
    for name, model in report["models"].items():
        assert 0 <= model["clean_accuracy"] <= 1 and "seconds_per_epoch" in model, name
    kinds = {(r["model"], r["attack"]) for r in report["results"]}
    assert ("bit_depth", "bpda") in kinds and ("pgd", "pgd") in kinds and len(kinds) == 11
    assert all(
        len({r["eps"] for r in report["results"] if (r["model"], r["attack"]) == k}) == 3
        for k in kinds
    )
    peers = report["cross_check"]["peers"]
    assert set(peers) == {"ours", "torchattacks", "adv-lib"}
    assert all(p["images_per_second"] > 0 and len(p["seconds"]) == 2 for p in peers.values())
    assert len(report["targets"]) == 7 and all(
        isinstance(v, bool) for v in report["targets"].values()
    )


def test_the_report_prints_a_table_per_benchmark(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report

    robustness = {
        "models": {"standard": {"clean_accuracy": 0.96, "seconds_per_epoch": 2.0}},
        "results": [
            {"model": "standard", "attack": a, "eps": 0.1, "accuracy": 0.5} for a in ("fgsm", "pgd")
        ],
    }
    text = report.robustness(robustness)
    assert "| standard | 96% | 50% | 50% | – | 2.0 |" in text
    explorer = {"methods": {"m": {"redraws": 3, "median_seconds": 0.01, "p95_seconds": 0.02}}}
    assert "| m | 3 | 0.010 | 0.020 |" in report.explorer(explorer)
    whitebox = {"architectures": {"SmallCNN": _section(1.45, met=True), "MLP": _section(2.1)}}
    summary = report.whitebox_summary(whitebox)
    assert summary.splitlines()[0] == "|  | SmallCNN | MLP |"
    assert "| `deepfool`: mean queries | 1.45 | 2.10 |" in summary
    assert "| paper's point (≥ 99.67%, ≤ 1.96 q, ≤ 1.25× DDN) | met | **not met** |" in summary


def test_evidence_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "evidence.json"
    run(
        "evidence.py",
        *("--num-epochs", "1", "--second-epochs", "1", "--robust-epochs", "1"),
        *("--surrogate-epochs", "1", "--max-images", "12", "--pgd-steps", "2"),
        *("--output", str(output)),
    )
    report = json.loads(output.read_text())
    keys = {(r["model"], r["layer"], r["eps"]) for r in report["mod"]}
    assert len(keys) == 3 * 2 * 5 and all(0 <= r["mod"] <= 1 for r in report["mod"])
    assert {(r["model"], r["position"]) for r in report["vid"]} == {
        (m, p) for m in ("standard", "LeNetBN", "robust") for p in ("earlier", "last")
    }
    assert set(report["shares"]) == {
        "white-box explanations",
        "black-box explanations",
        "PGD attacks",
    }
    for source in report["shares"].values():
        total = sum(source[c] for c in ("promotion", "balanced", "suppression", "neither"))
        assert total == pytest.approx(1.0) or source["num_images"] == 0
    assert report["speed"]["images_per_second"] > 0 and report["speed"]["num_images"] == 1000
    text = benchmark_report().evidence(report)
    assert "| standard | last (`features.3`) |" in text and "images per second" in text


def test_the_readme_headline_keeps_what_has_no_json_and_renders_what_has(tmp_path, monkeypatch):
    report = benchmark_report()
    monkeypatch.setattr(report, "BENCH", tmp_path)
    readme = tmp_path / "README.md"
    old = "### White box, four architectures (`an old command`)\n\n- SmallCNN: kept"
    readme.write_text(f"intro\n{report.README_START}\n\n{old}\n\n{report.README_END}\nrest\n")
    report.fill(readme, report.README_START, report.README_END, report.readme_headline)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{report.README_END}\nrest\n")
    assert old in text and "No `build/bench/blackbox.json` yet." in text


def benchmark_report():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report

    return report


def _section(queries: float, met: bool = False) -> dict:
    """A white-box section of the report: the two default methods, and which met the targets."""
    method = {
        "success_rate": 1.0,
        "mean_queries": queries,
        "median_l2_ratio_to_reference": 1.1,
        "speedup_vs_reference": 30.0,
    }
    names = ("ours: DeepFool", "ours: DeepFool + 10 refinement steps")
    return {
        "num_misclassified": 38,
        "model_test_accuracy": 0.962,
        "methods": dict.fromkeys(names, method),
        "targets": {"paper_point": [names[0]] if met else [], "minimal": [names[1]]},
    }


def test_the_report_fills_the_readme_block(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report

    (tmp_path / "build" / "bench").mkdir(parents=True)
    explorer = {
        "command": "c",
        "methods": {"m": {"redraws": 3, "median_seconds": 0.01, "p95_seconds": 0.02}},
    }
    (tmp_path / "build" / "bench" / "explorer.json").write_text(json.dumps(explorer))
    readme = tmp_path / "benchmarks.md"
    robustness = f"### {report.TITLES['robustness']}\n\nlast run's table"  # no JSON: kept
    old = f"old tables\n\n### {report.TITLES['explorer']}\n\nstale\n\n{robustness}"
    readme.write_text(f"intro\n{report.START}\n{old}\n{report.END}\nafter\n")
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "BENCH", tmp_path / "build" / "bench")
    monkeypatch.setattr(report, "DOCS", readme)
    monkeypatch.setattr(sys, "argv", ["report.py", "--docs"])
    report.main()
    text = readme.read_text()
    assert text.startswith(f"intro\n{report.START}\n") and text.endswith(f"{report.END}\nafter\n")
    assert "old tables" not in text and "| m | 3 | 0.010 | 0.020 |" in text
    assert "stale" not in text and f"{robustness}\n\n### " in text
    assert "No `build/bench/whitebox.json` yet" in text
    readme.write_text("no block\n")
    with pytest.raises(SystemExit, match="no"):
        report.main()


def test_the_report_says_which_black_box_target_is_met_with_its_figures():
    report = benchmark_report()

    def curve(name: str, ratios: tuple[float, float], success: float = 1.0) -> list[dict]:
        return [
            {
                "method": name,
                "budget": budget,
                "median_l2_ratio_to_whitebox": ratio,
                "success_rate": success,
                "success_after_rounding": success,
            }
            for budget, ratio in zip((100, 500), ratios)
        ]

    ours, peer = "ours", "HopSkipJump (ART, targeted)"
    providers = {
        "A": {"curves": {ours: curve(ours, (1.4, 1.1)), peer: curve(peer, (3.0, 2.0))}},
        "B": {"curves": {ours: curve(ours, (2.0, 1.3)), peer: curve(peer, (4.0, 1.3))}},
    }
    labels = {"pool_size": 150, "label_queries": 150, "success_rate": 1.0, "mean_queries": 2.5}
    paper = {**labels, "success_rate": 0.8, "mean_queries": 6.0, "method": "paper"}
    providers["A"]["label_curve"] = [paper, {**labels, "method": "ours"}]
    headline = {
        ours: [
            {
                "budget": budget,
                "median_over_providers": median,
                "worst_provider": worst,
                "lowest_success_rate": 1.0,
                "lowest_success_after_rounding": 0.95,
            }
            for budget, median, worst in ((100, 1.7, 2.0), (500, 1.2, 1.3))
        ]
    }
    targets = {
        "within_1.5x_at_100": False,
        "within_1.2x_at_500": False,
        "all_explained": True,
        "smaller_than_peers_at_every_budget": False,
        "paper_point_from_at_most_150_labels": True,
    }
    lines = report.targets({"providers": providers, "headline": headline, "targets": targets})
    assert lines == [
        "- ≤ 1.5× the developer's at 100 queries on every provider: **not met** (median over "
        "providers 1.70×; A 1.40×, B 2.00×)",
        "- ≤ 1.2× the developer's at 500 queries on every provider: **not met** (median over "
        "providers 1.20×; A 1.10×, B 1.30×)",
        "- 100% success at every budget: met (lowest 100%; once rounded to 8 bits, lowest 95%)",
        "- smaller than HopSkipJump, GeoDA and Sign-OPT at every budget: **not met** (not where "
        "a peer is as small: B at 500 (HopSkipJump (ART, targeted) 1.30× ≤ 1.30×))",
        "- the paper's point (≥ 95% at ≤ 8.73 queries) from ≤ 150 label queries: met (A: 150 "
        "labels, 100% at 2.50 queries)",
    ]
    assert "| ours | 1.70× (worst 2.00×; 100%, 95% rounded) | 1.20× (worst 1.30×; 100%, " in (
        report.headline_table(headline, [100, 500])
    )


def test_fixing_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "fixing.json"
    run(
        "fixing.py",
        *("--seeds", "0", "1", "--num-epochs", "1", "--train-size", "200", "--max-images", "20"),
        *("--num-extra", "10", "--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert [r["seed"] for r in report["runs"]] == [0, 1]
    for run_ in report["runs"]:
        decoy, labels = run_["decoy"], run_["labels"]
        assert {"shortcut", "clean", "data_fix", "model_fix"} <= set(decoy)
        assert labels["num_flips"] == 10
        for score in ("explanation", "loss", "cleanlab"):
            assert set(labels[score]) == {"precision_at_k", "auroc", "removed_test_accuracy"}
        assert {"baseline_test_accuracy", "targeted_test_accuracy"} <= set(run_["weak_pairs"])
    assert report["summary"]["labels.explanation.auroc"]["std"] >= 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report as renderer

    text = renderer.fixing(report)
    assert "over 2 seeds" in text and "| remove the top k by explanation |" in text


def test_generative_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "generative.json"
    run(
        "generative.py",
        *("--num-epochs", "1", "--gan-epochs", "1", "--counterfactual-epochs", "1"),
        *("--max-images", "6", "--num-attacked", "20", "--pgd-steps", "2"),
        *("--num-defended", "6", "--projection-steps", "2", "--bpda-steps", "1"),
        *("--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert set(report["training_seconds"]) == {"conditional", "counterfactual"}
    counterfactuals = report["counterfactuals"]
    assert counterfactuals["num_mistakes"] == 6 and 0 <= counterfactuals["success_rate"] <= 1
    assert {"median_l2", "median_top50_overlap", "mean_queries"} <= counterfactuals.keys()
    assert {(r["model"], r["eps"]) for r in report["pgd"]} == {
        (m, e) for m in ("course CNN", "combined classifier") for e in (0.0, 0.1, 0.2, 0.3)
    }
    assert 0 <= report["uncertainty"]["fakeness_auroc"] <= 1
    attacks = {(r["attack"], r["eps"]) for r in report["defense_gan"]}
    assert attacks == {("clean", 0.0)} | {
        (a, e) for a in ("fgsm", "pgd", "bpda") for e in (0.1, 0.3)
    }
    assert set(report["targets"]["bpda_below_plain_attacks"]) == {"0.1", "0.3"}
    text = benchmark_report().generative(report)
    assert "| combined classifier |" in text and "| bpda ε=0.3 |" in text


def test_surrogates_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "surrogates.json"
    run(
        "surrogates.py",
        *("--num-epochs", "1", "--surrogate-epochs", "1", "--max-images", "4"),
        *("--architectures", "SurrogateCNN", "MLP", "--budgets", "10", "30"),
        *("--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert [r["architecture"] for r in report["architectures"]] == ["SurrogateCNN", "MLP"]
    for record in report["architectures"]:
        assert -1 <= record["gradient_cosine"] <= 1 and 0 <= record["agreement"] <= 1
        assert [p["budget"] for p in record["budget_curve"]] == [10, 30]
        assert all(p["mean_queries"] <= p["budget"] for p in record["budget_curve"])
    assert "| MLP |" in benchmark_report().surrogates(report)


def test_serving_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "serving.json"
    run(
        "serving.py",
        *("--num-epochs", "1", "--surrogate-epochs", "1", "--max-images", "3"),
        *("--num-requests", "3", "--num-clients", "2"),
        *("--requests-per-client", "2", "--fault-requests", "4", "--kills", "1"),
        *("--output", str(output)),
    )
    report = json.loads(output.read_text())
    assert list(report["speed"]) == [
        "in process, 1 image",
        "in process, batch of 32",
        "HTTP, 1 image",
        "HTTP, batch of 32",
    ]
    for record in report["speed"].values():
        assert 0 < record["p50_ms"] <= record["p99_ms"] and record["queries_per_second"] > 0
    load, fault = report["load"], report["fault"]
    counts = ("answered", "charged", "lost", "double_charged")
    assert [load[key] for key in counts] == [2 * 2 * 32, 2 * 2 * 32, 0, 0]
    assert [fault[key] for key in counts] == [4 * 32, 4 * 32, 0, 0]
    assert fault["kills"] == 1 and fault["caller_queries"] == 4 * 32
    assert fault["answers_equal_uninterrupted"]
    assert all(isinstance(v, bool) for v in report["targets"].values())
    runs = report["explanation_runs"]
    assert [(r["strategy"], r["plan"]) for r in runs] == [
        (strategy, plan)
        for plan in ("label", "top5_probabilities")
        for strategy in (
            "schedule ×1.5 (DeepFool)",
            "schedule ×1.5 + 3 shrink steps",
            "boundary search, 100 queries",
        )
    ]
    for r in runs:  # the same 8-bit images answered alike over HTTP and in process
        assert r["same_success"] and r["same_queries"] and r["same_sizes"], r
        assert r["success_after_rounding"] == r["success_rate"] and r["http_seconds"] > 0
        assert r["calls"] <= r["requests"] and r["images_answered"] > 0
        assert r["http_cpu_seconds"] > 0 and r["in_process_cpu_seconds"] > 0
    assert report["targets"]["label_plan_explanations_same_as_in_process"]
    phases = report["phases"]  # positive times; a disk that ignores fsync may tie the commits
    assert min(phases[key] for key in ("forward_cpu_ms", "commit_full_ms", "commit_normal_ms")) > 0
    text = benchmark_report().serving(report)
    assert "| HTTP, batch of 32 |" in text and "| 2 clients at once, batches of 32 | 4 |" in text
    assert "- fault answers equal uninterrupted: met" in text
    assert "| boundary search, 100 queries | label |" in text and "8 such requests" in text


def test_faithfulness_benchmark_writes_every_field(tmp_path):
    output = tmp_path / "faithfulness.json"
    run(
        "faithfulness.py",
        *("--tasks", "mark", "--seeds", "0", "1", "--task-epochs", "1", "--train-size", "500"),
        *("--num-images", "3", "--num-sanity", "2", "--surrogate-epochs", "1"),
        *("--num-epochs", "1", "--counterfactual-epochs", "1", "--max-images", "3"),
        *("--output", str(output)),
    )
    report = json.loads(output.read_text())
    task = report["tasks"]["mark"]
    assert [r["seed"] for r in task["runs"]] == [0, 1]
    methods = set(report["labels"]) - {"gan"}
    keys = {"mass_share", "mask_auroc", "pointing_game", "sanity_correlation", "ms_per_image"}
    for run_ in task["runs"]:
        assert set(run_["methods"]) == methods and run_["num_images"] <= 3
        assert all(keys <= set(record) for record in run_["methods"].values())
        assert 0 <= run_["methods"]["random"]["mask_auroc"] <= 1
    assert task["summary"]["methods"]["smooth"]["mass_share"]["std"] >= 0
    real = report["real"]
    assert set(real["methods"]) == set(report["labels"]) and real["num_mistakes"] == 3
    assert 0 <= real["methods"]["gan"]["deletion_auc"] <= 1
    targets = report["targets"]
    assert set(targets["tasks"]["mark"]) >= {"auroc_met", "sanity_met", "smooth_more_mass_met"}
    assert isinstance(targets["smooth_success_all_met"], bool)
    text = benchmark_report().faithfulness(report)
    assert "over 2 seeds" in text and "| smooth (α = 0.9) |" in text and "**mark**" in text
    assert "the benchmark took" in text and "insertion AUC" in text


def test_robust_recipe_benchmark_chooses_on_held_out_images_and_checks_its_targets(tmp_path):
    output = tmp_path / "robust_recipe.json"
    run(
        "robust_recipe.py",
        *("--num-epochs", "1", "--max-epochs", "2", "--num-val", "100", "--seeds", "0"),
        *("--max-images", "10", "--attack-steps", "3", "--restarts", "1"),
        *("--output", str(output)),
    )
    report = json.loads(output.read_text())
    curve = report["choice"]["curve"]
    assert [point["epoch"] for point in curve] == [0, 1, 2] and report["choice"]["num_val"] == 100
    best = max(point["pgd"] for point in curve[1:])
    assert curve[report["num_epochs"]]["pgd"] == best  # the choice is the held-out best
    seed = report["seeds"]["0"]
    assert set(seed["pgd"]) == {"clean", "pgd 0.05", "pgd 0.1", "pgd 0.2"}
    assert seed["num_images"] == 10 and len(report["targets"]) == 2
    assert report["recipe"] == {"eps": 0.1, "num_steps": 3, "step_size": 2.5 * 0.1 / 3}
    text = benchmark_report().robust_recipe(report)
    assert "100 held-out training images" in text and "| 0 | pgd |" in text
    assert text.count(": met") + text.count(": not met") == 2


PROTOTYPES = sorted((ROOT / "benchmarks" / "prototypes").glob("*_screen.py"))


@pytest.mark.parametrize("script", PROTOTYPES, ids=lambda path: path.stem)
def test_each_screening_still_imports_and_keeps_the_result_it_wrote(script, monkeypatch):
    # the screenings of issue 27 are one-off scripts, not run here (minutes each); this checks
    # that each still imports against the benchmark it screened for, and that the JSON beside
    # it names the command that wrote it, for every provider the benchmark has
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location(f"prototype_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main)
    result = json.loads(script.with_suffix(".json").read_text())
    assert result["command"] == f"python benchmarks/prototypes/{script.name}"
    assert list(result["providers"]) == list(module.screening.bench.FAMILIES)
    assert result["seconds"] > 0
    # every screening ran through the route it names (its own ROUTE, else the screenings'),
    # one the benchmark still measures
    route = getattr(module, "ROUTE", module.screening.ROUTE)
    assert route in module.screening.bench.ROUTES
    assert result.get("route", module.screening.ROUTE) == route


def _ceiling_row(r100: float, r500: float, cosine: float, explained_at_500: float = 1.0):
    """One surrogate of the ceiling screening: its cosine and its two points."""
    curve = [
        {"budget": 100, "median_l2_ratio_to_whitebox": r100, "success_rate": 1.0},
        {"budget": 500, "median_l2_ratio_to_whitebox": r500, "success_rate": explained_at_500},
    ]
    return {"gradient_cosine": cosine, "curve": curve}


def test_the_ceiling_line_counts_the_providers_within_each_target_without_the_users_route():
    twin = "the provider's twin (seed 1)"
    report = {
        "command": "python benchmarks/prototypes/ceiling_screen.py",
        "providers": {  # the first row is the end user's route: never counted
            "A": {"route": _ceiling_row(1.0, 1.0, 0.9), twin: _ceiling_row(1.6, 1.19, 0.25)},
            "B": {"route": _ceiling_row(1.0, 1.0, 0.9), twin: _ceiling_row(1.45, 1.1, 0.13, 0.9)},
        },
    }
    line = benchmark_report().ceiling_headline(report)
    assert "\n" not in line and line.startswith("- the ceiling on the tuning set")
    assert f"≤ 1.5× at 100 queries on 1 of 2 providers (smallest 1.45×: B, {twin})" in line
    # B's twin left a mistake unexplained at 500: its smaller ratio does not count
    assert f"≤ 1.2× at 500 queries on 1 of 2 providers (smallest 1.19×: A, {twin})" in line
    assert line.endswith("the twin's gradient cosine with the provider's: A 0.25, B 0.13")
    committed = json.loads(benchmark_report().CEILING.read_text())
    assert "of 4 providers" in benchmark_report().ceiling_headline(committed)


def test_halves_curve_refuses_a_budget_under_four_before_any_query():
    asked = []

    def provider(x):
        asked.append(len(x))
        return x.new_zeros(len(x), 10)

    with pytest.raises(ValueError, match="budgets of at least 4, got 3"):
        curves.halves_curve(
            provider, None, None, None, (100, 3), "split", pool=None, refit_epochs=0, seed=0
        )
    assert asked == []  # the budget of 100, listed first, spent nothing either
