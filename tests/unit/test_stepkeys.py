"""State names in step keys (orchestrator/language/stepkeys.py): escape, unescape, and
the keys the interpreter forms and reads back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.language.interpreter import ancestors, state_name
from orchestrator.language.stepkeys import display_key, escape_name, unescape_name

#: State names: any text, rich in the characters step keys use and the escape's own.
NAMES = st.text(alphabet=st.sampled_from("ab /[]|%25FBDC7") | st.characters(), max_size=80)


@given(NAMES)
def test_unescape_inverts_escape(name: str) -> None:
    assert unescape_name(escape_name(name)) == name


@given(NAMES)
def test_an_escaped_name_holds_no_separator(name: str) -> None:
    escaped = escape_name(name)
    assert not set(escaped) & set("/[]|")
    # The escape is injective: two names never share an escape.
    assert escape_name(unescape_name(escaped)) == escaped


@given(NAMES, NAMES)
def test_escaped_names_of_different_names_differ(a: str, b: str) -> None:
    assert (escape_name(a) == escape_name(b)) == (a == b)


@given(NAMES, st.integers(0, 10_000), NAMES, st.integers(0, 3), NAMES)
def test_nested_keys_split_back_into_their_names(
    outer: str, item: int, middle: str, branch: int, inner: str
) -> None:
    key = f"{escape_name(outer)}[{item}]/{escape_name(middle)}[{branch}]/{escape_name(inner)}"
    assert state_name(key) == inner
    assert ancestors(key) == [
        escape_name(outer),
        f"{escape_name(outer)}[{item}]/{escape_name(middle)}",
    ]
    assert key.count("/") == 2 and key.count("[") == 2 and "|" not in key


def test_plain_names_are_their_own_escape_and_examples() -> None:
    assert escape_name("Charge card") == "Charge card"
    assert escape_name("Parallel w/ UUID") == "Parallel w%2F UUID"
    assert escape_name("Create/Update VideoContentCatalog") == (
        "Create%2FUpdate VideoContentCatalog"
    )
    assert escape_name("a[1]|b%") == "a%5B1%5D%7Cb%25"
    assert unescape_name("100%25") == "100%"
    assert display_key("Parallel w%2F UUID[0]/In%5B1%5D") == "Parallel w/ UUID[0]/In[1]"
