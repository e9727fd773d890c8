"""The dense index over passage vectors: FAISS, exact or IVF. The only module importing FAISS.

Built by `build_faiss`, written beside the other files of a version, loaded memory-mapped and
searched (optionally within a set of allowed passages) by the version's `Index`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

# Above this many passages exact search gives way to an inverted-file index (IVF): at 1M
# passages exact search costs 70-400 ms a query here (with the load), IVF ~0.7 ms at recall@10
# 0.977 (`make bench`). IVF with a flat quantizer was chosen by measurement: HNSW as IVF's
# quantizer (default efSearch) capped recall at ~0.77; HNSW as the whole index was not built at
# 1M here, as its graph (~256 bytes a vector at M=32) stays in RAM and cannot be memory-mapped.
APPROXIMATE_ABOVE = 200_000
IVF_LISTS_PER_SQRT = 4  # lists ~ 4·sqrt(n), a power of two: 4096 at 1M passages
IVF_TRAIN_PER_LIST = 40  # k-means sample: 40 vectors a list (FAISS wants >= 39)
IVF_TRAIN_ITERATIONS = 10
IVF_NPROBE = 32  # lists searched per query


def ivf_lists(n: int) -> int:
    """How many IVF lists for `n` vectors: ~4·sqrt(n) rounded to a power of two, at most n/40."""
    target = int(2 ** round(math.log2(max(1.0, IVF_LISTS_PER_SQRT * math.sqrt(n)))))
    return max(1, min(target, n // IVF_TRAIN_PER_LIST))


def build_faiss(vectors: np.ndarray, approximate_above: int = APPROXIMATE_ABOVE) -> Any:
    """An exact inner-product index, or IVF once there are more than `approximate_above` vectors."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dimension = vectors.shape
    index: Any
    if count > approximate_above and count >= IVF_TRAIN_PER_LIST:
        lists = ivf_lists(count)
        index = faiss.index_factory(dimension, f"IVF{lists},Flat", faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = IVF_TRAIN_ITERATIONS
        ivf.cp.seed = 1234
        sample_size = min(count, lists * IVF_TRAIN_PER_LIST)
        sample = vectors[np.sort(np.random.default_rng(0).choice(count, sample_size, replace=False))]
        index.train(sample)
        ivf.nprobe = IVF_NPROBE
    else:
        index = faiss.IndexFlatIP(dimension)
    if count:
        index.add(vectors)
    return index


def write_faiss(index: Any, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_faiss(path: Path) -> Any:
    """Memory-mapped, not copied: the vectors stay in the page cache, shared by every server
    process on the machine, and a 1M-passage index costs no resident memory until searched."""
    import faiss

    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = IVF_NPROBE
    return index


def search_faiss(index: Any, query: np.ndarray, n: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Top-`n` ids and scores for one query row, only among `allowed` ids when given."""
    import faiss

    faiss_any: Any = faiss  # the SWIG bindings' stubs lack the search-parameter classes
    params = None
    if allowed is not None:
        selector = faiss.IDSelectorBatch(allowed)
        if isinstance(index, faiss.IndexIVF):
            params = faiss_any.SearchParametersIVF(sel=selector, nprobe=IVF_NPROBE)
        else:
            params = faiss_any.SearchParameters(sel=selector)
    scores, ids = index.search(query, n, params=params)
    keep = ids[0] >= 0
    return ids[0][keep].astype(np.int64), scores[0][keep]
