"""Benchmarks of panel-player: each prints measured figures next to a reference measured in the same run."""
