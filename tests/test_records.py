"""Records join like the tensors they hold."""

import pytest
import torch

from helpers import records


def predictions(rows: list[int]) -> records.Predictions:
    index = torch.tensor(rows)
    x = index.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    logits = torch.nn.functional.one_hot(index % 3, 3).float()
    return records.Predictions(index=index, x=x, y=index % 2, logits=logits)


def test_concatenate_joins_every_tensor_in_order():
    joined = records.concatenate([predictions([4, 5]), predictions([9])])
    assert joined.index.tolist() == [4, 5, 9]
    assert joined.x[:, 0, 0, 0].tolist() == [4.0, 5.0, 9.0]
    assert joined.y.tolist() == [0, 1, 1] and joined.y_pred.tolist() == [1, 2, 0]
    assert isinstance(joined, records.Predictions)


def test_concatenate_refuses_nothing_and_mixed_kinds():
    with pytest.raises(ValueError, match="parts is empty"):
        records.concatenate([])
    mistakes = records.Mistakes(
        **{k: getattr(predictions([1]), k) for k in ("index", "x", "y", "logits")}
    )
    with pytest.raises(TypeError, match="one type"):
        records.concatenate([predictions([0]), mistakes])
