"""Tables of organisation identity (issue 15): canonical organisations, their identifiers
and names, how each reported party was resolved, what waits for review, and the decisions
people took.

``org_decision`` is kept by people (it is the only table here that a rebuild never
empties); every other table is derived: :func:`fundtrack.identity.resolve.rebuild`
computes it from the seeds (``fundtrack/data/identity/*.toml``, the CRSChannelCode
codelist), the organisation registry, the current ledger's parties and the decisions.
What a report said (ref, name, type) stays on the ledger rows, untouched.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fundtrack.db.base import Base, BigId


class CanonicalOrg(Base):
    """One organisation, however reports name it.

    ``ref`` is its display key: a seed's chosen reference (``FT-FUND-PBF``), else the
    first reported reference that created it, else ``name:<normalised name>`` for a body
    only ever named. Filters (``provider.ref``) match ``ref`` *or any identifier* in
    :class:`OrgIdentifier`.
    """

    __tablename__ = "canonical_org"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(10))
    country: Mapped[str | None] = mapped_column(String(10))
    #: seed | registry | reported | decision
    origin: Mapped[str] = mapped_column(String(16))
    #: Where a seeded organisation's facts come from (a URL or a file of shared/data).
    source: Mapped[str | None] = mapped_column(Text)
    is_pooled_fund: Mapped[bool] = mapped_column(Boolean, default=False)
    is_womens_rights_org: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Set when a decision merged this organisation into another: every party that would
    #: resolve here resolves to that one (followed to the end of the chain).
    merged_into_id: Mapped[int | None] = mapped_column(BigInteger)


class OrgIdentifier(Base):
    """A code that denotes a canonical organisation in some scheme.

    ``value`` is the string as reports carry it (``XM-DAC-41141``, ``11363``,
    ``FTS-ORG-4762``). ``scheme``: iati-org | crs-channel | dac-donor | fts-org |
    agency-code | 360giving | fundtrack. ``requires_name``: the code is known to be put on
    other bodies too (``XM-DAC-41141`` on other MPTF trust funds; UNDP's internal donor
    codes), so it identifies the organisation only with a reported name that agrees (or
    no name at all): rule ``identifier+name``.
    """

    __tablename__ = "org_identifier"
    __table_args__ = (Index("ix_org_identifier_value", "value", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("canonical_org.id", ondelete="CASCADE"),
                                        index=True)
    scheme: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(200))
    requires_name: Mapped[bool] = mapped_column(Boolean, default=False)
    #: seed | codelist | registry | reported | decision
    origin: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text)


class OrgName(Base):
    """A name of a canonical organisation (seeded, from a codelist, or seen in reports),
    with its normalised form (:func:`fundtrack.identity.names.normalise`)."""

    __tablename__ = "org_name"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("canonical_org.id", ondelete="CASCADE"),
                                        index=True)
    name: Mapped[str] = mapped_column(Text)
    normalised: Mapped[str] = mapped_column(String(300), index=True)
    lang: Mapped[str | None] = mapped_column(String(10))
    origin: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text)


class PartyResolution(Base):
    """How one reported party (ref, name, type as reported) was resolved: to which
    canonical organisation, by which rule, on what evidence.

    Rules, in the order tried (docs/methodology.md): ``decision``, ``identifier``,
    ``identifier+name``, ``name``, ``new`` (nothing matched: the party is an organisation
    of its own). ``ambiguous`` parties also become their own organisation and have
    :class:`MatchCandidate` rows.
    """

    __tablename__ = "party_resolution"
    __table_args__ = (Index("ix_party_resolution_key", "ref", "name_key"),
                      Index("ix_party_resolution_match_name", "match_name"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: The reported ref, '' when none.
    ref: Mapped[str] = mapped_column(String(200))
    #: The reported name as reported (cut to 300 characters), '' when none.
    name_key: Mapped[str] = mapped_column(String(300))
    reported_type: Mapped[str | None] = mapped_column(String(10))
    #: The normalised name the name rule compares (:func:`fundtrack.identity.resolve.
    #: match_name`: of the name, or of the ref when the ref is really a name), '' when
    #: none: an import's update finds the parties a new name may move by this index.
    match_name: Mapped[str] = mapped_column(String(300), default="", server_default="")
    org_id: Mapped[int] = mapped_column(ForeignKey("canonical_org.id", ondelete="CASCADE"),
                                        index=True)
    rule: Mapped[str] = mapped_column(String(24))
    evidence: Mapped[str] = mapped_column(Text)


class FlowParty(Base):
    """The canonical provider, receiver and reporter of each flow (ids of
    :class:`CanonicalOrg`): what filters, ``groupBy`` and the money trail read."""

    __tablename__ = "flow_party"

    flow_id: Mapped[int] = mapped_column(ForeignKey("flow.id", ondelete="CASCADE"),
                                         primary_key=True, autoincrement=False)
    provider_org_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    receiver_org_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reporter_org_id: Mapped[int | None] = mapped_column(BigInteger, index=True)


class MatchCandidate(Base):
    """A match the rules would not make alone (several organisations fit a name): it
    waits for a person's decision and is never merged silently."""

    __tablename__ = "match_candidate"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    party_ref: Mapped[str] = mapped_column(String(200))
    party_name: Mapped[str] = mapped_column(String(300))
    #: The organisation the party was left as (its own).
    org_id: Mapped[int] = mapped_column(ForeignKey("canonical_org.id", ondelete="CASCADE"),
                                        index=True)
    candidate_org_id: Mapped[int] = mapped_column(
        ForeignKey("canonical_org.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(24))
    evidence: Mapped[str] = mapped_column(Text)


class OrgDecision(Base):
    """A decision a person took about identity; the resolver applies it FIRST, before any
    rule, on every rebuild, so it survives re-imports and ``recompute``.

    ``action`` and its fields:

    - ``merge``: the organisation ``subject`` (any ref, identifier value, or
      ``name:<reported name>``) is the organisation ``target``: everything resolving to
      the subject resolves to the target (rule ``decision``).
    - ``split``: the identifier or name ``subject`` does not denote the organisation it
      would match (``target``, optional: only there); parties carrying it become an
      organisation of their own.
    - ``set_type``: ``value`` is the organisation type code of ``subject``.
    - ``flag_pooled_fund`` / ``flag_wro``: ``value`` 'true' or 'false'.

    A decision is undone by setting ``reverted_at``/``reverted_by`` (the row stays, for
    the record); the resolver ignores reverted rows, and a rebuild then gives exactly the
    answers from before the decision.
    """

    __tablename__ = "org_decision"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    action: Mapped[str] = mapped_column(String(24))
    subject: Mapped[str] = mapped_column(String(300))
    target: Mapped[str | None] = mapped_column(String(300))
    value: Mapped[str | None] = mapped_column(String(200))
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    #: Where the decision came from: api | cli | file:<path>
    via: Mapped[str | None] = mapped_column(String(300))
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reverted_by: Mapped[str | None] = mapped_column(String(200))
