"""The reader's training pairs, built from a made-up RealTime QA snapshot and made-up SQuAD files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bot.errors import BotError
from bot.quality import reader_data, reader_news, reader_squad, span_data
from bot.quality.reader_text import Pair, Parts, holds, pattern, raw_span

FILLER = (
    "The harbour of Lumeria Bay was quiet that morning. Fishermen mended their nets beside the old pier. "
    "Tourists bought postcards from a kiosk near the ferry terminal. The local bakery sold out of rye bread. "
    "A brass band rehearsed in the square behind the town hall. Children chased gulls along the promenade. "
    "Rain was forecast for the afternoon, according to the weather office. "
    "A cyclist fixed a puncture outside the library. The ferry to the islands left ten minutes late. "
)


def article(url: str, *sentences: str, date: str = "2023/03/08") -> dict[str, object]:
    """A made-up search result: the given sentences, then enough filler to pass the 80-word floor."""
    return {"url": url, "title": "A made-up story", "text": " ".join(sentences) + "\n\n" + FILLER, "publish_date": date}


def question(qid: str, text: str, choices: list[str], answer: int, evidence: str, day: str) -> dict[str, object]:
    return {
        "question_id": qid,
        "question_date": day,
        "question_sentence": text,
        "choices": choices,
        "answer": [str(answer)],
        "evidence": evidence,
    }


SUMMIT = question(
    "20230310_0",
    "Which city will host the Zorblax summit this week?",
    ["Vantoria", "Castelfane", "Orvik", "Lumeria"],
    0,
    'The <a href="https://example.com/x">Zorblax summit</a> opens in Vantoria on Thursday.',
    "2023/03/09",
)
SUMMIT_ARTICLE = article(
    "https://example.com/summit",
    "The Zorblax summit will be hosted in Vantoria this week, its organisers said.",
    "Vantoria's weather was mild on Tuesday.",
    "Castelfane sent a delegation of potato farmers.",
    "Nomadland trees grow along the river.",
)
TRUE_FALSE = question(
    "20230310_1",
    "True or false: Quintrel Corporation opened a second factory.",
    ["TRUE", "FALSE"],
    0,
    "Quintrel Corporation opened a second factory.",
    "2023/03/09",
)
LATER = question(
    "20240105_0",
    "Which company bought the Orvik ferry line?",
    ["Quintrel Corporation", "Zorblax Industries", "Marrowby Ltd", "Fenwick Group"],
    0,
    "",
    "2024-01-04",
)
LATER_ARTICLE = article(
    "https://example.com/ferry",
    "Quintrel Corporation bought the Orvik ferry line for an undisclosed sum.",
    date="2024/01/03",
)
# Off limits: the dev weeks (January-February 2023), 2022, and latest/.
DEV = question("20230113_0", "Which river flooded Marrowby?", ["Orvik", "Lumer"], 0, "The Orvik flooded.", "2023/01/12")
OLD = question("20221007_0", "Which bridge reopened in Fenwick?", ["Tallow Bridge", "X"], 0, "", "2022/10/06")
LATEST = question("20260717_0", "Which museum closed in Castelfane?", ["Glass Museum", "X"], 0, "", "2026/07/16")
DEV_ARTICLE = article("https://example.com/flood", "The Orvik river flooded Marrowby on Monday.", date="2023/01/10")
OLD_ARTICLE = article("https://example.com/bridge", "Tallow Bridge reopened in Fenwick.", date="2022/10/05")


def jsonl(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def gcs(qid: str, *results: dict[str, object]) -> dict[str, object]:
    return {"question_id": qid, "search_time": "x", "search_result": list(results)}


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[Path, str]:
    """A git repository laid out like realtimeqa_public, with one commit; returns (git dir, commit)."""
    work = tmp_path / "rtqa"
    files = {
        "past/2022/20221007_qa.jsonl": jsonl([OLD]),
        "past/2022/20221007_gcs.jsonl": jsonl([gcs("20221007_0", OLD_ARTICLE)]),
        "past/2023/20230113_qa.jsonl": jsonl([DEV]),
        "past/2023/20230113_gcs.jsonl": jsonl([gcs("20230113_0", DEV_ARTICLE)]),
        # A March question whose search also found the dev set's article: that article stays out.
        "past/2023/20230310_qa.jsonl": jsonl([SUMMIT, TRUE_FALSE]),
        "past/2023/20230310_gcs.jsonl": jsonl(
            [gcs("20230310_0", SUMMIT_ARTICLE, DEV_ARTICLE), gcs("20230310_1", SUMMIT_ARTICLE)]
        ),
        "past/2024/20240105_qa.jsonl": jsonl([LATER]),
        "past/2024/20240105_gcs.jsonl": jsonl([gcs("20240105_0", LATER_ARTICLE)]),
        "latest/20260717_qa_public.jsonl": jsonl([LATEST]),
        "latest/20260717_gcs.jsonl": jsonl([gcs("20260717_0", OLD_ARTICLE)]),
    }
    for name, body in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(body, encoding="utf-8")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "made-up weeks")
    return work / ".git", git("rev-parse", "HEAD")


def news(snapshot: tuple[Path, str]) -> list[Pair]:
    parts = Parts()
    return list(reader_news.news_pairs(reader_news.Snapshot(*snapshot), 0, parts))


def test_the_sentence_stating_the_answer_is_a_positive(snapshot: tuple[Path, str]) -> None:
    pairs = [p for p in news(snapshot) if p.group == "20230310_0"]
    positives = {p.sentence for p in pairs if p.label == 1}
    assert positives == {
        "The Zorblax summit will be hosted in Vantoria this week, its organisers said.",
        "The Zorblax summit opens in Vantoria on Thursday.",  # the evidence's sentence, tags stripped
    }
    assert all(p.question == SUMMIT["question_sentence"] for p in pairs)


def test_a_chance_mention_of_the_answer_is_a_hard_negative(snapshot: tuple[Path, str]) -> None:
    kinds = {p.sentence: (p.label, p.kind) for p in news(snapshot) if p.group == "20230310_0"}
    assert kinds["Vantoria's weather was mild on Tuesday."] == (0, "chance")
    assert kinds["Castelfane sent a delegation of potato farmers."] == (0, "choice")
    assert kinds["The harbour of Lumeria Bay was quiet that morning."] == (0, "choice")  # a wrong choice named
    filler = {kind for sentence, kind in kinds.items() if sentence in FILLER}
    assert {label for label, _ in filler} == {0} and (0, "article") in filler


def test_off_limits_weeks_and_their_articles_never_give_pairs(snapshot: tuple[Path, str]) -> None:
    pairs = news(snapshot)
    assert {p.group for p in pairs} == {"20230310_0", "20240105_0"}
    texts = " ".join(p.question + " " + p.sentence for p in pairs)
    for absent in ("Marrowby", "Tallow Bridge", "Glass Museum"):
        assert absent not in texts


def test_true_or_false_questions_are_left_out(snapshot: tuple[Path, str]) -> None:
    assert not [p for p in news(snapshot) if p.group == "20230310_1"]
    assert reader_news.answer_of(TRUE_FALSE) is None


@pytest.mark.parametrize(
    ("haystack", "needle", "expected"),
    [
        ("Nomadland won the prize.", "Noma", False),
        ("Noma reopened in Copenhagen.", "Noma", True),
        ("It costs US$5 billion, officials said.", "$5 billion", True),
        ("The “Little Mermaid” trailer", '"Little Mermaid"', True),
        ("Rain   fell on  Vantoria", "rain fell on vantoria", True),
        ("pineapple juice", "Apple", False),
    ],
)
def test_an_answer_is_found_only_as_whole_words(haystack: str, needle: str, expected: bool) -> None:
    assert holds(haystack, needle) is expected


@pytest.mark.parametrize(
    ("text", "needle", "marked"),
    [
        ("It costs US$5 billion, officials said.", "$5 billion", "$5 billion"),
        ("The “Little Mermaid” trailer", '"Little Mermaid"', "“Little Mermaid”"),
        ("  Rain   fell on\n Vantoria ", "rain fell on vantoria", "Rain   fell on\n Vantoria"),
        ("Die Straße nach ORVIK führt", "orvik", "ORVIK"),  # "ß" normalises to two characters
        ("pineapple juice", "Apple", None),
    ],
)
def test_an_answer_is_found_at_its_offsets_in_the_text_itself(text: str, needle: str, marked: str | None) -> None:
    found = pattern(needle)
    assert found is not None
    span = raw_span(text, found)
    assert (text[span[0] : span[1]] if span else None) == marked


def test_news_answering_sentences_teach_the_span_head_where_the_answer_is(snapshot: tuple[Path, str]) -> None:
    parts = Parts()
    examples = span_data.news_span_examples(reader_news.Snapshot(*snapshot), 0, parts)
    marked = {(e.question, e.text[e.start : e.end]) for e in examples if e.start is not None and e.end is not None}
    assert {e.text for e in examples} == {
        "The Zorblax summit will be hosted in Vantoria this week, its organisers said.",
        "The Zorblax summit opens in Vantoria on Thursday.",
        "Quintrel Corporation bought the Orvik ferry line for an undisclosed sum.",
    }
    assert marked == {
        (str(SUMMIT["question_sentence"]), "Vantoria"),
        (str(LATER["question_sentence"]), "Quintrel Corporation"),
    }
    assert parts.counts["news answering sentences"] == 3


@pytest.mark.parametrize(
    ("path", "training"),
    [
        ("past/2023/20230303_qa.jsonl", True),
        ("past/2023/20230224_qa.jsonl", False),
        ("past/2022/20221230_qa.jsonl", False),
        ("past/2026/20260710_qa.jsonl", True),
        ("latest/20260717_qa.jsonl", False),
    ],
)
def test_only_march_2023_on_are_training_weeks(path: str, training: bool) -> None:
    assert reader_news.is_training_week(path) is training


@pytest.mark.parametrize(
    ("page", "split"),
    [("Vantoria", "train"), ("Zorblax_Industries", "train"), ("Quintrel_Corporation", "held-out")],
)
def test_the_squad_split_rule_is_stable(page: str, split: str) -> None:
    assert reader_squad.split_of(page) == split


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A made-up shared eval folder: a train page, a held-out page, and a v2 unanswerable question."""
    root = tmp_path / "shared"
    train_text = "Vantoria lies on the Orvik river. Its mayor is Ada Lumen. The city hosts a kettle fair."
    other_text = "Vantoria has two bridges. The older one is made of stone."
    held_text = "Quintrel Corporation makes widgets. It was founded by Bo Fenn."
    passages: list[dict[str, object]] = [
        {"id": "p0", "title": "Vantoria", "text": train_text, "article": "Vantoria", "paragraph_index": 0},
        {"id": "p1", "title": "Vantoria", "text": other_text, "article": "Vantoria", "paragraph_index": 1},
        {"id": "p2", "title": "Quintrel", "text": held_text, "article": "Quintrel_Corporation", "paragraph_index": 0},
    ]
    qa: list[dict[str, object]] = [
        {
            "id": "q0",
            "question": "Who is the mayor of Vantoria?",
            "answers": ["Ada Lumen"],
            "context_id": "p0",
            "answer_starts": [{"start": train_text.index("Ada Lumen"), "text": "Ada Lumen"}],
        },
        {
            "id": "q1",
            "question": "Who founded Quintrel Corporation?",
            "answers": ["Bo Fenn"],
            "context_id": "p2",
            "answer_starts": [{"start": held_text.index("Bo Fenn"), "text": "Bo Fenn"}],
        },
    ]
    v2: list[dict[str, object]] = [
        {
            "id": "u0",
            "question": "Who is the mayor of Orvik?",
            "answers": [],
            "context_id": "p0",
            "is_impossible": True,
            "answer_starts": [],
            "plausible_answers": ["Ada Lumen"],
        }
    ]
    files: list[tuple[Path, dict[str, list[dict[str, object]]]]] = [
        (reader_squad.V1, {"passages": passages, "qa": qa}),
        (reader_squad.V2, {"qa": v2}),
    ]
    for folder, rows in files:
        (root / folder).mkdir(parents=True)
        for name, body in rows.items():
            (root / folder / f"{name}.jsonl").write_text(jsonl(body), encoding="utf-8")
    return root


