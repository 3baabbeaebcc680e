"""Faust tables (changelog-backed state) and the pure rules that update them."""
