"""Domain codes the queries and the API share (no GraphQL here)."""

#: The DAC gender equality policy marker: vocabulary 1, code 1.
GENDER_VOCABULARY, GENDER_CODE = "1", "1"
#: Significance scores a gender marker may carry; anything else is unreadable.
VALID_SIGNIFICANCE = ("0", "1", "2", "3", "4")

#: The stored gender value of a flow (``flow_classification``, written from the marker
#: crosswalk in fundtrack.accounting) and the number ``genderSignificance`` and the
#: gender dimension give it: the DAC scores. Not screened has no row (null).
GENDER_STORED = {"gender:principal": 2, "gender:significant": 1, "gender:not-targeted": 0}
