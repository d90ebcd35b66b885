"""1325 accounting: gender markers, scope and pillars, counting methods, WROs,
stipulations, report cards and National Action Plans. Methods in docs/accounting.md."""