def test_squad_pairs_come_from_train_pages_only(shared: Path) -> None:
    pairs = list(reader_squad.squad_pairs(shared, 0, Parts()))
    assert {p.group for p in pairs} == {"q0", "u0"}
    labelled = {(p.group, p.sentence): (p.label, p.kind) for p in pairs}
    assert labelled[("q0", "Its mayor is Ada Lumen.")] == (1, "positive")
    assert labelled[("q0", "Vantoria lies on the Orvik river.")] == (0, "paragraph")
    assert sum(kind == "page" for _, kind in labelled.values()) == 2  # both units of the page's other paragraph
    unanswerable = [p for p in pairs if p.group == "u0"]
    assert len(unanswerable) == 3 and all(p.label == 0 for p in unanswerable)


def test_held_out_questions_are_the_other_half(shared: Path) -> None:
    questions, pages = reader_squad.held_out(shared)
    assert [q.id for q in questions] == ["q1"] and questions[0].gold == {1}
    assert set(pages) == {"Quintrel_Corporation"}


def test_a_build_is_the_same_bytes_for_the_same_seed(snapshot: tuple[Path, str], shared: Path, tmp_path: Path) -> None:
    first = reader_data.build(snapshot[0], shared, tmp_path / "a", seed=3, commit=snapshot[1])
    second = reader_data.build(snapshot[0], shared, tmp_path / "b", seed=3, commit=snapshot[1])
    assert (tmp_path / "a" / "pairs.jsonl").read_bytes() == (tmp_path / "b" / "pairs.jsonl").read_bytes()
    assert first["pairs_sha256"] == second["pairs_sha256"]
    assert {f["path"] for f in first["files"] if f["role"] == "excluded"} >= {"past/2023/20230113_gcs.jsonl"}
    assert all(len(f["sha256"]) == 64 for f in first["files"])
    assert first["rules"]["squad_split"] == reader_squad.SPLIT_RULE
    pairs, _ = reader_data.load(tmp_path / "a")
    assert len(pairs) == first["mix"]["pairs"]


def test_a_changed_pairs_file_is_refused(snapshot: tuple[Path, str], tmp_path: Path) -> None:
    reader_data.build(snapshot[0], None, tmp_path / "a", commit=snapshot[1])
    with (tmp_path / "a" / "pairs.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{}\n")
    with pytest.raises(BotError, match="does not match its manifest"):
        reader_data.load(tmp_path / "a")


def test_a_cut_keeps_whole_questions(snapshot: tuple[Path, str], shared: Path, tmp_path: Path) -> None:
    full = reader_data.build(snapshot[0], shared, tmp_path / "a", commit=snapshot[1])
    cut = reader_data.build(snapshot[0], shared, tmp_path / "b", max_pairs=full["mix"]["pairs"] - 1, commit=snapshot[1])
    assert cut["mix"]["pairs"] < full["mix"]["pairs"]
    pairs, _ = reader_data.load(tmp_path / "b")
    everything, _ = reader_data.load(tmp_path / "a")
    for group in {p.group for p in pairs}:
        assert [p for p in pairs if p.group == group] == [p for p in everything if p.group == group]
