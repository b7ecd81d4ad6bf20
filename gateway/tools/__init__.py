"""Operator tools behind `rosetta translate|tap|status`."""
