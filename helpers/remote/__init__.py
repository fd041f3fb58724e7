"""The end user's side of the provider's API (helpers.serving, docs/serving.md):
``RemoteBlackBox(url, key)`` has ``blackbox.BlackBox``'s interface over HTTP, with retries,
batching to the API's limit, 8-bit PNG images (``quantize``) and a journal of every answer.
Modules: ``box`` (the black box), ``transport`` (HTTP and retries), ``journal`` (SQLite)."""

from helpers.remote.box import RemoteBlackBox, TopK, spread
from helpers.remote.transport import RemoteError
from helpers.serving.codec import quantize

__all__ = ["RemoteBlackBox", "RemoteError", "TopK", "quantize", "spread"]
