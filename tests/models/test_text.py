import re

import pytest

from qasic.errors import ConfigError
from qasic.models import text


def test_module_list_is_sorted_and_every_module_has_a_source_file():
    assert list(text.STDLIB_MODULES) == sorted(set(text.STDLIB_MODULES))
    assert all(text.source_file(m).suffix == ".py" for m in text.STDLIB_MODULES)


def test_docstrings_come_from_source_in_order_and_cleaned():
    docs = text.docstrings("bisect")
    assert docs[0] == "Bisection algorithms."
    assert docs[1].startswith("Insert item x in list a, and keep it sorted")
    assert all(d == d.strip() and not d.startswith(" ") for d in docs)


def test_splits_are_disjoint_by_module_and_large_enough():
    sizes = {s: len(text.corpus(s)) for s in text.SPLITS}
    assert sizes["train"] > 500_000 and sizes["validation"] > 50_000 and sizes["test"] > 50_000
    owners = {m: text.split_of(m) for m in text.STDLIB_MODULES}
    assert set(owners.values()) == set(text.SPLITS)
    assert text.corpus("test") == text.corpus("test")
    assert text.corpus("test") == "\n\n".join(text.documents("test"))
    train_docs = set(text.documents("train"))
    assert not any(d in train_docs for d in text.documents("test") + text.documents("validation"))


def test_unknown_split_names_the_known_ones():
    with pytest.raises(ConfigError, match="corpus split 'dev' does not exist; use one of train, "
                                          "validation, test"):
        text.corpus("dev")


def test_sentences_are_clean_distinct_and_deterministic():
    pool = text.sentence_pool()
    assert len(pool) >= 2000 and len(set(pool)) == len(pool) and list(pool) == sorted(pool)
    s = text.sentences(300)
    assert s == text.sentences(300) and len(set(s)) == 300
    assert all(5 <= len(x.split()) <= 40 and x[0].isupper() and x[-1] in ".!?" for x in s)
    assert not any(re.search(r">>>|``|::|=|\w\.\w", x) for x in s)
    assert text.sentences(10) == s[:10]  # a prefix: growing n keeps the earlier sentences


def test_seed_picks_another_selection_from_the_same_pool():
    a, b = text.sentences(256, seed=0), text.sentences(256, seed=1)
    assert a != b and set(a) | set(b) <= set(text.sentence_pool())


@pytest.mark.parametrize("n", [0, 10**6])
def test_impossible_sentence_counts_are_refused(n):
    with pytest.raises(ConfigError, match=f"asked for {n} sentences; the stdlib corpus has 1 to "):
        text.sentences(n)


def test_is_clean_rejects_code_and_fragments():
    assert text.is_clean("Return the number of items in the queue.")
    assert not text.is_clean("Return x.")                       # too short
    assert not text.is_clean("Call f(x) = y + 1 with the value.")  # code
    assert not text.is_clean("return the number of items in it.")  # no capital
