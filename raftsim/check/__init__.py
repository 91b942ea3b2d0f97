"""Checkers that judge a run after the fact: trace invariants and linearizability."""
