"""The engine every method shares: model state, goals, objectives, budgets, the table of methods."""

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import make_batch, make_bn_model, make_cnn

from helpers import attacks, engine, objectives
from helpers.attacks import Method, transfer
from helpers.blackbox import BlackBox

WHITE_BOX = [method.name for method in attacks.methods("white box")]
BLACK_BOX = [method.name for method in attacks.methods("black box")]


@pytest.mark.parametrize("method", WHITE_BOX + BLACK_BOX)
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), num_images=st.integers(1, 5))
def test_a_model_left_in_training_mode_is_run_in_eval_mode_and_left_untouched(
    method, seed, num_images
):
    model = make_bn_model(seed)
    x, y = make_batch(seed, num_images)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    subjects = {"model": model, "black_box": BlackBox(model), "surrogate": make_cnn(seed)}
    rng = torch.get_rng_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = attacks.get(method)(x, y, **subjects, max_queries=4)
    said = [str(w.message) for w in caught if "training mode" in str(w.message)]
    # the developer is told once, with the fix; a black box is an API: it answers in eval mode
    assert len(said) == (method in WHITE_BOX) and all("model.eval()" in s for s in said)
    assert model.training and all(m.training for m in model.modules())  # its mode is back
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # bit-identical
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    with torch.no_grad():  # success is what the model in eval mode says
        model.eval()
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)
        assert torch.equal(result.attacked, model(x).argmax(1) != y)


def test_a_single_image_runs_through_batch_norm_in_training_mode():
    model = make_bn_model(0)
    x, y = make_batch(0, 1)
    with pytest.warns(UserWarning, match="training mode"):
        result = attacks.explain(model, x, y)  # BatchNorm1d would fail on one image in training
    assert len(result) == 1 and model.training


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), num_images=st.integers(1, 6))
def test_the_fool_goal_attacks_the_right_answers_and_succeeds_when_they_turn_wrong(
    seed, num_images
):
    model, (x, y) = make_cnn(seed), make_batch(seed, num_images)
    result = attacks.iterative_gradient(
        model, x, y, goal="fool", norm="l2", step_size=0.5, max_queries=6
    )
    with torch.no_grad():
        right = model(x).argmax(1) == y
        assert torch.equal(result.success, model(result.x_adv).argmax(1) != y)
    assert torch.equal(result.attacked, right) and (result.queries[~right] == 0).all()
    assert torch.equal(result.x_adv[~right], x[~right])


def test_any_callable_of_the_right_shape_can_be_the_objective():
    model, (x, y) = make_cnn(0), make_batch(0, 20)
    calls = []

    def true_logit(logits, y):
        calls.append(len(y))
        return logits.gather(1, y[:, None]).squeeze(1)

    result = attacks.iterative_gradient(model, x, y, objective=true_logit, max_queries=20)
    assert calls and result.success_rate > 0.5
    assert torch.allclose(
        objectives.margin(torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([1])), torch.tensor([1.0])
    )


def misclassified_batch(num_images: int):
    """A tiny model and `num_images` images it gets wrong, with their true labels."""
    model = make_cnn(1)
    x, _ = make_batch(1, 4 * num_images)
    with torch.no_grad():
        y_pred = model(x).argmax(1)
    return model, x[:num_images], (y_pred[:num_images] + 1) % 4


def test_a_budget_smaller_than_a_round_explains_the_images_it_covers():
    model, x, y = misclassified_batch(10)
    black_box = BlackBox(model, max_queries=10 + 7)  # the originals, then 7 of 10 candidates
    with pytest.warns(UserWarning, match="budget ran out"):
        result = transfer.explain(black_box, make_cnn(2), x, y)
    assert black_box.queries == 17 == result.forward_passes.sum()
    assert result.queries.tolist() == [1] * 7 + [0] * 3  # in the batch's order
    assert not result.success[7:].any() and result.attacked.all()
    with torch.no_grad():
        assert torch.equal(result.success, model(result.x_adv).argmax(1) == y)


def test_an_exhausted_black_box_returns_at_once_with_no_success():
    model, x, y = misclassified_batch(5)
    black_box = BlackBox(model, max_queries=0)
    with pytest.warns(UserWarning, match="budget ran out: 5 of 5 images"):
        result = transfer.explain(black_box, make_cnn(2), x, y)
    assert not result.success.any() and (result.forward_passes == 0).all()
    assert torch.equal(result.x_adv, x)


