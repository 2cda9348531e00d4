"""Corpus cases the engine cannot pass yet: known gaps, each naming the missing feature.

Every case of the corpus passes today, so the list is empty. A case may only be added
with a reason that names the missing feature; failures that are bugs (wrong texts, missing
validation, wrong values) are never listed here: they fail the test.
"""

SKIPS: dict[str, str] = {}
