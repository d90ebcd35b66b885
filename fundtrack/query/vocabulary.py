"""Domain codes the queries and the API share (no GraphQL here)."""

#: The DAC gender equality policy marker: vocabulary 1, code 1.
GENDER_VOCABULARY, GENDER_CODE = "1", "1"
#: Significance scores a gender marker may carry; anything else is unreadable.
VALID_SIGNIFICANCE = ("0", "1", "2", "3", "4")
