"""Conformance tests: the ASL corpus recorded on real AWS Step Functions."""