def test_a_row_of_the_table_rejects_bad_entries_and_names_what_is_missing():
    deepfool = attacks.get("deepfool")
    names = [method.name for method in attacks.METHODS]
    assert len(names) == len(set(names))  # one row per name
    with pytest.raises(ValueError, match="knob 'strength' needs a default"):
        Method("x", "x", "white box", attacks.deepfool, "strength", (0, 1, 0.1))
    with pytest.raises(ValueError, match="default outside its range"):
        Method("y", "y", "white box", attacks.deepfool, "overshoot", (0, 1, 0.1), {"overshoot": 2})
    with pytest.raises(ValueError, match="kind must be one of"):
        Method("z", "z", "grey box", attacks.deepfool, "overshoot", (0, 1, 0.1), {"overshoot": 0})
    with pytest.raises(ValueError, match="needs must be one of"):
        Method(
            "w",
            "w",
            "white box",
            attacks.deepfool,
            "overshoot",
            (0, 1, 0.1),
            {"overshoot": 0},
            ("oracle",),
        )
    x, y = make_batch(0, 2)
    with pytest.raises(TypeError, match="needs model"):
        deepfool(x, y)
    with pytest.raises(ValueError, match="method must be one of 'deepfool'"):
        attacks.explain(make_cnn(0), x, y, method="blackbox_deepfool")


@pytest.mark.parametrize("method", WHITE_BOX + BLACK_BOX)
def test_every_registered_method_runs_at_its_knob_limits(method):
    chosen = attacks.get(method)
    model, (x, y) = make_cnn(3), make_batch(3, 6)
    subjects = {"model": model, "black_box": BlackBox(model), "surrogate": make_cnn(4)}
    low, high, _ = chosen.knob_range
    for value in (low, chosen.knob_default, high):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = chosen(x, y, **subjects, **{chosen.knob: value}, max_queries=5)
        assert result.queries.max() <= 5 and result.x_adv.min() >= 0 and result.x_adv.max() <= 1


def test_a_record_goes_in_and_keeps_its_index():
    model, (x, y) = make_cnn(0), make_batch(0, 8)
    with torch.no_grad():
        logits = model(x)
    from helpers.records import Mistakes

    mistakes = Mistakes(index=torch.arange(100, 108), x=x, y=y, logits=logits)
    result = attacks.explain(model, mistakes[mistakes.misclassified])
    assert result.index.tolist() == mistakes.index[mistakes.misclassified].tolist()
    assert torch.equal(result.logits, logits[mistakes.misclassified])
    box = transfer.explain(BlackBox(model), make_cnn(1), mistakes[:3])
    assert box.index.tolist() == [100, 101, 102]
    with pytest.raises(ValueError, match="not both"):
        attacks.explain(model, mistakes, y)
    with pytest.raises(TypeError, match="y is missing"):
        attacks.explain(model, x)
    assert isinstance(engine.QueryCounter(model, 2, x.device).capacity, type(None))


def test_every_file_of_the_attack_package_has_a_row_in_the_table():
    files = {path.stem for path in Path(attacks.__file__).parent.glob("*.py")} - {"__init__"}
    rows = {method.function.__module__.rsplit(".", 1)[1] for method in attacks.METHODS}
    assert files == rows, f"files without a row: {sorted(files - rows)}"


TOY = '''"""A toy white-box method: one step along the gradient of log p(y), for the test."""

from helpers.attacks.iterative import iterative_gradient


def toy(model, x, y, *, step_size=0.5, index=None, max_queries=1):
    result = iterative_gradient(
        model, x, y, norm="l2", step_size=step_size, max_queries=max_queries, index=index
    )
    return result
'''
ROW = (  # one line of the table, under 100 characters
    '    Method("toy", "toy", "white box", toy.toy, "step_size", (0, 1, 0.1), {"step_size": 0.5}),'
    "\n"
)
USE = """
import torch
from helpers import attacks, explorer, records
from tests_tiny import make_batch, make_cnn

model, (x, y) = make_cnn(0), make_batch(0, 6)
result = attacks.explain(model, x, y, "toy")
assert result.method == "iterative_l2" and result.settings["step_size"] == 0.5
wrong = records.Predictions(torch.arange(6), x, y, model(x).detach())
offered = explorer.Explorer(wrong, list("abcd"), model=model).modes["white box"]
assert "toy" in [method.label for method in offered]
print("toy ok")
"""


def test_a_new_white_box_method_is_one_file_and_one_row(tmp_path):
    package = tmp_path / "helpers"
    shutil.copytree(Path(attacks.__file__).parents[1], package)
    (package / "attacks" / "toy.py").write_text(TOY)
    table = package / "attacks" / "__init__.py"
    text = table.read_text()
    text = text.replace(
        "from helpers.attacks import boundary,", "from helpers.attacks import boundary, toy,"
    )
    text = text.replace(
        "METHODS: tuple[Method, ...] = (\n", "METHODS: tuple[Method, ...] = (\n" + ROW
    )
    table.write_text(text)
    assert ROW.count("\n") == 1 and len(ROW) <= 100
    shutil.copy(Path(__file__).parent / "tiny.py", tmp_path / "tests_tiny.py")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-c", USE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "toy ok"
