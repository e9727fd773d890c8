"""Fitting `answering.CALIBRATION`: a logistic over the top quote's features, from dev questions.

Answerable questions give positives. Negatives come from unanswerable questions and, for questions
with a gold passage, from asking the same question again with the gold passage's whole source
hidden (every article with the same title, e.g. all paragraphs of one Wikipedia page): the
situation "the articles do not cover this", with realistic near-topic distractors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.answer.answering import choose_quotes, score_passages
from bot.indexing.embedding import Embedder
from bot.indexing.versions import Index
from bot.quality.evaluation import EvalQuestion, cached_index, load_questions

FEATURES = ("sentence", "sentence_lexical", "passage_lexical", "answer_type")


def calibration_rows(
    index: Index, embedder: Embedder, questions: Sequence[EvalQuestion], features: Sequence[str] = FEATURES
) -> tuple[np.ndarray, np.ndarray]:
    """Top-quote features and labels (1: the articles answer) for each question, plus hidden-source negatives."""
    titles = np.array([a.title for a in index.articles], dtype=object)
    vectors = embedder.encode([q.question for q in questions])
    rows: list[list[float]] = []
    labels: list[int] = []

    def add(question: EvalQuestion, vector: np.ndarray, mask: np.ndarray | None, label: int) -> None:
        chosen = choose_quotes(score_passages(index, question.question, vector, mask), 1)
        if chosen:
            rows.append([chosen[0].features[name] for name in features])
            labels.append(label)

    for question, vector in zip(questions, vectors, strict=True):
        add(question, vector, None, int(question.answerable))
        gold = index.article_number.get(question.context_id or "")
        if question.answerable and gold is not None:
            hidden = np.flatnonzero(titles != index.articles[gold].title)
            add(question, vector, index.passage_mask(hidden), 0)
    return np.array(rows, dtype=np.float64).reshape(-1, len(features)), np.array(labels, dtype=np.float64)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, l2: float = 1.0, steps: int = 50
) -> tuple[np.ndarray, float]:
    """Coefficients and bias of an L2-regularised logistic regression (Newton's method)."""
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    w = np.ones(n) if weights is None else weights
    beta = np.zeros(d + 1)
    penalty = np.eye(d + 1) * l2
    penalty[d, d] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        gradient = design.T @ (w * (p - y)) + penalty @ beta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:d], float(beta[d])


def fit_calibration(
    sets: Sequence[tuple[Index, Sequence[EvalQuestion], float]], embedder: Embedder, features: Sequence[str] = FEATURES
) -> dict[str, float]:
    """A CALIBRATION dict fitted on (index, questions, weight) sets; features left out get 0."""
    xs, ys, ws = [], [], []
    for index, questions, weight in sets:
        x, y = calibration_rows(index, embedder, questions, features)
        xs.append(x)
        ys.append(y)
        ws.append(np.full(len(y), weight))
    coefficients, bias = fit_logistic(np.vstack(xs), np.concatenate(ys), np.concatenate(ws))
    fitted = {name: 0.0 for name in ("sentence", "passage", "sentence_lexical", "passage_lexical", "answer_type")}
    fitted.update({name: round(float(c), 2) for name, c in zip(features, coefficients, strict=True)})
    fitted["bias"] = round(bias, 2)
    return fitted


def shared_calibration(shared: Path, repo_corpus: Path, embedder: Embedder, cache_dir: Path) -> dict[str, float]:
    """The fit behind `answering.CALIBRATION`, from the sets in `../shared/eval`."""
    squad = shared / "squad-v1.1-dev" / "passages.jsonl"
    squad_questions = load_questions(shared / "squad-v1.1-dev" / "qa.jsonl")[5::50]
    news = load_questions(shared / "stargate-dev.jsonl")
    seed = cached_index([repo_corpus], embedder, cache_dir)
    mixed = cached_index([repo_corpus, squad], embedder, cache_dir)
    # News questions paraphrase more than SQuAD's, and there are few of them: weighted 20x.
    sets = [(cached_index([squad], embedder, cache_dir), squad_questions, 1.0), (seed, news, 20.0), (mixed, news, 20.0)]
    return fit_calibration(sets, embedder)
