"""The provider's model behind an HTTP API (docs/serving.md): 8-bit PNG images in, labels,
top-k labels or top-k probabilities out per API key's plan, with quotas, a request rate, a
price, and usage kept in SQLite.

    with serving.serve(model) as api:            # a background thread on 127.0.0.1
        print(api.url, api.keys)

or ``python -m helpers.serving --checkpoint artifacts/cnn_mnist.pt``. Modules: ``protocol``
(what server and client share), ``plans``, ``codec`` (8-bit PNG), ``store`` (SQLite),
``limits``, ``predict``, ``service`` (the rules), ``app`` (HTTP), ``server`` (running it).
"""

from helpers.serving.codec import quantize
from helpers.serving.plans import PLANS, Plan, load_keys, new_keys, save_keys
from helpers.serving.server import Api, serve

__all__ = ["Api", "PLANS", "Plan", "load_keys", "new_keys", "quantize", "save_keys", "serve"]
