"""The hand-built scenario as small IATI files: two donors (one earmarks), a pooled fund,
three projects at two agencies, sub-grants to two NGOs, expenditure."""

from __future__ import annotations

from pathlib import Path

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<iati-activities version="2.03">\n'


def tx(kind: int, amount: str, day: str, *, provider: str | None = None,
       provider_act: str | None = None, receiver: str | None = None,
       receiver_act: str | None = None, country: str | None = None,
       earmark: str | None = None) -> str:
    parts = [f'<transaction><transaction-type code="{kind}"/>',
             f'<transaction-date iso-date="{day}"/>',
             f'<value currency="USD" value-date="{day}">{amount}</value>']
    if provider:
        pa = f' provider-activity-id="{provider_act}"' if provider_act else ""
        parts.append(f'<provider-org ref="{provider}"{pa}/>')
    if receiver:
        ra = f' receiver-activity-id="{receiver_act}"' if receiver_act else ""
        parts.append(f'<receiver-org ref="{receiver}"{ra}/>')
    if country:
        parts.append(f'<recipient-country code="{country}"/>')
    if earmark:
        parts.append(f'<aid-type code="{earmark}" vocabulary="2"/>')
    parts.append("</transaction>")
    return "".join(parts)


def activity(org: str, ident: str, txs: list[str], org_type: str = "10") -> str:
    return (f'<iati-activity default-currency="USD"><iati-identifier>{ident}</iati-identifier>'
            f'<reporting-org ref="{org}" type="{org_type}"><narrative>{org}</narrative>'
            f'</reporting-org><title><narrative>{ident}</narrative></title>'
            f'<activity-status code="2"/>' + "".join(txs) + "</iati-activity>")


def files() -> dict[str, str]:
    d1, d2, fund = "XX-DONOR-1", "XX-DONOR-2", "XX-FUND"
    ag1, ag2, n1, n2 = "XX-AGENCY-1", "XX-AGENCY-2", "XX-NGO-1", "XX-NGO-2"
    out = {
        "donor1.xml": activity(d1, "XX-DONOR-1-A", [
            tx(3, "600000.00", "2023-02-01", receiver=fund, receiver_act="XX-FUND-1")]),
        "donor2.xml": activity(d2, "XX-DONOR-2-A", [
            tx(3, "250000.00", "2023-03-01", receiver=fund, receiver_act="XX-FUND-1",
               country="ML", earmark="3"),
            tx(3, "150000.00", "2023-03-02", receiver=fund, receiver_act="XX-FUND-1")]),
        "fund.xml": activity(fund, "XX-FUND-1", [
            tx(1, "600000.00", "2023-02-03", provider=d1, provider_act="XX-DONOR-1-A"),
            tx(1, "250000.00", "2023-03-04", provider=d2, provider_act="XX-DONOR-2-A"),
            tx(1, "150000.00", "2023-03-05", provider=d2, provider_act="XX-DONOR-2-A"),
            tx(3, "300000.00", "2023-04-01", receiver=ag1, receiver_act="XX-AG1-P1", country="ML"),
            tx(3, "500000.00", "2023-04-15", receiver=ag2, receiver_act="XX-AG2-P2", country="SN"),
            tx(3, "199999.99", "2023-05-01", receiver=ag1, receiver_act="XX-AG1-P3", country="ML"),
        ], org_type="40"),
        "agency1.xml": (activity(ag1, "XX-AG1-P1", [
            tx(1, "300000.00", "2023-04-03", provider=fund, provider_act="XX-FUND-1"),
            tx(3, "100000.00", "2023-06-01", receiver=n1, receiver_act="XX-NGO1-N1"),
            tx(4, "200000.00", "2023-07-01", receiver="XX-SUPPLIER")], org_type="40")
            + activity(ag1, "XX-AG1-P3", [
                tx(1, "199999.99", "2023-05-02", provider=fund, provider_act="XX-FUND-1"),
                tx(4, "199999.99", "2023-08-01")], org_type="40")),
        "agency2.xml": activity(ag2, "XX-AG2-P2", [
            tx(3, "250000.00", "2023-06-10", receiver=n2, receiver_act="XX-NGO2-N2"),
            tx(4, "250000.00", "2023-09-01")], org_type="40"),
        "ngo1.xml": activity(n1, "XX-NGO1-N1", [
            tx(1, "100000.00", "2023-06-05", provider=ag1, provider_act="XX-AG1-P1"),
            tx(4, "100000.00", "2023-10-01")], org_type="22"),
        "ngo2.xml": activity(n2, "XX-NGO2-N2", [
            tx(1, "250000.00", "2023-06-12", provider=ag2, provider_act="XX-AG2-P2"),
            tx(4, "240000.00", "2023-11-01")], org_type="22"),
    }
    return {name: HEAD + body + "\n</iati-activities>\n" for name, body in out.items()}


def write(directory: Path) -> dict[str, Path]:
    paths = {}
    for name, text in files().items():
        p = directory / name
        p.write_text(text, encoding="utf-8")
        paths[name] = p
    return paths
