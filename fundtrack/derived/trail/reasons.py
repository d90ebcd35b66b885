"""Why money cannot be followed, in sentences people can cite.

The trail stores short reason keys (``attribution.untraced_reason``, a trace's
``not reported spent``); the API returns them as they are, so queries can group by
them. Pages never show a key: :func:`sentence` turns every key into a sentence, in this
one place. A key with no sentence here is a bug (``tests/test_trace_explained.py``
checks every key the trail can produce).
"""

from __future__ import annotations

from fundtrack.derived.trail.attribution import BROKEN, NO_INCOMING, UNNAMED
from fundtrack.derived.trail.engine import CIRCULAR, EXCESS, NEGATIVE, NO_RATE

#: Money an account received and has not reported spending or passing on (downstream).
HELD = "not reported spent"

#: reason key -> sentence; ``{org}`` is the organisation's name where the trace knows it.
SENTENCES: dict[str, str] = {
    HELD: "{org} received this money and has not reported spending it or passing it on.",
    BROKEN: "The money left an activity that is named in a report but that nobody has "
            "published, so where it came from is unknown.",
    NO_INCOMING: "{org} spent this money, but nobody reports giving it this money "
                 "(a pooled fund or a funded activity whose donors do not report).",
    EXCESS: "{org} reports paying out more than it reports receiving; the excess has no "
            "known source.",
    NO_RATE: "A payment is in a currency with no exchange rate for its date, so it could "
             "not be weighed against payments in other currencies.",
    UNNAMED: "The report of receiving this money does not say who gave it.",
    CIRCULAR: "The money came back round a circle of payments before its source was known.",
    NEGATIVE: "Corrections (negative amounts: refunds or reversals of earlier payments) "
              "are not attributed to a donor.",
}
SOMEONE = "An organisation"


def sentence(reason: str | None, org: str | None = None) -> str:
    """The sentence for a reason key, naming ``org`` (a display name) where it fits."""
    template = SENTENCES.get(reason or "")
    if template is None:  # never shown raw: say what we know
        return f"Cannot be followed further ({reason or 'no reason recorded'})."
    return template.format(org=org or SOMEONE)
